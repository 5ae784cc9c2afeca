"""Kill-and-resume benchmark: SIGKILL a detached fine-tuning job at random moments, `fpoctl resume`
it after each kill, let it finish, and count what the metric history lost or duplicated.

Each kill hits either the worker alone (its supervisor records the failure) or the whole job's
process group (as a crash would: the run is left `running` with a dead pid). Kill times are drawn
uniformly from the first seconds after the worker records itself, so kills land in start-up,
evaluation, rollout, update and checkpoint writes. Target: every resume succeeds, 0 rows lost or
duplicated, and the final checkpoint loads.

Run: .venv/bin/python bench/kill_resume.py [--kills 20] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fpoctl.jobs.process import RunLock
from fpoctl.store import Store
from fpoctl.train import checkpoint as ckpt

T = TypeVar("T")

EVAL_EVERY = 5
SETTINGS = ["--set", f"eval_every={EVAL_EVERY}", "--set", "checkpoint_every=3", "--set", "num_envs=4",
            "--set", "rollout_chunks=8", "--set", "eval_episodes=4",
            "--set", "critic_hidden=1024"]  # a 13 MB trainer state: some kills land mid-checkpoint


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `fpoctl` in a subprocess, on the benchmark's home."""
    env = {**os.environ, "FPOCTL_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "fpoctl.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def wait(condition: Callable[[], T], timeout: float = 300.0, poll: float = 0.02) -> T | None:
    """Poll until `condition()` is truthy; returns its value (None on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=300, help="of the run (~0.25 s each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay", type=float, default=4.0, help="latest kill, s after start-up")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        started = cli(home, "finetune", "--iterations", str(args.iterations), *SETTINGS, "-q")
        if started.returncode != 0:
            sys.exit(f"cannot start the job: {started.stderr}")
        run_id = int(started.stdout)
        run_dir, ckpts = home / "runs" / str(run_id), home / "runs" / str(run_id) / "checkpoints"
        store = Store(f"sqlite:///{home / 'fpoctl.db'}")

        def job_gone() -> bool:
            return not RunLock.held(run_dir)

        def worker() -> int | None:
            run = store.get_run(run_id)
            return run.pid if run.status == "running" else None

        kills, resumes_ok, mid_checkpoint, group_kills = 0, 0, 0, 0
        t0 = time.perf_counter()
        for k in range(args.kills):
            pid = wait(worker)
            if pid is None or store.get_run(run_id).status == "finished":
                print(f"kill {k + 1}: the run finished or never ran; stopping early")
                break
            time.sleep(rng.uniform(0.0, args.max_delay))
            whole_group = rng.random() < 0.5
            try:
                if whole_group:
                    os.killpg(RunLock.group(run_dir), signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            kills += 1
            group_kills += whole_group
            partial = bool(list(ckpts.glob(".tmp-*")))
            mid_checkpoint += partial
            wait(job_gone)
            step = store.get_run(run_id).step
            resumed = cli(home, "resume", str(run_id), "-q")
            ok = resumed.returncode == 0 and wait(worker) is not None
            resumes_ok += ok
            print(f"kill {k + 1:2d}: {'group ' if whole_group else 'worker'} at iteration {step:3d}"
                  f"{' (mid-checkpoint)' if partial else ''} -> resume "
                  f"{'ok' if ok else 'FAILED: ' + resumed.stderr.strip()}", flush=True)
            if not ok:
                break
        wait(job_gone, timeout=1800)
        run = store.get_run(run_id)
        counts = Counter((r.step, r.key) for r in store.metrics_since(run_id))
        per_iteration = Counter(s for s, key in counts.elements() if key == "fpo/ratio_mean")
        expected = range(1, args.iterations + 1)
        evals = Counter(s for s, key in counts.elements() if key == "eval/success_rate")
        expected_evals = [0] + [i for i in expected if i % EVAL_EVERY == 0 or i == args.iterations]
        last = store.checkpoints(run_id)[-1] if store.checkpoints(run_id) else None
        loads = False
        if last is not None:
            ckpt.verify_checkpoint(Path(last.path), last.sha256)
            loads = ckpt.load_trainer_state(Path(last.path))["iteration"] == args.iterations
        result = {
            "kills": kills, "group_kills": group_kills, "kills_mid_checkpoint": mid_checkpoint,
            "resumes_ok": resumes_ok, "final_status": run.status,
            "rows_missing": sum(1 for s in expected if per_iteration[s] == 0)
            + sum(1 for s in expected_evals if evals[s] == 0),
            "rows_duplicated": sum(c - 1 for c in counts.values() if c > 1),
            "final_checkpoint_loads": loads, "seconds": round(time.perf_counter() - t0, 1),
        }
        store.close()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

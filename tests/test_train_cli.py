"""`fpoctl sft`, `fpoctl finetune --foreground`, `fpoctl eval` end to end through the real CLI and
store (detached jobs: tests/test_jobs.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fpoctl.store import Store
from fpoctl.train import checkpoint as ckpt
from policies.registry import load_policy
from tests.conftest import run_cli
from tests.test_cli_foundation import assert_one_line_error

FAST = ["--set", "num_envs=8", "--set", "rollout_chunks=8", "--set", "eval_episodes=16",
        "--set", "eval_every=2", "--set", "checkpoint_every=2", "--set", "keep_checkpoints=1"]


def store_of(home: Path) -> Store:
    return Store(f"sqlite:///{home / 'fpoctl.db'}")


def test_sft_then_finetune_then_eval(home: Path) -> None:
    sft = run_cli("sft", "--task", "fast-goal", "--expert", "5", "--steps", "100", "--name", "prior")
    assert sft.returncode == 0, sft.stderr
    assert "run 1 finished: success" in sft.stdout
    ft = run_cli("finetune", "--foreground", "--task", "fast-goal", "--init", "prior", "--iterations", "5",
                 *FAST)
    assert ft.returncode == 0, ft.stderr
    assert "run 2 finished: success" in ft.stdout and "fpoctl dash --run 2" in ft.stdout
    with store_of(home) as store:
        run = store.get_run(2)
        assert run.status == "finished" and run.parent_id is None and run.step == 5
        assert run.config["init"] == "prior" and run.seed == 0 and run.config["n_mc"] == 8
        keys = {r.key for r in store.metrics_since(2)}
        for key in ("rollout/success_rate", "eval/success_rate", "fpo/ratio_mean", "fpo/ratio_max",
                    "fpo/clip_frac", "fpo/approx_kl", "fpo/cfm_loss", "fpo/policy_loss",
                    "critic/loss", "critic/q_mean", "perf/env_steps_per_s", "perf/update_s",
                    "env/steps_total", "rollout/return", "rollout/episode_len"):
            assert key in keys, key
        evals = store.series(2, "eval/success_rate")
        assert [s for s, _ in evals] == [0, 2, 4, 5]  # the prior at 0, then every 2 and the end
        ckpts = store.checkpoints(2)
        # keep last 1 + best: at most two folders remain, and each one verifies
        assert 1 <= len(ckpts) <= 2 and ckpts[-1].step == 5
        assert len(list((home / "runs" / "2" / "checkpoints").iterdir())) == len(ckpts)
        for c in ckpts:
            ckpt.verify_checkpoint(Path(c.path), c.sha256)
        load_policy(Path(ckpts[-1].path) / "policy")
    ev = run_cli("eval", "2", "--task", "fast-goal", "--episodes", "10", "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["eval/episodes"] == 10
    with store_of(home) as store:
        (rec,) = store.evaluations()
        assert rec.run_id == 2 and rec.episodes == 10 and rec.task == "fast-goal"
    # a policy for 4-d states on a task with 2-d states: one line, no tensor-shape traceback
    assert_one_line_error(run_cli("eval", "2", "--task", "fast-bandit", "--episodes", "2"),
                          "does not fit this task's observations")


def test_resume_continues_from_the_last_checkpoint_without_duplicate_steps(home: Path) -> None:
    assert run_cli("finetune", "--foreground", "--iterations", "4", *FAST).returncode == 0
    with store_of(home) as store:
        store.update_run(1, total_steps=6)
        store.update_run(1, config={**store.get_run(1).config, "iterations": 6})
        # rows logged after the last checkpoint (as if the worker died) must be reconciled
        with store.metric_writer(1) as w:
            w.log(5, {"rollout/return": 123.0})
    proc = run_cli("finetune", "--resume", "1", "--foreground")
    assert proc.returncode == 0, proc.stderr
    with store_of(home) as store:
        steps = [s for s, _ in store.series(1, "fpo/ratio_mean")]
        assert steps == [1, 2, 3, 4, 5, 6]
        assert 123.0 not in [v for _, v in store.series(1, "rollout/return")]
        assert any("resumed from step 4" in e.message for e in store.events_since(1))


def test_sigterm_stops_with_a_checkpoint(home: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "fpoctl.cli", "finetune", "--foreground",
                             "--iterations", "500", *FAST], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.5)
        if (home / "fpoctl.db").exists():
            with store_of(home) as store:
                runs = store.list_runs()
                if runs and runs[0].step >= 2:
                    break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err  # stopped is not finished
    assert "stopped" in out
    with store_of(home) as store:
        run = store.get_run(1)
        assert run.status == "stopped"
        last = store.checkpoints(1)[-1]
        assert last.step == run.step
        ckpt.verify_checkpoint(Path(last.path), last.sha256)


def test_corrupt_checkpoint_is_refused_on_resume(home: Path) -> None:
    assert run_cli("finetune", "--foreground", "--iterations", "2", *FAST).returncode == 0
    with store_of(home) as store:
        store.update_run(1, config={**store.get_run(1).config, "iterations": 4})  # not finished
        path = Path(store.checkpoints(1)[-1].path)
    (path / "policy" / "model.safetensors").write_bytes(b"garbage")
    assert_one_line_error(run_cli("finetune", "--resume", "1"), "corrupt")


def test_bad_input_gives_one_line_errors(home: Path) -> None:
    assert_one_line_error(run_cli("finetune", "--task", "libero-spatail"), "unknown task")
    assert_one_line_error(run_cli("finetune", "--set", "nmc=3"), "unknown config key")
    assert_one_line_error(run_cli("finetune", "--set", "n_mc=abc"), "must be an integer")
    assert_one_line_error(run_cli("finetune", "--set", "ratio=avg"),
                          "ratio must be one of per_sample, averaged")
    assert_one_line_error(run_cli("finetune", "--set", "num_envs=0"), "num_envs must be at least 1")
    assert_one_line_error(run_cli("sft", "--set", "expert_noise=-0.1"), "expert_noise must be 0 or more")
    assert_one_line_error(run_cli("finetune", "--init", "nope", "--iterations", "1"), "'nope' is neither")
    assert_one_line_error(run_cli("sft", "--demos", str(home / "missing.npz")),
                          "cannot read demonstrations")
    assert_one_line_error(run_cli("finetune", "--device", "cuda:0", "--iterations", "1"), "CUDA")
    assert_one_line_error(run_cli("eval", "42", "--task", "fast-goal"), "'42' is neither")
    with store_of(home) as store:
        assert store.list_runs() == []  # bad input never leaves a half-made run behind


def test_demo_lifts_the_prior_on_the_fast_task(home: Path) -> None:
    """`fpoctl demo` (what `make demo` runs, here on the NumPy task): two runs, a higher success
    after FPO than the prior's, and how to open the dashboard."""
    out = run_cli("demo", "--task", "fast-goal")
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if "after FPO" in x)
    before, after = (int(p.split("%")[0].split()[-1]) for p in line.split("->"))
    assert after >= before + 30, line
    assert "dash --run 2" in out.stdout
    with store_of(home) as store:
        assert [(r.kind, r.status) for r in store.list_runs()] == [("finetune", "finished"),
                                                                   ("sft", "finished")]
    assert_one_line_error(run_cli("demo", "--task", "libero-spatail"), "unknown task")
    assert_one_line_error(run_cli("demo", "--task", "fast-bandit"), "no recipe")
    with store_of(home) as store:
        assert len(store.list_runs()) == 2  # refused before any run

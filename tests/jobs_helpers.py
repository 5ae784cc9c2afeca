"""Helpers for the job tests: start runs through the real CLI, watch them in the store, check
their metric history."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fpoctl.jobs.process import RunLock
from fpoctl.store import Run, Store
from fpoctl.train import checkpoint as ckpt
from policies.registry import load_policy
from tests.conftest import run_cli

T = TypeVar("T")

SMALL = ["--set", "num_envs=4", "--set", "rollout_chunks=4", "--set", "eval_episodes=4"]
STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
"""How every line of a job's log starts."""


def assert_stamped_progress(log: str, iterations: int, *, resumed_at: int | None, eval_episodes: int
                            ) -> None:
    """A job's log: every line timestamped, a line per iteration, the prior's and the final
    evaluation as k/N episodes, and (`resumed_at`) a resume marker before the iterations after it."""
    lines = log.splitlines()
    assert lines and all(STAMP.match(line) for line in lines), [x for x in lines if not STAMP.match(x)]
    text = [line[20:] for line in lines]
    done = [int(m.group(1)) for t in text if (m := re.match(rf"iter (\d+)/{iterations}\b", t))]
    assert set(done) == set(range(1, iterations + 1))
    n = eval_episodes
    assert any(t.startswith(f"evaluating the prior: {n}/{n} episodes (") for t in text), text
    final = [i for i, t in enumerate(text) if t.startswith(f"final evaluation: {n}/{n} episodes (")]
    last = [i for i, t in enumerate(text) if t.startswith(f"iter {iterations}/{iterations} ")]
    assert final and last and final[-1] < last[-1], text[-12:]
    if resumed_at is not None:
        marker = [i for i, t in enumerate(text)
                  if t.startswith(f"=== resumed at iteration {resumed_at}/{iterations} from its checkpoint")]
        assert len(marker) == 1, text
        after = [i for i, t in enumerate(text) if t.startswith(f"iter {resumed_at + 1}/{iterations} ")]
        assert after and after[-1] > marker[0]


def store_of(home: Path) -> Store:
    """The store of a test home (keep one open while polling: opening one checks the schema)."""
    return Store(f"sqlite:///{home / 'fpoctl.db'}")


def wait_for(condition: Callable[[], T], timeout: float = 120.0, poll: float = 0.02) -> T:
    """Poll until `condition()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(poll)


def start(*args: str) -> int:
    """`fpoctl finetune ARGS -q` (detached); returns the run id."""
    proc = run_cli("finetune", *args, "-q")
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip())


def resume(run_id: int) -> None:
    """`fpoctl resume RUN` (detached)."""
    proc = run_cli("resume", str(run_id), "-q")
    assert proc.returncode == 0, proc.stderr


def ended(store: Store, run_id: int) -> Run | None:
    """The run once its job is gone (lock released), else None."""
    if RunLock.held(Path(store.engine.url.database).parent / "runs" / str(run_id)):
        return None
    run = store.get_run(run_id)
    return run if run.status not in ("queued", "running") else None


def running_worker(store: Store, run_id: int) -> Run:
    """Wait until the run's worker records itself; the run with its pid."""
    return wait_for(lambda: (run := store.get_run(run_id)).status == "running" and run)


def assert_history_complete(store: Store, run_id: int, iterations: int, eval_every: int) -> None:
    """Every iteration's metrics exactly once; evaluations at 0, every `eval_every` and the end."""
    counts = Counter((r.step, r.key) for r in store.metrics_since(run_id))
    duplicated = sorted(k for k, c in counts.items() if c > 1)
    assert not duplicated, duplicated[:5]
    assert sorted(s for s, k in counts if k == "fpo/ratio_mean") == list(range(1, iterations + 1))
    assert sorted(s for s, k in counts if k == "eval/success_rate") == [0] + [
        i for i in range(1, iterations + 1) if i % eval_every == 0 or i == iterations]


def assert_last_checkpoint_loads(store: Store, run_id: int, step: int) -> None:
    """The newest checkpoint is at `step`, verifies against its sha256 and loads."""
    last = store.checkpoints(run_id)[-1]
    assert last.step == step
    ckpt.verify_checkpoint(Path(last.path), last.sha256)
    assert ckpt.load_trainer_state(Path(last.path))["iteration"] == step
    load_policy(Path(last.path) / "policy")

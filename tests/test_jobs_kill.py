"""kill -9 safety: a detached worker is SIGKILLed during a rollout, during an update and while
writing a checkpoint; each time `fpoctl resume` carries on, and in the end the run is finished,
its last checkpoint loads and its metric history has every iteration exactly once.

The phases are found from outside, as a user could: the iteration a worker is in comes from the
run's row (its step advances as each iteration is logged), the rollout and update durations from
the previous iteration's `perf/rollout_s` and `perf/update_s`, and a checkpoint being written from
its `.tmp-*` folder. The settings make each phase last long enough to land in it."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from fpoctl.store import Store
from tests.jobs_helpers import (
    STAMP,
    assert_history_complete,
    assert_last_checkpoint_loads,
    ended,
    resume,
    running_worker,
    start,
    wait_for,
)

ITERATIONS, EVAL_EVERY = 6, 4
SLOW_PHASES = [
    "--iterations", str(ITERATIONS), "--set", f"eval_every={EVAL_EVERY}", "--set", "checkpoint_every=2",
    "--set", "num_envs=4", "--set", "rollout_chunks=24", "--set", "flow_steps=30", "--set", "hidden=512",
    "--set", "update_epochs=6", "--set", "n_mc=16", "--set", "eval_episodes=4",
    "--set", "critic_hidden=1536",  # a 50 MB trainer state: a checkpoint takes ~0.2 s to write
]


def resumes(store: Store, run_id: int) -> list[str]:
    """The steps the run resumed from, in order (from its events)."""
    return [e.message.split()[3] for e in store.events_since(run_id)
            if e.kind == "resume" and e.message.startswith("resumed from step")]


def resume_and_wait(store: Store, run_id: int) -> None:
    """`fpoctl resume`, then wait until the new worker has rewound the run to its checkpoint."""
    before = len(resumes(store, run_id))
    resume(run_id)
    wait_for(lambda: len(resumes(store, run_id)) > before)


def logged(store: Store, run_id: int, step: int) -> float:
    """Wait until iteration `step` is logged; returns when that was seen."""
    wait_for(lambda: store.get_run(run_id).step == step, poll=0.01)
    return time.time()


def durations(store: Store, run_id: int, step: int) -> tuple[float, float]:
    """Iteration `step`'s rollout and update seconds (flushed with its checkpoint)."""
    return dict(store.series(run_id, "perf/rollout_s"))[step], \
        dict(store.series(run_id, "perf/update_s"))[step]


def kill_worker_at(store: Store, run_id: int, when: float) -> str:
    """SIGKILL the run's worker at time `when`; returns the failure the supervisor records."""
    pid = running_worker(store, run_id).pid
    time.sleep(max(0.0, when - time.time()))
    os.kill(pid, signal.SIGKILL)
    run = wait_for(lambda: ended(store, run_id))
    assert run.status == "failed", run.status
    return run.error or ""


def test_sigkill_in_rollout_update_and_checkpoint_write_then_resume_finishes(home: Path, store: Store
                                                                            ) -> None:
    run_id = start(*SLOW_PHASES)
    ckpts = home / "runs" / str(run_id) / "checkpoints"

    # 1. during the rollout of iteration 4 (iteration 3 is logged, 2 is the last checkpoint)
    seen = logged(store, run_id, 3)
    rollout_s, _ = durations(store, run_id, 2)
    error = kill_worker_at(store, run_id, seen + 0.5 * rollout_s)
    assert "killed by SIGKILL" in error and "fpoctl logs" in error

    # 2. during the update of iteration 4 (resumed from 2, iteration 3 logged again)
    resume_and_wait(store, run_id)
    seen = logged(store, run_id, 3)
    rollout_s, update_s = durations(store, run_id, 2)
    kill_worker_at(store, run_id, seen + rollout_s + 0.5 * update_s)

    # 3. while checkpoint 4 is being written (resumed from 2)
    resume_and_wait(store, run_id)
    pid = running_worker(store, run_id).pid
    partial = wait_for(lambda: list(ckpts.glob(".tmp-step_000004-*")), poll=0.001)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: ended(store, run_id))
    assert partial[0].exists()  # killed mid-write: the half-written folder is still there

    resume(run_id)
    run = wait_for(lambda: ended(store, run_id))
    assert run.status == "finished", run.error
    assert resumes(store, run_id) == ["2", "2", "2"]
    assert_history_complete(store, run_id, ITERATIONS, EVAL_EVERY)
    assert_last_checkpoint_loads(store, run_id, ITERATIONS)
    assert not list(ckpts.glob(".tmp-*"))  # the resumed worker swept the partial checkpoint
    log = (home / "runs" / str(run_id) / "train.log").read_text()
    assert re.search(rf"^{STAMP.pattern}iter {ITERATIONS}/{ITERATIONS} ", log, re.MULTILINE)
    assert all(STAMP.match(line) for line in log.splitlines())

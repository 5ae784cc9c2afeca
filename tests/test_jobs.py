"""Detached jobs through the real CLI and store: start, logs, stop (graceful, --now, Ctrl-C),
resume, `lost` runs, GPU holds, and runs that fail for an unwritable folder or a full disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fpoctl import jobs
from fpoctl.dash.data import run_info
from fpoctl.errors import FpoctlError
from fpoctl.jobs.devices import check_gpus_free, gpu_holders, job_gpus
from fpoctl.settings import Settings
from fpoctl.store import Store
from fpoctl.train import finetune_job
from fpoctl.train.config import FinetuneConfig, as_dict
from tests.conftest import run_cli
from tests.jobs_helpers import (
    SMALL,
    STAMP,
    assert_history_complete,
    assert_last_checkpoint_loads,
    assert_stamped_progress,
    ended,
    resume,
    running_worker,
    start,
    wait_for,
)
from tests.test_cli_foundation import assert_one_line_error


def foreground(*args: str) -> subprocess.Popen[str]:
    """`fpoctl finetune --foreground ARGS` in the background of the test."""
    return subprocess.Popen([sys.executable, "-m", "fpoctl.cli", "finetune", "--foreground", *args],
                            env={**os.environ, "COLUMNS": "200"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_detached_run_stops_with_a_checkpoint_resumes_and_its_log_follows_to_the_end(
        settings: Settings, store: Store) -> None:
    # 100 iterations (~5 s here): the test must catch the run between iterations 2 and 99
    started = run_cli("finetune", "--iterations", "100", *SMALL)
    assert started.returncode == 0, started.stderr
    assert "run 1 started in the background" in started.stdout
    assert "fpoctl dash --run 1" in started.stdout and "fpoctl logs 1 -f" in started.stdout
    wait_for(lambda: running_worker(store, 1).step >= 2)
    message = jobs.stop_run(settings, 1)  # what the dashboard's `s` key calls
    assert message.startswith("stop requested: run 1 stops after its current iteration")
    run = wait_for(lambda: ended(store, 1))
    assert run.status == "stopped" and 2 <= run.step < 100
    assert_last_checkpoint_loads(store, 1, run.step)
    assert any("stopped at iteration" in e.message and "SIGTERM" in e.message
               for e in store.events_since(1))
    assert jobs.resume_run(settings, 1).startswith("run 1 resumed")  # the `r` key
    log = run_cli("logs", "1", "-f", timeout=120)  # returns when the job ends
    assert log.returncode == 0, log.stderr
    assert "job of run 1 ended: stopped" in log.stdout and "iter 100/100" in log.stdout
    assert log.stdout.rstrip().endswith("job of run 1 ended: finished (exit code 0)")
    assert_stamped_progress(log.stdout, 100, resumed_at=run.step, eval_episodes=4)
    last = run_cli("logs", "1", "-n", "1").stdout
    assert STAMP.match(last) and last[20:].startswith("[fpoctl] job of run 1 ended: finished")
    run = store.get_run(1)
    assert run.status == "finished" and run.step == 100, run.error
    assert_history_complete(store, 1, 100, eval_every=5)
    assert_last_checkpoint_loads(store, 1, 100)


def test_ctrl_c_in_the_foreground_stops_after_the_iteration_with_a_checkpoint(store: Store) -> None:
    proc = foreground("--iterations", "500", *SMALL)
    wait_for(lambda: store.list_runs() and running_worker(store, 1).step >= 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "run 1 stopped" in out, err
    assert "stopping after the current iteration" in err
    run = store.get_run(1)
    assert run.status == "stopped"
    assert_last_checkpoint_loads(store, 1, run.step)


def test_a_killed_worker_without_checkpoint_shows_lost_then_resumes_and_stop_now_kills(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPOCTL_HEARTBEAT_STALE_S", "0.5")  # instead of 120 s
    proc = foreground("--iterations", "500", "--set", "checkpoint_every=1000", *SMALL)
    pid = wait_for(lambda: store.list_runs() and running_worker(store, 1).pid)
    proc.kill()
    proc.communicate(timeout=30)
    time.sleep(0.6)
    listed = run_cli("runs", "list", "--json")
    assert json.loads(listed.stdout)[0]["status"] == "lost", listed.stderr
    run = store.get_run(1)
    assert run.pid == pid and run_info(run, time.time(), {}, {}).status == "lost"  # the dashboard's
    assert store.checkpoints(1) == []
    resume(1)
    wait_for(lambda: running_worker(store, 1).step >= 1)
    assert any("no checkpoint: starting over" in e.message for e in store.events_since(1))
    killed = run_cli("stop", "1", "--now")
    assert killed.returncode == 0, killed.stderr
    assert "run 1 killed at iteration" in killed.stdout and "continues from the start" in killed.stdout
    assert wait_for(lambda: ended(store, 1)).status == "stopped"


def test_job_control_mistakes_are_one_line_errors(store: Store) -> None:
    run = store.create_run(name="done", config=as_dict(FinetuneConfig(iterations=1)))
    store.set_status(run.id, "finished")
    store.heartbeat(run.id, step=1)
    assert_one_line_error(run_cli("stop", "1"), "run 1 is not running (finished)")
    assert_one_line_error(run_cli("resume", "1"), "run 1 is finished", "nothing to resume")
    assert_one_line_error(run_cli("logs", "1"), "run 1 has no job log")
    assert_one_line_error(run_cli("stop", "9"), "no run '9'")
    assert_one_line_error(run_cli("finetune", "--nnodes", "2"), "--master-addr")
    assert len(store.list_runs()) == 1  # no half-made runs


def test_an_unwritable_run_folder_fails_the_run_with_a_clear_reason(home: Path, settings: Settings
                                                                     ) -> None:
    (home / "runs" / "1").write_text("a file where the run folder should be")
    assert_one_line_error(run_cli("finetune", "--iterations", "1", *SMALL), "cannot create the run folder")
    # and a checkpoint folder that cannot be written, in a job trained in this process
    (home / "runs" / "2" / "checkpoints").parent.mkdir()
    (home / "runs" / "2" / "checkpoints").write_text("not a folder")
    cfg = FinetuneConfig(iterations=1, num_envs=4, rollout_chunks=4, eval_episodes=4)
    with pytest.raises(FpoctlError, match="cannot write checkpoint"):
        finetune_job.finetune(settings, cfg)
    with Store(settings.db_url) as store:
        first, second = store.get_run(1), store.get_run(2)
    assert first.status == "failed" and "cannot create the run folder" in first.error
    assert second.status == "failed" and "cannot write checkpoint" in second.error
    assert "Not a directory" in second.error


def test_a_full_disk_fails_the_run_with_a_clear_reason(home: Path, settings: Settings) -> None:
    runs = home / "runs"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(runs)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("needs to mount a small tmpfs (root)")
    try:
        cfg = FinetuneConfig(iterations=2, num_envs=4, rollout_chunks=4, eval_episodes=4,
                             checkpoint_every=1)
        with pytest.raises(FpoctlError, match="No space left on device"):
            finetune_job.finetune(settings, cfg)
        with Store(settings.db_url) as store:
            run = store.get_run(1)
        assert run.status == "failed" and "No space left on device" in run.error
        assert not list((runs / "1" / "checkpoints").glob(".tmp-*"))  # the partial write is gone
    finally:
        subprocess.run(["umount", str(runs)], check=True)


def test_gpus_per_rank_come_from_the_device_or_the_list() -> None:
    assert job_gpus("cpu", None, 1, cuda_count=2) is None
    assert job_gpus("auto", None, 1, cuda_count=0) is None
    assert job_gpus("auto", None, 2, cuda_count=4) == [0, 1]
    assert job_gpus("cuda:3", None, 1, cuda_count=4) == [3]
    assert job_gpus("auto", [2, 3], 2, cuda_count=4) == [2, 3]
    for args, error in [(("auto", [0, 0], 2, 4), "distinct"), (("auto", [0], 2, 4), "one per process"),
                        (("cuda:0", None, 2, 4), "use --gpus"), (("auto", [5], 1, 4), "sees 4"),
                        (("cpu", [0], 1, 4), "disagree")]:
        with pytest.raises(FpoctlError, match=error):
            job_gpus(*args)


def test_a_gpu_held_by_a_live_run_is_refused_unless_forced(store) -> None:
    holder = store.create_run(name="holder", config={"gpus": [0, 1]})
    store.set_status(holder.id, "running")  # this test process stands in for its live worker
    assert gpu_holders(store) == {0: f"run {holder.id} (holder, running)",
                                  1: f"run {holder.id} (holder, running)"}
    with pytest.raises(FpoctlError, match=rf"GPU 1 is held by run {holder.id} \(holder, running\)"):
        check_gpus_free(store, [1, 2])
    check_gpus_free(store, [1, 2], force=True)
    check_gpus_free(store, [2, 3])
    check_gpus_free(store, [0], exclude_run=holder.id)  # its own resume
    store.set_status(holder.id, "stopped")
    check_gpus_free(store, [0, 1])


@pytest.mark.gpu
def test_a_second_job_on_a_held_gpu_is_refused_unless_forced(store: Store) -> None:
    first = start("--device", "cuda:0", "--iterations", "200", *SMALL)
    running_worker(store, first)
    assert_one_line_error(run_cli("finetune", "--device", "cuda:0", "--iterations", "1", *SMALL),
                          "GPU 0 is held by run 1")
    second = start("--device", "cuda:0", "--iterations", "1", "--force", *SMALL)
    assert wait_for(lambda: ended(store, second)).status == "finished"
    assert "stopped" in run_cli("stop", str(first), "--wait", "120").stdout

"""Start, resume and stop fine-tuning jobs: detached by default (a supervisor and a worker in
their own session, output in runs/<id>/train.log), or attached to this terminal."""

from __future__ import annotations

import signal
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from fpoctl.errors import FpoctlError
from fpoctl.jobs.devices import check_gpus_free, job_gpus
from fpoctl.jobs.launch import Launch, run_attached, settle, spawn_detached, worker_argv
from fpoctl.jobs.process import RunLock, display_status, is_active, kill_job, signal_worker, wait_until
from fpoctl.settings import Settings
from fpoctl.store import Run, Store
from fpoctl.store.checkpoints import verify_checkpoint
from fpoctl.train.config import resumable

if TYPE_CHECKING:  # the trainer imports torch: only a command that trains loads it
    from fpoctl.train.config import FinetuneConfig
    from fpoctl.train.job import JobResult
    from fpoctl.train.progress import Progress


@dataclass
class Started:
    """A launched job: detached (`pid` of its supervisor) or finished in the foreground."""

    run_id: int
    status: str
    pid: int | None = None
    result: JobResult | None = None

    @property
    def detached(self) -> bool:
        """The job runs on in the background."""
        return self.pid is not None


def start_finetune(settings: Settings, cfg: FinetuneConfig, *, name: str | None = None,
                   gpus: list[int] | None = None, launch: Launch = Launch(), detach: bool = True,
                   force: bool = False, progress: Progress | None = None) -> Started:
    """The pre-flight of the input (a detached launch fails here, with its one-line reason), then
    the run (queued) and its job."""
    launch.check()
    import torch

    from fpoctl.train import finetune_job, preflight
    from fpoctl.train.build import resolve_device

    preflight.check_store(settings)
    resolve_device(cfg.device)  # a one-line error before its GPUs are counted
    cfg.nproc = launch.nproc
    cfg.gpus = job_gpus(cfg.device, gpus, launch.nproc, torch.cuda.device_count())
    with Store(settings.db_url) as store:
        check_gpus_free(store, cfg.gpus, force=force)
        run_id = finetune_job.new_finetune_run(settings, store, cfg, name)
        return _start(settings, store, run_id, launch, detach=detach, progress=progress)


def resume_run(settings: Settings, run_id: int | str) -> str:
    """Resume a run in the background (the dashboard's `r` key); returns one line."""
    started = resume(settings, run_id)
    return f"run {started.run_id} resumed from its last checkpoint (fpoctl logs {started.run_id} -f)"


def resume(settings: Settings, run_id: int | str, *, detach: bool = True, force: bool = False,
           launch: Launch | None = None, progress: Progress | None = None) -> Started:
    """Resume a stopped, failed or lost run from its last checkpoint with the run's number of
    processes per node (`launch` adds torchrun's placement for multi-node runs). The run's config,
    its last checkpoint (or its init) and the store pass the pre-flight first."""
    from fpoctl.train import preflight

    preflight.check_store(settings)
    with Store(settings.db_url) as store:
        run = store.get_run(run_id)
        cfg = resumable(run)
        if is_active(run, settings.run_dir(run.id)):
            raise FpoctlError(f"run {run.id} is {display_status(run)}; it has a live job "
                              f"(`fpoctl stop {run.id}` first)")
        place = replace(launch or Launch(), nproc=int(run.config.get("nproc", 1)))
        place.check()
        ckpts = store.checkpoints(run.id)
        if ckpts and (detach or place.distributed):  # fail here, not later in a log
            verify_checkpoint(Path(ckpts[-1].path), ckpts[-1].sha256)
        preflight.check_finetune(settings, store, cfg,
                                 resume_from=Path(ckpts[-1].path) / "policy" if ckpts else None)
        check_gpus_free(store, run.config.get("gpus"), force=force, exclude_run=run.id)
        return _start(settings, store, run.id, place, detach=detach, progress=progress, requeue=True)


def stop_run(settings: Settings, run_id: int | str, *, now: bool = False, wait: float = 0.0) -> str:
    """Ask a run's job to stop: SIGTERM to its worker, which ends the current iteration, writes a
    checkpoint and marks the run `stopped`. `now`: SIGKILL the whole job and mark it stopped,
    saying which checkpoint a resume continues from. `wait`: seconds to wait for the end."""
    if not wait >= 0:
        raise FpoctlError(f"--wait must be 0 or more seconds, got {wait}")
    with Store(settings.db_url) as store:
        run = store.get_run(run_id)
        run_dir = settings.run_dir(run.id)
        if not is_active(run, run_dir):
            raise FpoctlError(f"run {run.id} is not running ({display_status(run)})")
        if now:
            return _kill(store, run, run_dir)
        if not signal_worker(run, signal.SIGTERM):
            raise FpoctlError(f"run {run.id}'s worker (pid {run.pid}) is not reachable from "
                              f"{socket.gethostname()}; stop it on its host")
        store.add_event(run.id, "stop requested", kind="stop")
        if wait and wait_until(lambda: not is_active(store.get_run(run.id), run_dir), wait):
            final = store.get_run(run.id)
            ckpts = store.checkpoints(run.id)
            where = f", checkpoint step {ckpts[-1].step}" if ckpts else ""
            return f"run {run.id} {final.status} at iteration {final.step}{where}"
    return (f"stop requested: run {run.id} stops after its current iteration, with a checkpoint "
            f"(fpoctl logs {run.id} -f)")


def _kill(store: Store, run: Run, run_dir: Path) -> str:
    kill_job(run, run_dir)
    if not wait_until(lambda: not is_active(store.get_run(run.id), run_dir), 30):
        raise FpoctlError(f"run {run.id}'s job did not die within 30 s of SIGKILL")
    run = store.get_run(run.id)
    ckpts = store.checkpoints(run.id)
    since = f"checkpoint step {ckpts[-1].step}" if ckpts else "the start (no checkpoint yet)"
    if run.status in ("queued", "running"):
        store.set_status(run.id, "stopped")
    store.add_event(run.id, f"killed (fpoctl stop --now) at iteration {run.step}; a resume continues "
                    f"from {since}", level="warning", kind="stop")
    return f"run {run.id} killed at iteration {run.step}; fpoctl resume {run.id} continues from {since}"


def _start(settings: Settings, store: Store, run_id: int, launch: Launch, *, detach: bool,
           progress: Progress | None, requeue: bool = False) -> Started:
    """Give the run a folder and the lock, queue it again (`requeue`: a resume), start its job."""
    run_dir = settings.run_dir(run_id)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = f"cannot create the run folder {run_dir}: {exc.strerror or exc}"
        store.set_status(run_id, "failed", error=reason)
        raise FpoctlError(reason) from None
    with RunLock(run_dir).acquire(run_id) as lock:
        if requeue:
            store.requeue(run_id)
            store.add_event(run_id, "resume requested", kind="resume")
        if not launch.distributed and not detach:
            try:
                from fpoctl.train import finetune_job

                result = finetune_job.train_run(settings, run_id, progress=progress)
            except KeyboardInterrupt:  # before the trainer took over Ctrl-C
                if store.get_run(run_id).status == "queued":
                    store.set_status(run_id, "stopped")
                raise
            return Started(run_id, result.status, result=result)
        argv = worker_argv(run_id, launch)
        if detach:
            try:
                pid = spawn_detached(settings, run_id, argv, lock)
            except FpoctlError as exc:
                store.set_status(run_id, "failed", error=str(exc))
                raise
            except KeyboardInterrupt:  # before the job started: nothing runs
                store.set_status(run_id, "stopped")
                raise
            store.update_run(run_id, pid=pid, host=socket.gethostname(), heartbeat=time.time())
            return Started(run_id, "queued", pid=pid)
        stop = _StopOnce(settings, run_id)
        returncode = run_attached(settings, argv, lock, stop)
    status = settle(settings, run_id, returncode, distributed=True, stop_requested=stop.asked)
    return Started(run_id, status)


class _StopOnce:
    """Ctrl-C of an attached torchrun job: ask rank 0 to stop gracefully."""

    def __init__(self, settings: Settings, run_id: int) -> None:
        self.settings, self.run_id, self.asked = settings, run_id, False

    def __call__(self) -> None:
        self.asked = True
        with Store(self.settings.db_url) as store:
            signal_worker(store.get_run(self.run_id), signal.SIGTERM)

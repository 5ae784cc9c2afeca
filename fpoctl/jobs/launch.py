"""Starting a job's processes: the worker command (plain, or under torchrun), a detached
supervisor in its own session with output to runs/<id>/train.log, and settling a run whose worker
exited without saying why (it fails with the exit code or signal as the reason).

Process tree of a detached job (one session, one process group, the run lock inherited):
    python -m fpoctl.jobs.supervisor --lock-fd N ID -- CMD     waits, then settles the run
      CMD = python -m fpoctl.jobs.worker ID         or: python -m torch.distributed.run ... -m
                                                        fpoctl.jobs.worker ID  (one per rank)
Secrets never go on a command line: the store URL travels in the environment (FPOCTL_DB).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fpoctl.errors import FpoctlError
from fpoctl.jobs.process import RunLock
from fpoctl.settings import Settings
from fpoctl.store import Store

TORCHRUN = "torch.distributed.run"


@dataclass(frozen=True)
class Launch:
    """How many processes, and torchrun's placement options (passed through as given)."""

    nproc: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None

    @property
    def distributed(self) -> bool:
        """Whether the job runs under torchrun."""
        return self.nproc > 1 or self.nnodes > 1

    def check(self) -> None:
        """One-line errors for impossible placements."""
        if self.nproc < 1 or self.nnodes < 1:
            raise FpoctlError("--nproc and --nnodes must be at least 1")
        if not 0 <= self.node_rank < self.nnodes:
            raise FpoctlError(f"--node-rank must be in 0..{self.nnodes - 1}, got {self.node_rank}")
        if self.nnodes > 1 and not self.master_addr:
            raise FpoctlError("--nnodes > 1 needs --master-addr (the address of node 0)")
        if self.master_port is not None and not 1 <= self.master_port <= 65535:
            raise FpoctlError(f"--master-port must be a port in 1..65535, got {self.master_port}")


def worker_argv(run_id: int | None, launch: Launch) -> list[str]:
    """The worker command; under torchrun one worker per rank (`run_id` None: learn it from rank 0)."""
    worker = ["-m", "fpoctl.jobs.worker", *([str(run_id)] if run_id is not None else [])]
    if not launch.distributed:
        return [sys.executable, *worker]
    cmd = [sys.executable, "-m", TORCHRUN, f"--nproc-per-node={launch.nproc}"]
    if launch.nnodes == 1 and not launch.master_addr:
        cmd.append("--standalone")  # a free local port: two jobs on one machine never collide
    else:
        cmd += [f"--nnodes={launch.nnodes}", f"--node-rank={launch.node_rank}",
                f"--master-addr={launch.master_addr or '127.0.0.1'}",
                f"--master-port={launch.master_port or 29500}"]
    return cmd + worker


def job_env(settings: Settings) -> dict[str, str]:
    """The environment of a job's processes: this store and home, unbuffered output."""
    return {**os.environ, "FPOCTL_HOME": str(settings.home), "FPOCTL_DB": settings.db_url,
            "PYTHONUNBUFFERED": "1"}


def log_path(settings: Settings, run_id: int) -> Path:
    """Where a detached job's output goes."""
    return settings.run_dir(run_id) / "train.log"


def spawn_detached(settings: Settings, run_id: int, argv: list[str], lock: RunLock) -> int:
    """Start the supervisor (and through it the worker) in a new session; returns its pid."""
    assert lock.fd is not None
    log = log_path(settings, run_id)
    try:
        out = log.open("ab")
    except OSError as exc:
        raise FpoctlError(f"cannot write the job log {log}: {exc.strerror or exc}") from None
    cmd = [sys.executable, "-m", "fpoctl.jobs.supervisor", f"--lock-fd={lock.fd}", str(run_id), "--",
           *argv]
    with out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, pass_fds=(lock.fd,), env=job_env(settings))
    lock.record_group(proc.pid)
    return proc.pid


def run_attached(settings: Settings, argv: list[str], lock: RunLock, request_stop: Callable[[], None]) -> int:
    """Run a torchrun job in its own session, its output on this terminal. Ctrl-C calls
    `request_stop()` (a graceful stop of rank 0); a second Ctrl-C kills the job."""
    assert lock.fd is not None
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True,
                            pass_fds=(lock.fd,), env=job_env(settings))
    lock.record_group(proc.pid)
    interrupts = 0
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts == 1:
                print("\nstopping after the current iteration (with a checkpoint); Ctrl-C again to "
                      "kill", file=sys.stderr, flush=True)
                request_stop()
            else:
                os.killpg(proc.pid, signal.SIGKILL)


def join_job(settings: Settings, launch: Launch) -> int:
    """Run this node's ranks of a multi-node job whose node 0 owns the run (attached; they learn
    the run from rank 0 and need the same store and home, e.g. a server database and a shared
    folder). Returns torchrun's exit code."""
    return subprocess.call(worker_argv(None, launch), env=job_env(settings))


def exit_reason(returncode: int, distributed: bool) -> str:
    """Why a worker that did not record its end is gone, in one line."""
    who = "torchrun (a rank died)" if distributed else "the worker"
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (killed by hand, or out of memory)" if name == "SIGKILL" else ""
        return f"{who} was killed by {name}{hint} before recording its end"
    return f"{who} exited with code {returncode} before recording its end"


def settle(settings: Settings, run_id: int, returncode: int, *, distributed: bool,
           stop_requested: bool) -> str:
    """After the job's processes exit: a run still queued or running did not end cleanly; mark
    it stopped (when a stop was asked for) or failed with the reason. Returns the final status."""
    with Store(settings.db_url) as store:
        store.release_space(run_id)  # the job is gone; on a full disk, room for what follows
        run = store.get_run(run_id)
        if run.status not in ("queued", "running"):
            return run.status
        if stop_requested:
            store.set_status(run_id, "stopped")
            store.add_event(run_id, f"stopped before a checkpoint ({exit_reason(returncode, distributed)})",
                            level="warning", kind="stop")
            return "stopped"
        reason = exit_reason(returncode, distributed)
        store.set_status(run_id, "failed", error=f"{reason}; see `fpoctl logs {run_id}`")
        return "failed"

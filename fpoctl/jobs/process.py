"""Which process runs a job, and whether it still does: the run lock, liveness (`lost` runs), signals.

Every job holds an exclusive `flock` on runs/<id>/job.lock for its whole life (the launcher takes
it and hands the open file down to the supervisor and the worker), so "is a job active for this
run?" is answered by the kernel — a SIGKILLed job releases it at once, a reused pid cannot fake it.
A detached job's lock file also names its process group, which `fpoctl stop --now` kills.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from fpoctl.errors import FpoctlError
from fpoctl.store import Run
from fpoctl.store.timing import heartbeat_stale_s


class JobActive(FpoctlError):
    """A job already runs for this run."""


class RunLock:
    """The exclusive lock of one run's folder, held while a job for the run is alive."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "job.lock"
        self.fd: int | None = None

    def acquire(self, run_id: int) -> RunLock:
        """Take the lock or raise JobActive; the file can be handed to a child (`fd`)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JobActive(f"run {run_id} already has a live job; see `fpoctl logs {run_id}`") from None
        os.ftruncate(fd, 0)  # forget the process group of an earlier job
        os.set_inheritable(fd, True)
        self.fd = fd
        return self

    def record_group(self, pgid: int) -> None:
        """Write the detached job's process group into the lock file."""
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pgid}\n".encode(), 0)

    def release(self) -> None:
        """Close this process's handle (children that inherited it keep the lock)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @staticmethod
    def held(run_dir: Path) -> bool:
        """Whether some process holds the run's lock."""
        path = run_dir / "job.lock"
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing also drops a lock we just took
        return False

    @staticmethod
    def group(run_dir: Path) -> int | None:
        """The process group a detached job recorded, if any."""
        try:
            return int((run_dir / "job.lock").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def pid_alive(pid: int | None, host: str | None) -> bool:
    """Whether process `pid` exists (a pid on another host is assumed alive)."""
    if pid is None:
        return False
    if host and host != socket.gethostname():
        return True  # cannot tell from here; trust the heartbeat's owner
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped by its parent) is not a live worker
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def display_status(run: Run, now: float | None = None) -> str:
    """The status to show: `lost` when a running (or queued, launched) run's heartbeat is stale
    and its worker's pid is gone."""
    if run.status not in ("running", "queued") or (run.status == "queued" and run.pid is None):
        return run.status
    now = now or time.time()
    stale = run.heartbeat is None or now - run.heartbeat > heartbeat_stale_s()
    if stale and not pid_alive(run.pid, run.host):
        return "lost"
    return run.status


def is_active(run: Run, run_dir: Path) -> bool:
    """A job is alive for the run: its lock is held, or (for runs trained without the jobs layer,
    e.g. `finetune_job.finetune` from Python) the running run's worker lives (on another host: its
    heartbeat is fresh)."""
    if RunLock.held(run_dir):
        return True
    if run.status not in ("queued", "running"):
        return False
    if run.host in (None, socket.gethostname()):
        return pid_alive(run.pid, None)
    return display_status(run) != "lost"


def is_fpoctl_process(pid: int) -> bool:
    """The pid belongs to an fpoctl process (guards against signalling a reused pid)."""
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc (macOS): trust the pid
        return pid_alive(pid, None)
    try:
        return b"fpoctl" in (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False


def signal_worker(run: Run, signum: int) -> bool:
    """Send `signum` to the run's recorded worker (rank 0); False when it is not ours or gone."""
    if run.pid is None or run.host not in (None, socket.gethostname()) or not is_fpoctl_process(run.pid):
        return False
    try:
        os.kill(run.pid, signum)
    except ProcessLookupError:
        return False
    return True


def kill_job(run: Run, run_dir: Path) -> None:
    """SIGKILL the job: its whole process group when detached (supervisor, torchrun, ranks),
    else the recorded worker."""
    pgid = RunLock.group(run_dir)
    if pgid is not None and pgid != os.getpgid(0) and is_fpoctl_process(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
            return
        except ProcessLookupError:
            pass
    signal_worker(run, signal.SIGKILL)


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    """Poll `condition()` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return condition()

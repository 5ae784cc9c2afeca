"""Which GPUs a job holds (one per rank, recorded in the run's config as `gpus`), and refusing a
second job on a GPU that a live job holds unless forced."""

from __future__ import annotations

from fpoctl.errors import FpoctlError
from fpoctl.jobs.process import display_status
from fpoctl.store import Store


def job_gpus(device: str, gpus: list[int] | None, nproc: int, cuda_count: int) -> list[int] | None:
    """The GPU indices the job's ranks will use: `--gpus` as given, `cuda:N` -> [N], `cuda` (or
    `auto` on a machine with CUDA) -> the first `nproc` GPUs; None when it trains on the CPU."""
    if gpus:
        if len(set(gpus)) != len(gpus) or min(gpus) < 0:
            raise FpoctlError(f"--gpus must list distinct GPU indices, got {gpus}")
        if len(gpus) != nproc:
            raise FpoctlError(f"--gpus lists {len(gpus)} GPU(s) for {nproc} process(es); give one "
                              "per process (--nproc)")
        if device == "cpu" or device.startswith("cuda:"):
            raise FpoctlError(f"--gpus and --device {device} disagree; leave --device out")
        missing = [g for g in gpus if g >= cuda_count]
        if missing:
            raise FpoctlError(f"GPU {missing[0]} asked for, but torch sees {cuda_count} CUDA GPU(s) here")
        return list(gpus)
    if device == "cpu" or (device == "auto" and cuda_count == 0):
        return None
    if device.startswith("cuda:"):
        if nproc > 1:
            raise FpoctlError(f"--device {device} is one GPU for {nproc} processes; use --gpus")
        return [int(device.split(":", 1)[1])]
    if device in ("cuda", "auto"):
        if nproc > cuda_count:
            raise FpoctlError(f"{nproc} processes need {nproc} GPUs; torch sees {cuda_count} here")
        return list(range(nproc))
    return None  # an unknown device: the trainer's own check names it


def gpu_holders(store: Store, exclude_run: int | None = None) -> dict[int, str]:
    """GPU index -> 'run ID (NAME)' for every live run (running, or queued and launched)."""
    held: dict[int, str] = {}
    for status in ("running", "queued"):
        for run in store.list_runs(status=status):
            if run.id == exclude_run or run.pid is None or display_status(run) == "lost":
                continue
            for gpu in run.config.get("gpus") or []:
                held.setdefault(int(gpu), f"run {run.id} ({run.name}, {run.status})")
    return held


def check_gpus_free(store: Store, gpus: list[int] | None, *, force: bool = False,
                    exclude_run: int | None = None) -> None:
    """Refuse GPUs that a live job holds, unless `force`."""
    if not gpus or force:
        return
    held = gpu_holders(store, exclude_run)
    for gpu in gpus:
        if gpu in held:
            raise FpoctlError(f"GPU {gpu} is held by {held[gpu]}; stop it first or pass --force "
                              "to share the GPU")

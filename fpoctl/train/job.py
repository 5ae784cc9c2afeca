"""What every job kind (finetune, sft, eval) shares: its result, the run row it creates, seeding,
and one run lifecycle: running -> finished, stopped (Ctrl-C) or failed with the reason."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fpoctl.errors import FpoctlError, StoreError
from fpoctl.store import Store
from fpoctl.train.build import git_revision
from fpoctl.train.config import as_dict
from fpoctl.train.record import RunRecord


@dataclass
class JobResult:
    """What a finished job reports back to the CLI."""

    run_id: int
    status: str
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None


def seed_everything(seed: int, cpu_threads: int = 0) -> None:
    """Seed torch and numpy; set torch's CPU threads (0 leaves torch's default)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if cpu_threads > 0:
        torch.set_num_threads(cpu_threads)


def create_run(store: Store, kind: str, cfg: Any, name: str | None, parent_id: int | None = None,
               total_steps: int | None = None) -> int:
    """Insert the run with its full resolved config."""
    run = store.create_run(
        name=name or f"{cfg.task}-{kind}", kind=kind, task=cfg.task, policy=cfg.policy,
        config=as_dict(cfg), seed=cfg.seed, git_sha=git_revision(), parent_id=parent_id,
        total_steps=total_steps)
    return run.id


def failure(exc: BaseException) -> str:
    """The reason a run failed, for its row: our own errors by their message, others with their type."""
    return str(exc) if isinstance(exc, FpoctlError) else f"{type(exc).__name__}: {exc}"


@contextmanager
def lifecycle(record: RunRecord, result: JobResult, *,
              interrupted: Callable[[], str] | None = None) -> Iterator[None]:
    """The run is `running` inside; the body sets `result.status` ("finished", or "stopped" /
    "failed" after recording why). Ctrl-C ends it `stopped` (with the warning `interrupted()`); any
    other error, the store's last metric flush included, ends it `failed` with the reason and is
    raised again. A store that can no longer be written keeps the first error: the run's end is
    recorded when it still can be."""
    try:
        try:
            record.status("running")
            yield
        except BaseException:
            with suppress(Exception):  # the body's error is the one to report
                record.close()
            raise
        record.close()
    except KeyboardInterrupt:
        result.status = "stopped"
        if interrupted:
            with suppress(StoreError):
                record.event(interrupted(), level="warning", kind="stop")
    except Exception as exc:
        result.status = "failed"
        with suppress(StoreError):
            record.status("failed", error=failure(exc))
        raise
    if result.status in ("finished", "stopped"):
        record.status(result.status)

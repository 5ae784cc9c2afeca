"""What a training run writes about itself: status, events, metrics, heartbeats and checkpoints
(last K + best). Under torchrun only rank 0 records; on the other ranks every call is a no-op."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from fpoctl.store import Store
from fpoctl.train import checkpoint as ckpt
from fpoctl.train.lifecycle import heartbeat
from policies.base import FlowPolicy


class CheckpointKeeper:
    """Writes checkpoints of one run and keeps the last K plus the best."""

    def __init__(self, store: Store, run_id: int, folder: Path, keep: int) -> None:
        self.store, self.run_id, self.folder, self.keep = store, run_id, folder, keep
        self.best = max((c.metrics.get("eval/success_rate", -1.0) for c in store.checkpoints(run_id)),
                        default=-1.0)

    def save(self, step: int, policy: FlowPolicy, trainer_state: dict | None, metrics: dict[str, float],
             config: dict[str, Any]) -> str:
        """Write step's checkpoint, record it, prune old ones; returns its folder."""
        path = self.folder / f"step_{step:06d}"
        meta = {"step": step, "metrics": metrics, "config": config, "time": time.time()}
        sha = ckpt.save_checkpoint(path, policy, trainer_state, meta)
        score = metrics.get("eval/success_rate")
        is_best = score is not None and score >= self.best
        if is_best:
            self.best = score
        for old in self.store.checkpoints(self.run_id):
            if old.step == step:  # re-written after a resume
                self.store.remove_checkpoint(old.id)
        self.store.add_checkpoint(self.run_id, step, str(path), sha, metrics, is_best=is_best)
        self.store.add_event(self.run_id, f"checkpoint step {step}" + (" (best)" if is_best else ""),
                             kind="checkpoint")
        self._prune()
        return str(path)

    def sweep_partial(self) -> int:
        """Delete `.tmp-*` folders a killed writer left behind (one job per run, so none is live)."""
        partial = list(self.folder.glob(".tmp-*")) if self.folder.is_dir() else []
        for path in partial:
            shutil.rmtree(path, ignore_errors=True)
        return len(partial)

    def _prune(self) -> None:
        ckpts = self.store.checkpoints(self.run_id)
        keep = {c.id for c in ckpts[-self.keep:]} | {c.id for c in ckpts if c.is_best}
        for c in ckpts:
            if c.id not in keep:
                shutil.rmtree(c.path, ignore_errors=True)
                self.store.remove_checkpoint(c.id)


class RunRecord:
    """Rank 0's pen: status, events, metrics (batched), heartbeats and checkpoints of one run."""

    def __init__(self, store: Store, run_id: int, run_dir: Path, keep: int, *, enabled: bool) -> None:
        self.store, self.run_id, self.enabled = store, run_id, enabled
        self.keeper = CheckpointKeeper(store, run_id, run_dir / "checkpoints", keep) if enabled else None
        self.writer = store.metric_writer(run_id) if enabled else None
        # given back at close: a disk that fills up meanwhile still takes the run's last status
        self.reserve = store.reserve_space(run_id) if enabled else None

    def status(self, status: str, error: str | None = None) -> None:
        """Move the run to `status` (stamps pid, host and times)."""
        if self.enabled:
            self.store.set_status(self.run_id, status, error=error)

    def event(self, message: str, *, level: str = "info", kind: str = "note") -> None:
        """One line in the run's event log."""
        if self.enabled:
            self.store.add_event(self.run_id, message, level=level, kind=kind)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Queue metric rows, and mark the run alive at iteration `step`."""
        if self.writer is not None:
            self.writer.log(step, metrics)
            self.store.heartbeat(self.run_id, step=step)

    def rewind(self, step: int) -> int:
        """Back to a checkpoint's iteration: metric rows after `step` are deleted (so the curves
        have no duplicates or gaps) and the run's iteration is `step` again."""
        if not self.enabled:
            return 0
        dropped = self.store.delete_metrics_after(self.run_id, step)
        self.store.heartbeat(self.run_id, step=max(step, 0))
        return dropped

    def sweep_partial_checkpoints(self) -> int:
        """Remove half-written checkpoint folders of an earlier, killed attempt."""
        return self.keeper.sweep_partial() if self.keeper is not None else 0

    def checkpoint(self, step: int, policy: FlowPolicy, trainer_state: dict[str, Any],
                   metrics: dict[str, float], config: dict[str, Any]) -> str | None:
        """Flush the metrics up to `step`, then write the checkpoint; returns its folder."""
        if self.keeper is None or self.writer is None:
            return None
        self.writer.flush()
        return self.keeper.save(step, policy, trainer_state, metrics, config)

    @contextmanager
    def alive(self) -> Iterator[None]:
        """Heartbeats in the background while training."""
        with heartbeat(self.store, self.run_id) if self.enabled else nullcontext():
            yield

    def close(self) -> None:
        """Give back the reserved disk space, flush what is left."""
        if self.reserve is not None:
            self.reserve.release()
        if self.writer is not None:
            self.writer.close()

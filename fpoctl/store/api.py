"""The small API the rest of fpoctl uses to read and write runs, events, checkpoints, models."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fpoctl.errors import FpoctlError, NotFoundError
from fpoctl.store import db, metrics
from fpoctl.store.models import Checkpoint, Evaluation, Event, Model, Push, Run

HEARTBEAT_STALE_S = 120.0
"""A worker silent this long whose pid is gone is `lost` (FPOCTL_HEARTBEAT_STALE_S overrides)."""


class Store:
    """A connection to the run store. The trainer writes through it, the dashboard reads."""

    def __init__(self, url: str, *, auto_upgrade: bool = True) -> None:
        self.url = url
        self.engine: Engine = db.open_engine(url, auto_upgrade=auto_upgrade)
        self.session = db.session_factory(self.engine)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------
    def create_run(
        self,
        *,
        name: str,
        kind: str = "finetune",
        task: str = "",
        policy: str = "",
        config: dict[str, Any] | None = None,
        seed: int | None = None,
        git_sha: str | None = None,
        parent_id: int | None = None,
        total_steps: int | None = None,
        status: str = "queued",
    ) -> Run:
        """Insert a new run and return it (with its id)."""
        run = Run(
            name=name, kind=kind, task=task, policy=policy, config=config or {}, seed=seed,
            git_sha=git_sha, parent_id=parent_id, total_steps=total_steps, status=status,
            created=time.time(), step=0,
        )
        with self.session.begin() as s:
            s.add(run)
        return run

    def get_run(self, ref: int | str) -> Run:
        """A run by id or by name (the newest of that name)."""
        with self.session() as s:
            run = None
            if isinstance(ref, int) or str(ref).isdigit():
                run = s.get(Run, int(ref))
            if run is None:
                run = s.scalars(
                    sa.select(Run).where(Run.name == str(ref)).order_by(Run.id.desc())
                ).first()
        if run is None:
            raise NotFoundError(f"no run {ref!r} (see `fpoctl runs list`)")
        return run

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[Run]:
        """Runs, newest first."""
        if limit is not None and limit < 1:
            raise FpoctlError(f"--limit must be at least 1, got {limit}")
        query = sa.select(Run).order_by(Run.id.desc())
        if status:
            query = query.where(Run.status == status)
        if limit:
            query = query.limit(limit)
        with self.session() as s:
            return list(s.scalars(query))

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set columns of a run."""
        with self.session.begin() as s:
            s.execute(sa.update(Run).where(Run.id == run_id).values(**fields))

    def set_status(self, run_id: int, status: str, *, error: str | None = None) -> None:
        """Move a run to `status`, stamping start/finish times, and log it as an event."""
        now = time.time()
        fields: dict[str, Any] = {"status": status, "heartbeat": now}
        if status == "running":
            fields.update(started=now, finished=None, error=None, pid=os.getpid(),
                          host=socket.gethostname())
        if status in ("finished", "failed", "stopped"):
            fields["finished"] = now
        if error is not None:
            fields["error"] = error
        self.update_run(run_id, **fields)
        level = "error" if status == "failed" else "info"
        self.add_event(run_id, f"status -> {status}" + (f": {error}" if error else ""),
                       level=level, kind="status")

    def heartbeat(self, run_id: int, step: int | None = None) -> None:
        """Record that the worker is alive (and its current iteration)."""
        fields: dict[str, Any] = {"heartbeat": time.time()}
        if step is not None:
            fields["step"] = step
        self.update_run(run_id, **fields)

    def delete_run(self, run_id: int) -> None:
        """Delete a run and (by cascade) its metrics, events, checkpoints and evals."""
        with self.session.begin() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise NotFoundError(f"no run {run_id}")
            s.delete(run)

    # -- events -------------------------------------------------------------------------
    def add_event(self, run_id: int, message: str, *, level: str = "info", kind: str = "note") -> None:
        """Append one line to the run's event log."""
        with self.session.begin() as s:
            s.add(Event(run_id=run_id, time=time.time(), level=level, kind=kind, message=message))

    def events_since(self, run_id: int, after_id: int = 0, limit: int | None = None) -> list[Event]:
        """Events with id > `after_id`, oldest first."""
        query = (
            sa.select(Event).where(Event.run_id == run_id, Event.id > after_id).order_by(Event.id)
        )
        if limit:
            query = query.limit(limit)
        with self.session() as s:
            return list(s.scalars(query))

    # -- checkpoints --------------------------------------------------------------------
    def add_checkpoint(
        self, run_id: int, step: int, path: str, sha256: str,
        metrics: dict[str, float] | None = None, *, is_best: bool = False,
    ) -> Checkpoint:
        """Record a checkpoint written to disk (and, if best, un-mark the previous best)."""
        ckpt = Checkpoint(run_id=run_id, step=step, path=path, sha256=sha256,
                          metrics=metrics or {}, is_best=is_best, created=time.time())
        with self.session.begin() as s:
            if is_best:
                s.execute(sa.update(Checkpoint).where(Checkpoint.run_id == run_id)
                          .values(is_best=False))
            s.add(ckpt)
        return ckpt

    def checkpoints(self, run_id: int) -> list[Checkpoint]:
        """A run's checkpoints, oldest first."""
        with self.session() as s:
            return list(s.scalars(sa.select(Checkpoint).where(Checkpoint.run_id == run_id)
                                  .order_by(Checkpoint.step, Checkpoint.id)))

    def remove_checkpoint(self, checkpoint_id: int) -> None:
        """Forget a checkpoint (its files are the caller's business)."""
        with self.session.begin() as s:
            s.execute(sa.delete(Checkpoint).where(Checkpoint.id == checkpoint_id))

    # -- models, pushes, evals ----------------------------------------------------------
    def add_model(self, **fields: Any) -> Model:
        """Register a pulled model."""
        model = Model(created=time.time(), **fields)
        with self.session.begin() as s:
            s.add(model)
        return model

    def models(self) -> list[Model]:
        """Pulled models, newest first."""
        with self.session() as s:
            return list(s.scalars(sa.select(Model).order_by(Model.id.desc())))

    def remove_model(self, model_id: int) -> None:
        """Forget a pulled model."""
        with self.session.begin() as s:
            s.execute(sa.delete(Model).where(Model.id == model_id))

    def add_push(self, **fields: Any) -> Push:
        """Record a push to the Hub."""
        push = Push(created=time.time(), **fields)
        with self.session.begin() as s:
            s.add(push)
        return push

    def pushes(self, run_id: int | None = None) -> list[Push]:
        """Pushes, newest first (optionally of one run)."""
        query = sa.select(Push).order_by(Push.id.desc())
        if run_id is not None:
            query = query.where(Push.run_id == run_id)
        with self.session() as s:
            return list(s.scalars(query))

    def add_evaluation(self, **fields: Any) -> Evaluation:
        """Record an evaluation result."""
        ev = Evaluation(created=time.time(), **fields)
        with self.session.begin() as s:
            s.add(ev)
        return ev

    def evaluations(self, run_id: int | None = None) -> list[Evaluation]:
        """Evaluations, newest first (optionally of one run)."""
        query = sa.select(Evaluation).order_by(Evaluation.id.desc())
        if run_id is not None:
            query = query.where(Evaluation.run_id == run_id)
        with self.session() as s:
            return list(s.scalars(query))

    def reserve_space(self, run_id: int) -> db.DiskReserve:
        """Room held on the store's disk for a run's job until released (see `db.DiskReserve`)."""
        return db.DiskReserve(self.url, run_id)

    def release_space(self, run_id: int) -> None:
        """Give back the room a run's job held, after the job is gone (killed, or it crashed)."""
        if (path := db.reserve_file(self.url, run_id)) is not None:
            path.unlink(missing_ok=True)

    # -- metrics ------------------------------------------------------------------------
    def metric_writer(self, run_id: int, **kwargs: Any) -> metrics.MetricWriter:
        """A batched writer for one run's metrics (close it, or use it as a context manager)."""
        return metrics.MetricWriter(self.engine, run_id, **kwargs)

    def metrics_since(self, run_id: int, after_id: int = 0, **kwargs: Any) -> list[metrics.MetricRow]:
        """Metric rows newer than `after_id` (see `metrics.metrics_since`)."""
        return metrics.metrics_since(self.engine, run_id, after_id, **kwargs)

    def series(self, run_id: int, key: str) -> list[tuple[int, float]]:
        """All (step, value) points of one metric."""
        return metrics.series(self.engine, run_id, key)

    def metric_keys(self, run_id: int, pattern: str = "%") -> list[str]:
        """The run's metric keys matching an SQL LIKE pattern, e.g. "eval/task_%", sorted."""
        return metrics.keys_like(self.engine, run_id, pattern)

    def latest_values(self, run_ids: list[int], keys: list[str]) -> dict[int, dict[str, float]]:
        """Newest value of each key per run."""
        return metrics.latest_values(self.engine, run_ids, keys)

    def best_values(self, run_ids: list[int], key: str) -> dict[int, float]:
        """Maximum of one key per run."""
        return metrics.best_values(self.engine, run_ids, key)

    def max_metric_id(self) -> int:
        """The newest metric row id of any run (0 when there is none)."""
        return metrics.max_metric_id(self.engine)

    def metric_rows_after(self, after_id: int, keys: Sequence[str], limit: int) -> list[metrics.KeyedRow]:
        """Rows of any run newer than `after_id` with one of `keys`, oldest first (an id range scan)."""
        return metrics.metric_rows_after(self.engine, after_id, keys, limit)

    def delete_metrics_after(self, run_id: int, step: int) -> int:
        """Delete a run's metric rows logged after `step`; returns how many went."""
        return metrics.delete_after(self.engine, run_id, step)


def heartbeat_stale_s() -> float:
    """Seconds without a heartbeat after which a run whose worker is gone shows as `lost`."""
    try:
        return float(os.environ.get("FPOCTL_HEARTBEAT_STALE_S", HEARTBEAT_STALE_S))
    except ValueError:
        return HEARTBEAT_STALE_S

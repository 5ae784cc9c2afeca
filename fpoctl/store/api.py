"""The small API the rest of fpoctl uses to read and write runs, events, checkpoints, models."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fpoctl.errors import FpoctlError, NotFoundError
from fpoctl.store import db, metrics
from fpoctl.store.models import Checkpoint, Evaluation, Event, Model, Push, Run
from fpoctl.store.timing import RECENT_STEPS, heartbeat_stale_s

STEP_TIME_ROWS = 4000
"""Newest metric rows `step_times` reads (tens of keys an iteration: enough for RECENT_STEPS)."""


class Store:
    """A connection to the run store. The trainer writes through it, the dashboard reads."""

    def __init__(self, url: str, *, auto_upgrade: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.clock = clock
        """Where every time the store stamps comes from (a test hands in a fake clock)."""
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
            created=self.clock(), step=0,
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
        """Move a run to `status`, stamping times, and log it as an event. Leaving `running` ends
        the open attempt: its time (see `timing.attempt_end`) is added to `active_s`; entering it
        starts one (`started`; `first_started` the first time). Any change clears `phase`."""
        now = self.clock()
        fields: dict[str, Any] = {"status": status, "heartbeat": now, "phase": None,
                                  "active_s": self._closed_attempt(now)}
        if status == "running":
            fields.update(started=now, first_started=sa.func.coalesce(Run.first_started, now),
                          finished=None, error=None, pid=os.getpid(), host=socket.gethostname())
        if status in ("finished", "failed", "stopped"):
            fields["finished"] = now
        if error is not None:
            fields["error"] = error
        self.update_run(run_id, **fields)
        level = "error" if status == "failed" else "info"
        self.add_event(run_id, f"status -> {status}" + (f": {error}" if error else ""),
                       level=level, kind="status")

    def requeue(self, run_id: int) -> None:
        """Queue a run again for a new attempt (a resume): an attempt left open by a lost worker
        ends at its last heartbeat."""
        self.update_run(run_id, status="queued", error=None, finished=None, pid=None, phase=None,
                        active_s=self._closed_attempt(self.clock()))

    @staticmethod
    def _closed_attempt(now: float) -> sa.ColumnElement[float]:
        """`active_s` after the open attempt (if any) ends, as one SQL expression so that the
        update reads and writes the row at once (`timing.attempt_end`'s rule: up to now while the
        heartbeat is fresh, else up to the heartbeat)."""
        fresh = sa.and_(Run.heartbeat.is_not(None), Run.heartbeat >= now - heartbeat_stale_s())
        end = sa.case((fresh, now), else_=sa.func.coalesce(Run.heartbeat, Run.started))
        attempt = sa.case((end > Run.started, end - Run.started), else_=0.0)
        is_open = sa.and_(Run.status == "running", Run.started.is_not(None))
        return sa.case((is_open, Run.active_s + attempt), else_=Run.active_s)

    def heartbeat(self, run_id: int, step: int | None = None) -> None:
        """Record that the worker is alive (and its current iteration)."""
        fields: dict[str, Any] = {"heartbeat": self.clock()}
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
            s.add(Event(run_id=run_id, time=self.clock(), level=level, kind=kind, message=message))

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
                          metrics=metrics or {}, is_best=is_best, created=self.clock())
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
        model = Model(created=self.clock(), **fields)
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
        push = Push(created=self.clock(), **fields)
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
        ev = Evaluation(created=self.clock(), **fields)
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
        return metrics.MetricWriter(self.engine, run_id, **{"clock": self.clock, **kwargs})

    def metrics_since(self, run_id: int, after_id: int = 0, **kwargs: Any) -> list[metrics.MetricRow]:
        """Metric rows newer than `after_id` (see `metrics.metrics_since`)."""
        return metrics.metrics_since(self.engine, run_id, after_id, **kwargs)

    def step_times(self, run_id: int, since: float | None = None,
                   limit: int = RECENT_STEPS) -> list[tuple[float, int]]:
        """(time, step) of the run's newest `limit` logged steps (logged at or after `since`),
        oldest first: what `timing.eta_s` measures the recent rate with."""
        return metrics.step_times(self.engine, run_id, since, limit, rows=STEP_TIME_ROWS)

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


"""Metric rows: a batched writer for the trainer and an incremental reader for the dashboard."""

from __future__ import annotations

import atexit
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fpoctl.errors import StoreError
from fpoctl.store.models import Metric

_metrics = Metric.__table__


class MetricRow(NamedTuple):
    """One stored scalar; `id` orders rows and lets a reader ask for newer ones."""

    id: int
    step: int
    key: str
    value: float
    time: float


class KeyedRow(NamedTuple):
    """A metric row of any run (a `MetricRow` belongs to one run)."""

    id: int
    run_id: int
    key: str
    value: float


class MetricWriter:
    """Buffers metric rows and inserts them in batches: every `max_rows` rows, every
    `max_seconds` (a background flusher), and on `close()` / exit. When a batch cannot be written
    (a full disk, a read-only or locked store) the writer stops: the next `log` / `flush` raises
    that error as a StoreError in the caller's thread (the flusher thread never raises)."""

    def __init__(
        self, engine: Engine, run_id: int, *, max_rows: int = 1000, max_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine, self.run_id, self.clock = engine, run_id, clock
        self.max_rows, self.max_seconds = max_rows, max_seconds
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._failed: str | None = None  # why a batch could not be written
        self._flusher = threading.Thread(target=self._flush_periodically, daemon=True)
        self._flusher.start()
        atexit.register(self.close)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Queue one row per key (non-finite values are skipped: NaN never reaches a plot); raises
        the StoreError of a batch that could not be written."""
        if self._failed is not None:
            raise StoreError(self._failed)
        now = self.clock()
        rows = [
            {"run_id": self.run_id, "step": int(step), "key": k, "value": float(v), "time": now}
            for k, v in values.items()
            if v is not None and math.isfinite(float(v))
        ]
        with self._lock:
            self._rows.extend(rows)
            full = len(self._rows) >= self.max_rows
        if full:
            self.flush()

    def flush(self) -> int:
        """Insert everything buffered in one transaction; returns the number of rows written."""
        with self._lock:
            if self._failed is not None:
                raise StoreError(self._failed)
            rows, self._rows = self._rows, []
            if rows:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(sa.insert(_metrics), rows)
                except Exception as exc:
                    self._failed = (str(exc) if isinstance(exc, StoreError)
                                    else f"store: metrics could not be written: {type(exc).__name__}: "
                                         f"{(str(exc).splitlines() or [''])[0]}")
                    raise StoreError(self._failed) from None
        return len(rows)

    def close(self) -> None:
        """Flush what is left and stop the background flusher (idempotent; after a failed write
        there is nothing more to flush, and nothing is raised again)."""
        if self._closed.is_set():
            return
        self._closed.set()
        atexit.unregister(self.close)
        self._flusher.join(timeout=5)
        if self._failed is None:
            self.flush()

    def _flush_periodically(self) -> None:
        while not self._closed.wait(self.max_seconds):
            try:
                self.flush()
            except StoreError:
                return  # the trainer hears of it at its next log or flush

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def metrics_since(
    engine: Engine,
    run_id: int,
    after_id: int = 0,
    *,
    keys: list[str] | None = None,
    limit: int | None = None,
) -> list[MetricRow]:
    """Rows of a run with id > `after_id`, oldest first (uses the (run_id, id) index)."""
    query = (
        sa.select(_metrics.c.id, _metrics.c.step, _metrics.c.key, _metrics.c.value, _metrics.c.time)
        .where(_metrics.c.run_id == run_id, _metrics.c.id > after_id)
        .order_by(_metrics.c.id)
    )
    if keys:
        query = query.where(_metrics.c.key.in_(keys))
    if limit:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [MetricRow(*r) for r in conn.execute(query)]


def step_times(engine: Engine, run_id: int, since: float | None, limit: int, *,
               rows: int) -> list[tuple[float, int]]:
    """(time, step) of a run's newest `limit` steps among its newest `rows` rows (logged at or
    after `since`), oldest first; a step's time is that of its last row. One (run_id, id) index
    scan, whatever the run's size."""
    query = (
        sa.select(_metrics.c.step, _metrics.c.time)
        .where(_metrics.c.run_id == run_id)
        .order_by(_metrics.c.id.desc())
        .limit(rows)
    )
    if since is not None:
        query = query.where(_metrics.c.time >= since)
    last: dict[int, float] = {}
    with engine.connect() as conn:
        for step, at in conn.execute(query):
            last[int(step)] = max(float(at), last.get(int(step), float(at)))
    return [(last[s], s) for s in sorted(last)[-limit:]]


def max_metric_id(engine: Engine) -> int:
    """The newest metric row id in the whole store (0 when empty); one primary-key seek."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(_metrics.c.id))).scalar() or 0)


def metric_rows_after(engine: Engine, after_id: int, keys: Sequence[str], limit: int) -> list[KeyedRow]:
    """Rows of any run with id > `after_id` and one of `keys`, oldest first (a primary-key
    range scan: cost grows with the rows written since `after_id`, not with the table)."""
    query = (
        sa.select(_metrics.c.id, _metrics.c.run_id, _metrics.c.key, _metrics.c.value)
        .where(_metrics.c.id > after_id, _metrics.c.key.in_(list(keys)))
        .order_by(_metrics.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [KeyedRow(*r) for r in conn.execute(query)]


def series(engine: Engine, run_id: int, key: str) -> list[tuple[int, float]]:
    """All (step, value) points of one key, by step."""
    query = (
        sa.select(_metrics.c.step, _metrics.c.value)
        .where(_metrics.c.run_id == run_id, _metrics.c.key == key)
        .order_by(_metrics.c.step, _metrics.c.id)
    )
    with engine.connect() as conn:
        return [(int(s), float(v)) for s, v in conn.execute(query)]


def keys_like(engine: Engine, run_id: int, pattern: str) -> list[str]:
    """The distinct keys of one run that match an SQL LIKE pattern (`eval/task_%`), sorted."""
    query = (
        sa.select(_metrics.c.key).distinct()
        .where(_metrics.c.run_id == run_id, _metrics.c.key.like(pattern))
        .order_by(_metrics.c.key)
    )
    with engine.connect() as conn:
        return [str(k) for (k,) in conn.execute(query)]


def latest_values(engine: Engine, run_ids: list[int], keys: list[str]) -> dict[int, dict[str, float]]:
    """The value at the highest step of each key for each run (index seeks, one per pair)."""
    out: dict[int, dict[str, float]] = {rid: {} for rid in run_ids}
    rid_p, key_p = sa.bindparam("rid"), sa.bindparam("key")
    query = (
        sa.select(_metrics.c.value)
        .where(_metrics.c.run_id == rid_p, _metrics.c.key == key_p)
        .order_by(_metrics.c.step.desc(), _metrics.c.id.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        for rid in run_ids:
            for key in keys:
                value = conn.execute(query, {"rid": rid, "key": key}).scalar()
                if value is not None:
                    out[rid][key] = float(value)
    return out


def best_values(engine: Engine, run_ids: list[int], key: str) -> dict[int, float]:
    """The maximum of one key for each run (e.g. best success rate)."""
    if not run_ids:
        return {}
    query = (
        sa.select(_metrics.c.run_id, sa.func.max(_metrics.c.value))
        .where(_metrics.c.run_id.in_(run_ids), _metrics.c.key == key)
        .group_by(_metrics.c.run_id)
    )
    with engine.connect() as conn:
        return {int(rid): float(v) for rid, v in conn.execute(query)}


def delete_after(engine: Engine, run_id: int, step: int) -> int:
    """Remove rows logged after `step` (resume reconciles curves with the last checkpoint)."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.delete(_metrics).where(_metrics.c.run_id == run_id, _metrics.c.step > step)
        )
    return result.rowcount or 0

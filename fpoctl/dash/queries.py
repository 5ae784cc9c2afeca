"""Reads the store API lacks, for the runs table's incremental refresh (SQLAlchemy Core)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fpoctl.store.models import Metric

_metrics = Metric.__table__


class KeyedRow(NamedTuple):
    """A metric row with its run (the store's `MetricRow` is per run)."""

    id: int
    run_id: int
    key: str
    value: float


def max_metric_id(engine: Engine) -> int:
    """The newest metric row id in the whole store (0 when empty); one primary-key seek."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(_metrics.c.id))).scalar() or 0)


def metric_rows_after(
    engine: Engine, after_id: int, keys: Sequence[str], limit: int
) -> list[KeyedRow]:
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

"""The run store's tables (SQLAlchemy 2.x ORM). Times are Unix seconds (float, UTC).

The schema is created and changed only by the alembic migrations in `migrations/`;
`tests/test_store_migrations.py` fails when these classes and the migrations drift.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RUN_STATUSES = ("queued", "running", "finished", "failed", "stopped", "lost")


class Base(DeclarativeBase):
    """Declarative base for every fpoctl table."""


class Run(Base):
    """One job: an SFT, a fine-tune or an evaluation, with its full resolved config."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="finetune")
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    task: Mapped[str] = mapped_column(String(200), default="")
    policy: Mapped[str] = mapped_column(String(200), default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    git_sha: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    created: Mapped[float] = mapped_column(Float)
    started: Mapped[float | None] = mapped_column(Float)
    finished: Mapped[float | None] = mapped_column(Float)
    heartbeat: Mapped[float | None] = mapped_column(Float)
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(200))
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    active_s: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    """Seconds spent running in earlier, ended attempts (the open one counts from `started`)."""
    first_started: Mapped[float | None] = mapped_column(Float)
    """When the run first ran (`started` is when its current or last attempt did)."""
    phase: Mapped[str | None] = mapped_column(Text)
    """What the run does when not iterating ("evaluating the prior: 12/50 episodes (1.4 episodes/s)")."""


class Metric(Base):
    """One scalar in long format. `id` grows monotonically: readers ask for rows after an id."""

    __tablename__ = "metrics"
    __table_args__ = (
        Index("ix_metrics_run_id_id", "run_id", "id"),
        Index("ix_metrics_run_key_step", "run_id", "key", "step"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    time: Mapped[float] = mapped_column(Float)


class Event(Base):
    """Something that happened in a run: checkpoint, eval, warning, error, status change."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_run_id_id", "run_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    time: Mapped[float] = mapped_column(Float)
    level: Mapped[str] = mapped_column(String(16), default="info")
    kind: Mapped[str] = mapped_column(String(32), default="note")
    message: Mapped[str] = mapped_column(Text)


class Checkpoint(Base):
    """A saved training state on disk, with the hash checked on load."""

    __tablename__ = "checkpoints"
    __table_args__ = (Index("ix_checkpoints_run_step", "run_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    is_best: Mapped[bool] = mapped_column(default=False)
    created: Mapped[float] = mapped_column(Float)


class Model(Base):
    """A checkpoint pulled from the Hub into the local cache."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alias: Mapped[str | None] = mapped_column(String(200), index=True)
    repo: Mapped[str] = mapped_column(String(300))
    revision: Mapped[str] = mapped_column(String(200), default="main")
    commit_sha: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    policy_type: Mapped[str] = mapped_column(String(64), default="")
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    n_params: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[float] = mapped_column(Float)


class Push(Base):
    """A run's checkpoint published to the Hub."""

    __tablename__ = "pushes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    checkpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="SET NULL")
    )
    repo: Mapped[str] = mapped_column(String(300))
    branch: Mapped[str] = mapped_column(String(200), default="main")
    private: Mapped[bool] = mapped_column(default=False)
    commit_url: Mapped[str] = mapped_column(Text, default="")
    commit_sha: Mapped[str] = mapped_column(String(64), default="")
    created: Mapped[float] = mapped_column(Float)


class Evaluation(Base):
    """An evaluation of a policy (a run's checkpoint, a pulled model or a folder) on a task."""

    __tablename__ = "evals"
    __table_args__ = (Index("ix_evals_run_id", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(Text)
    task: Mapped[str] = mapped_column(String(200))
    episodes: Mapped[int] = mapped_column(Integer)
    success_rate: Mapped[float] = mapped_column(Float)
    mean_return: Mapped[float] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[float] = mapped_column(Float)

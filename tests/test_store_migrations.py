"""The schema is made by alembic only: up from empty to head, back down, and no drift."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fpoctl.store import db
from fpoctl.store.models import Base


def test_upgrade_from_empty_to_head_and_back_down(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 's.db'}")
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    tables = set(sa.inspect(engine).get_table_names())
    assert {"runs", "metrics", "events", "checkpoints", "models", "pushes", "evals"} <= tables
    db.downgrade(engine, "base")
    assert db.current_revision(engine) is None
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}


def test_orm_models_match_migrations(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 's.db'}")
    db.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                Base.metadata)
    assert diff == [], f"models and migrations drift; add a migration: {diff}"


def test_sqlite_pragmas_are_set(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.BUSY_TIMEOUT_MS


def test_migrations_ship_inside_the_package() -> None:
    # The wheel includes fpoctl/store/migrations (package-data); the path is package-relative.
    assert (db.MIGRATIONS / "env.py").exists()
    assert any((db.MIGRATIONS / "versions").glob("0001_*.py"))
    assert db.MIGRATIONS.is_relative_to(Path(db.__file__).parent)

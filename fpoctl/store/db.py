"""Open the run store: engine, SQLite pragmas, and self-upgrade through alembic under a lock."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from filelock import FileLock, Timeout
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from fpoctl.errors import StoreError

if TYPE_CHECKING:  # alembic loads (~0.2 s) only to migrate or to read an unknown revision
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for SQLite's lock (FPOCTL_DB_BUSY_TIMEOUT_S overrides, in seconds)."""


def busy_timeout_ms() -> int:
    """The lock wait in milliseconds, from FPOCTL_DB_BUSY_TIMEOUT_S when set."""
    raw = os.environ.get("FPOCTL_DB_BUSY_TIMEOUT_S")
    try:
        return int(float(raw) * 1000) if raw else BUSY_TIMEOUT_MS
    except ValueError:
        raise StoreError(f"FPOCTL_DB_BUSY_TIMEOUT_S must be a number of seconds, got {raw!r}") from None


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An alembic Config pointing at the packaged migrations (works from a wheel)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest migration this code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


_REVISION_LINE = re.compile(r"""^(down_)?revision\s*(?::[^=]*)?=\s*['"]([^'"]+)['"]""", re.MULTILINE)


def newest_migration() -> str | None:
    """`head_revision` read from the migration files without alembic (the check at every open);
    None when they do not make one line of revisions (then ask alembic)."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for down, rev in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            (parents if down else revisions).add(rev)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def database_file(url: str) -> Path | None:
    """The file of an SQLite store (None: a server database, an in-memory one, or no URL at all)."""
    try:
        return _sqlite_path(sa.make_url(url))
    except sa.exc.ArgumentError:
        return None


RESERVE_BYTES = 2 * 2**20
"""Room a writing job holds on the disk of an SQLite store and gives back at its end."""


def reserve_file(url: str, run_id: int) -> Path | None:
    """Where a run's job holds its DiskReserve (None: a server store)."""
    file = database_file(url)
    return file.with_name(f".{file.name}.reserve-run-{run_id}") if file is not None else None


class DiskReserve:
    """A file of RESERVE_BYTES beside an SQLite store while a run's job writes to it: when the disk
    fills up, releasing it leaves room to record how the run ended (a server store holds none)."""

    def __init__(self, url: str, run_id: int) -> None:
        self.path = reserve_file(url, run_id)
        if self.path is None:
            return
        try:
            self.path.write_bytes(bytes(RESERVE_BYTES))  # written: a sparse file would hold no room
        except OSError:  # no room for it: the job goes without
            self.release()

    def release(self) -> None:
        """Give the room back (idempotent)."""
        if self.path is not None:
            with suppress(OSError):
                self.path.unlink(missing_ok=True)
            self.path = None


def _sqlite_path(url: sa.URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def _set_sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


WRITE_FAILURES = {
    "database is locked": "is another process holding a write lock on it? FPOCTL_DB_BUSY_TIMEOUT_S "
                          "waits longer",
    "database or disk is full": "free some space on its disk, or move the store (--db / --home)",
    "readonly database": "the store cannot be written: make it writable, or use another --db / --home",
    "disk i/o error": "the disk failed to read or write it",
}
"""SQLite's words for a store that cannot take a write (a fragment of the message) -> what to do."""


def _write_failure(context: sa.engine.ExceptionContext) -> None:
    """Engine hook: a write the store cannot take (locked, full, read-only, I/O) is a one-line
    StoreError naming the database and what to do; other errors pass unchanged."""
    exc = context.original_exception
    if not isinstance(exc, sqlite3.OperationalError):
        return
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for fragment, fix in WRITE_FAILURES.items():
        if fragment in message.lower():
            where = context.engine.url.database if context.engine is not None else "?"
            raise StoreError(f"store {where}: {message} ({fix})") from None


def make_engine(url: str) -> Engine:
    """An engine with fpoctl's settings: for SQLite WAL, busy timeout and foreign keys, and
    one-line errors for writes it cannot take."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreError(f"not a database URL: {url!r}") from None
    path = _sqlite_path(parsed)
    if path is not None:
        if not path.parent.exists():
            raise StoreError(f"the folder of the database does not exist: {path.parent}")
        engine = sa.create_engine(
            parsed, connect_args={"timeout": busy_timeout_ms() / 1000, "check_same_thread": False}
        )
        event.listen(engine, "connect", _set_sqlite_pragmas)
        event.listen(engine, "handle_error", _write_failure)
        return engine
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise StoreError(f"cannot use database {parsed.render_as_string()}: {exc}") from None


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database (None for an empty one)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def stored_revision(engine: Engine) -> str | None:
    """`current_revision` by plain SQL (alembic's version table), without loading alembic."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, target: str = "head") -> None:
    """Migrate the schema to `target`, refusing a database newer than this code."""
    from alembic import command

    with _migration_lock(engine):
        _check_not_newer(engine)
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), target)


def downgrade(engine: Engine, target: str) -> None:
    """Migrate the schema down to `target` ("base" empties it)."""
    from alembic import command

    with _migration_lock(engine), engine.begin() as conn:
        command.downgrade(alembic_config(conn), target)


def _check_not_newer(engine: Engine) -> None:
    from alembic.script import ScriptDirectory

    rev = current_revision(engine)
    if rev is None:
        return
    script = ScriptDirectory.from_config(alembic_config())
    try:
        script.get_revision(rev)
    except Exception:
        raise StoreError(
            f"the database schema ({rev}) is newer than this fpoctl knows (head "
            f"{head_revision()}); upgrade fpoctl (pip install -U fpoctl)"
        ) from None


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """A file lock beside a SQLite database so two processes never migrate at once."""
    path = _sqlite_path(engine.url)
    if path is None:  # server databases serialise DDL inside the migration transaction
        yield
        return
    try:
        with FileLock(str(path) + ".lock", timeout=120):
            yield
    except Timeout:
        raise StoreError(f"timed out waiting for the migration lock {path}.lock") from None


def open_engine(url: str, *, auto_upgrade: bool = True) -> Engine:
    """Connect, check the file is a database we can use, and upgrade it to head."""
    engine = make_engine(url)
    try:
        if auto_upgrade:
            newest = newest_migration()
            if newest is None or stored_revision(engine) != newest:  # at head: no alembic at all
                rev = current_revision(engine)
                if rev != head_revision():
                    upgrade(engine)
        else:
            _check_not_newer(engine)
    except sa.exc.DatabaseError as exc:
        engine.dispose()
        raise StoreError(_explain(url, exc)) from None
    except StoreError:
        engine.dispose()
        raise
    return engine


def _explain(url: str, exc: sa.exc.DatabaseError) -> str:
    msg = str(exc.orig) if exc.orig is not None else str(exc)
    if "file is not a database" in msg:
        return f"{sa.make_url(url).database} is not an SQLite database (file is not a database)"
    if "unable to open" in msg or "readonly" in msg:
        return f"cannot open the store {sa.make_url(url).render_as_string()}: {msg}"
    return f"store error ({sa.make_url(url).render_as_string()}): {msg.splitlines()[0]}"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)

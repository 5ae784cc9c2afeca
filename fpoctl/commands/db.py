"""`fpoctl db upgrade|current`: the store's schema, migrated by alembic."""

from __future__ import annotations

from typing import Annotated

import typer

from fpoctl.commands.common import console, print_json, settings

app = typer.Typer(no_args_is_help=True, help="Inspect and migrate the run store's schema.")


@app.command("current")
def current(
    ctx: typer.Context,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the store's URL, its schema revision and the newest this fpoctl knows."""
    from fpoctl.store import db

    cfg = settings(ctx)
    engine = db.open_engine(cfg.db_url, auto_upgrade=False)
    try:
        rev, head = db.current_revision(engine), db.head_revision()
    finally:
        engine.dispose()
    if json_:
        print_json({"url": cfg.db_url, "revision": rev, "head": head})
        return
    state = "up to date" if rev == head else "needs `fpoctl db upgrade`"
    console.print(f"{cfg.db_url}\nrevision {rev or '(empty)'} (head {head}): {state}")


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the store to the newest schema (fpoctl also does this when it opens the store)."""
    from fpoctl.store import db

    cfg = settings(ctx)
    if cfg.db_url.startswith("sqlite:///"):
        cfg.ensure_home()
    engine = db.open_engine(cfg.db_url, auto_upgrade=False)
    try:
        db.upgrade(engine, revision)
        console.print(f"store at revision {db.current_revision(engine)}")
    finally:
        engine.dispose()

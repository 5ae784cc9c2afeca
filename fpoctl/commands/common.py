"""What every command shares: settings from the global options, the store, consoles, output.

Command modules import only typer, rich and light fpoctl modules at module level; the store,
the trainer, simulators and the dashboard load inside the command that needs them, so that
`fpoctl --help` starts fast (tests/test_startup.py)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from fpoctl.fmt import duration
from fpoctl.settings import Settings

if TYPE_CHECKING:
    from fpoctl.store import Store
    from fpoctl.train.job import JobResult

console = Console()
err_console = Console(stderr=True)


def settings(ctx: typer.Context) -> Settings:
    """The Settings the root callback resolved (home, database URL)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings.resolve()
    return root.obj


def open_store(ctx: typer.Context) -> Store:
    """Open (and if needed create and upgrade) the run store."""
    from fpoctl.store import Store

    cfg = settings(ctx)
    if cfg.db_url.startswith("sqlite:///"):
        cfg.ensure_home()
    return Store(cfg.db_url)


def print_json(data: Any) -> None:
    """Machine-readable output for --json."""
    typer.echo(json.dumps(data, indent=2, default=str))


def script_result(result: JobResult, *, json_: bool) -> None:
    """A job that trained in this process, for scripts (--json / -q): its run id and result as
    JSON, or only the run id; exit 1 unless it finished."""
    if json_:
        print_json(result.__dict__)
    else:
        typer.echo(result.run_id)
    raise typer.Exit(0 if result.status == "finished" else 1)


def ago(t: float | None, now: float | None = None) -> str:
    """'12s ago', '5m ago', '3h ago', '2d ago' (or '-')."""
    if t is None:
        return "-"
    return duration((now or time.time()) - t) + " ago"

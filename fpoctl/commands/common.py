"""What every command shares: settings from the global options, the store, consoles, output."""

from __future__ import annotations

import json
import time
from typing import Any

import typer
from rich.console import Console

from fpoctl.settings import Settings
from fpoctl.store import Store

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
    cfg = settings(ctx)
    if cfg.db_url.startswith("sqlite:///"):
        cfg.ensure_home()
    return Store(cfg.db_url)


def print_json(data: Any) -> None:
    """Machine-readable output for --json."""
    typer.echo(json.dumps(data, indent=2, default=str))


def ago(t: float | None, now: float | None = None) -> str:
    """'12s ago', '5m ago', '3h ago', '2d ago' (or '-')."""
    if t is None:
        return "-"
    return duration((now or time.time()) - t) + " ago"


def duration(seconds: float | None) -> str:
    """A compact duration: 42s, 5m12s, 3h05m, 2d04h."""
    if seconds is None:
        return "-"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 40) -> str:
    """A unicode sparkline of the last `width` points (downsampled by averaging)."""
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [
            sum(values[int(i * step):int((i + 1) * step)]) / max(1, int((i + 1) * step) - int(i * step))
            for i in range(width)
        ]
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(SPARK[min(7, int((v - lo) / span * 7.999))] for v in values)

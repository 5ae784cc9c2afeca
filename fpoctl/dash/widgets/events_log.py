"""A run's event log (checkpoints, evals, warnings, errors), times relative to the run's start."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from fpoctl.dash.data import EventInfo
from fpoctl.fmt import duration

LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": ""}


class EventsLog(RichLog):
    """Appends events as they arrive; keeps the newest 2000."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, max_lines=2000, wrap=True, markup=False,
                         min_width=20)

    def add(self, events: list[EventInfo], started: float | None) -> None:
        """Write events (oldest first) as `+elapsed kind message`."""
        for e in events:
            line = Text()
            since = "+" + duration(e.time - started) if started else "?"
            line.append(f"{since:>7} ", style="dim")
            line.append(f"{e.kind:<10} ", style="cyan")
            line.append(e.message, style=LEVEL_STYLE.get(e.level, ""))
            self.write(line)

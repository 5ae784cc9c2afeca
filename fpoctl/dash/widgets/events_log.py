"""A run's event log (checkpoints, evals, warnings, errors), each event at its offset from the
run's first start, so events before a resume keep their times; a rule marks each resume."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from fpoctl.dash.data import EventInfo
from fpoctl.fmt import duration

LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": ""}
RESUME_RULE = "── resumed " + "─" * 30


def event_line(event: EventInfo, started: float | None) -> Text:
    """`+offset kind message`, the offset from the run's first start (`?` without one)."""
    line = Text()
    since = "+" + duration(event.time - started) if started else "?"
    line.append(f"{since:>7} ", style="dim")
    line.append(f"{event.kind:<10} ", style="cyan")
    line.append(event.message, style=LEVEL_STYLE.get(event.level, ""))
    return line


class EventsLog(RichLog):
    """Appends events as they arrive; keeps the newest 2000."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, max_lines=2000, wrap=True, markup=False,
                         min_width=20)
        self._last_kind: str | None = None  # of the last event that was not a status change

    def add(self, events: list[EventInfo], started: float | None) -> None:
        """Write events (oldest first); `started` is the run's first start. The first `resume`
        event of a resume (`resume requested`, then `resumed from step N`) gets a rule above it."""
        for e in events:
            if e.kind == "resume" and self._last_kind != "resume":
                self.write(Text(RESUME_RULE, style="magenta"))
            self.write(event_line(e, started))
            if e.kind != "status":
                self._last_kind = e.kind

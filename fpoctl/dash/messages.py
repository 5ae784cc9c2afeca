"""Messages the store reader posts to screens (from its thread; Textual queues them safely)."""

from __future__ import annotations

from textual.message import Message

from fpoctl.dash.data import Curve, EventInfo, RunInfo


class RunsUpdated(Message):
    """The runs table's rows changed."""

    def __init__(self, runs: list[RunInfo]) -> None:
        super().__init__()
        self.runs = runs


class RunUpdated(Message):
    """One run changed: its summary, curves of keys with new rows, and new events."""

    def __init__(self, run: RunInfo, curves: dict[str, Curve], events: list[EventInfo],
                 x_label: str, checkpoints: list[tuple[int, bool]], behind: bool) -> None:
        super().__init__()
        self.run, self.curves, self.events = run, curves, events
        self.x_label, self.checkpoints, self.behind = x_label, checkpoints, behind


class CompareUpdated(Message):
    """The compared runs changed: their summaries and their curves per key."""

    def __init__(self, runs: list[RunInfo], curves: dict[int, dict[str, Curve]],
                 x_label: str) -> None:
        super().__init__()
        self.runs, self.curves, self.x_label = runs, curves, x_label


class ReadFailed(Message):
    """A read of the store failed (the reader retries on the next tick)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error

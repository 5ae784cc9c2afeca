"""Messages the store reader posts to screens (from its thread; Textual queues them safely)."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from fpoctl.dash.data import Curve, EventInfo, RunInfo
from fpoctl.dash.views import CompareView, RunDetail


class RunsUpdated(Message):
    """The runs table's rows changed."""

    def __init__(self, runs: list[RunInfo]) -> None:
        super().__init__()
        self.runs = runs


class RunUpdated(Message):
    """One run changed: its summary and header detail, curves of keys with new rows, new events."""

    def __init__(self, run: RunInfo, curves: dict[str, Curve], events: list[EventInfo],
                 x_label: str, checkpoints: list[tuple[int, bool]], behind: bool,
                 detail: RunDetail) -> None:
        super().__init__()
        self.run, self.curves, self.events = run, curves, events
        self.x_label, self.checkpoints, self.behind = x_label, checkpoints, behind
        self.detail = detail


class CompareUpdated(Message):
    """The compared runs (or the view) changed: their summaries, each run's curve of the viewed
    metric, the metrics any of them logs, episodes per plotted point, and the config keys in
    which they differ (key -> value per run)."""

    def __init__(self, runs: list[RunInfo], curves: dict[int, Curve], x_label: str,
                 view: CompareView, keys: list[str], per_point: dict[int, float | None],
                 differ: dict[str, list[Any]]) -> None:
        super().__init__()
        self.runs, self.curves, self.x_label, self.view = runs, curves, x_label, view
        self.keys, self.per_point, self.differ = keys, per_point, differ


class ReadFailed(Message):
    """A read of the store failed (the reader retries on the next tick)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error

"""The run screen: the header, then the panels of the run's kind (`layout.panels_for`: an FPO run's
success, return, critic, ratio, FPO and performance panels; an SFT run's loss and numbers) and
its events. The panels are built on the first update, when the run's kind and config are known."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header

from fpoctl.dash import layout
from fpoctl.dash.data import Curve, RunInfo
from fpoctl.dash.feeds import RunFeed
from fpoctl.dash.messages import ReadFailed, RunUpdated
from fpoctl.dash.screens.keys import RUN_BINDINGS, RunKeys
from fpoctl.dash.widgets.events_log import EventsLog
from fpoctl.dash.widgets.metric_panel import MetricPanel
from fpoctl.dash.widgets.run_header import RunHeader


def x_range(curves: dict[str, Curve]) -> tuple[float, float] | None:
    """One x range for every plot of the run: 0 to the furthest point of any curve."""
    tops = [c.x[-1] for c in curves.values() if c.x]
    return (0.0, max(tops)) if tops and max(tops) > 0 else None


class RunScreen(RunKeys, Screen[None]):
    """Everything about one run, refreshed as rows arrive."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "back"),
        *RUN_BINDINGS,
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.loaded = False
        self.run: RunInfo | None = None
        self.curves: dict[str, Curve] = {}
        self.panels: list[MetricPanel] = []
        self.events = EventsLog(id="events")
        self._built = False
        self._token: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield RunHeader(id="run-header")
        yield VerticalScroll(id="panels")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"run {self.run_id}"
        self._token = self.app.reader.subscribe(self, RunFeed(self.run_id))

    def on_unmount(self) -> None:
        if self._token is not None:
            self.app.reader.unsubscribe(self._token)

    def _build(self, run: RunInfo, keys: set[str]) -> None:
        """Mount the panels of the run's kind (once)."""
        self.panels = [MetricPanel(spec) for spec in layout.panels_for(run.kind, run.config, keys)]
        events = Vertical(self.events, id=layout.EVENTS_ID, classes="panel")
        events.border_title = "events"
        container = self.query_one("#panels")
        container.add_class(layout.layout_name(run.kind))
        container.mount(*self.panels, events)
        self._built = True

    def on_run_updated(self, message: RunUpdated) -> None:
        run = self.run = message.run
        if not self._built:
            self._build(run, set(message.curves))
        self.sub_title = f"run {run.id} · {run.name}"
        self.query_one(RunHeader).show(run, message.checkpoints, message.detail)
        self.events.add(message.events, run.started)
        if message.curves:
            self.curves.update(message.curves)
            x_label = "step" if run.kind == "sft" else message.x_label
            xlim = x_range(self.curves)
            for panel in self.panels:
                panel.show(self.curves, message.curves, x_label, xlim)
        self.loaded = not message.behind and message.detail.lineage is not None

    def on_read_failed(self, message: ReadFailed) -> None:
        self.app.report_read_error(message.error)

    @property
    def current_run_id(self) -> int | None:
        """This screen's run."""
        return self.run_id

    @property
    def current_run_label(self) -> str:
        """How prompts name this screen's run."""
        return f"run {self.run_id}" + (f" ({self.run.name})" if self.run else "")

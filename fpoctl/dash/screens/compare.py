"""The compare screen: one metric of several runs overlaid, with their key numbers below."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from fpoctl import metric_names as m
from fpoctl.dash import names as n
from fpoctl.dash.data import Curve, RunInfo
from fpoctl.dash.feeds import CompareFeed
from fpoctl.dash.messages import CompareUpdated, ReadFailed
from fpoctl.dash.widgets.metric_plot import PALETTE, MetricPlot, PlotLine, legend
from fpoctl.dash.widgets.run_header import STATUS_STYLE
from fpoctl.fmt import duration, number, percent


class CompareScreen(Screen[None]):
    """Success (or return) curves of up to eight runs on one plot."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("m", "next_metric", "metric"),
    ]

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.metric = n.COMPARE_KEYS[0]
        self.loaded = False
        self.runs: list[RunInfo] = []
        self.curves: dict[int, dict[str, Curve]] = {}
        self.x_label = "env steps"
        self._token: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="compare-panel", classes="panel"):
            yield MetricPlot(id="compare-plot")
        yield Static(id="compare-table")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "compare " + ", ".join(map(str, self.run_ids))
        self._token = self.app.reader.subscribe(self, CompareFeed(self.run_ids))

    def on_unmount(self) -> None:
        if self._token is not None:
            self.app.reader.unsubscribe(self._token)

    def on_compare_updated(self, message: CompareUpdated) -> None:
        self.runs, self.x_label = message.runs, message.x_label
        for rid, curves in message.curves.items():
            self.curves.setdefault(rid, {}).update(curves)
        self._draw()
        self.loaded = True

    def on_read_failed(self, message: ReadFailed) -> None:
        self.app.report_read_error(message.error)

    def action_next_metric(self) -> None:
        keys = n.COMPARE_KEYS
        self.metric = keys[(keys.index(self.metric) + 1) % len(keys)]
        self._draw()

    @property
    def plotted(self) -> list[PlotLine]:
        """One line per run that has the selected metric."""
        out = []
        for i, run in enumerate(self.runs):
            curve = self.curves.get(run.id, {}).get(self.metric)
            if curve is not None:
                out.append(PlotLine(f"{run.id} {run.name}", curve.x, curve.y, PALETTE[i % len(PALETTE)]))
        return out

    def _draw(self) -> None:
        is_rate = self.metric != m.ROLLOUT_RETURN
        plot = self.query_one(MetricPlot)
        plot.ylim = (0.0, 1.0) if is_rate else None
        lines = self.plotted
        plot.show(lines, self.x_label)
        panel = self.query_one("#compare-panel")
        panel.border_title = n.LABELS[self.metric]
        panel.border_subtitle = legend(lines)
        table = Table(box=None, header_style="dim", expand=True)
        for col in ("run", "status", "last", "best", "env steps", "elapsed"):
            table.add_column(col, justify="left" if col in ("run", "status") else "right", no_wrap=True)
        fmt = percent if is_rate else number
        for i, run in enumerate(self.runs):
            curve = self.curves.get(run.id, {}).get(self.metric)
            table.add_row(
                f"[{PALETTE[i % len(PALETTE)]}]━[/] {run.id} {run.name}",
                f"[{STATUS_STYLE.get(run.status, '')}]{run.status}[/]",
                fmt(curve.last) if curve else "-", fmt(curve.hi) if curve else "-",
                number(run.env_steps), duration(run.elapsed),
            )
        self.query_one("#compare-table", Static).update(table)

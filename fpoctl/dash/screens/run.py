"""The run screen: header, success/return plots, Q-ensemble, FPO, performance, events."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header

from fpoctl import metric_names as m
from fpoctl.dash import names as n
from fpoctl.dash.data import Curve
from fpoctl.dash.feeds import RunFeed
from fpoctl.dash.messages import ReadFailed, RunUpdated
from fpoctl.dash.screens.keys import RUN_BINDINGS, RunKeys
from fpoctl.dash.widgets.events_log import EventsLog
from fpoctl.dash.widgets.metric_plot import PALETTE, MetricPlot, PlotLine, legend
from fpoctl.dash.widgets.metric_table import MetricTable
from fpoctl.dash.widgets.run_header import RunHeader
from fpoctl.fmt import number, percent

BLUE, GREEN, ORANGE, RED, PURPLE = PALETTE[:5]
BAND = "#2b6a8a"  # a darker BLUE for the Q +-std band


# plot id -> its lines: (metric key, colour, how the legend prints the newest value)
PLOTS: dict[str, list[tuple[str, str, Callable[[float | None], str]]]] = {
    "success-plot": [(m.ROLLOUT_SUCCESS, GREEN, percent), (m.EVAL_SUCCESS, BLUE, percent)],
    "return-plot": [(m.ROLLOUT_RETURN, ORANGE, number)],
    "ratio-plot": [(m.RATIO_MEAN, PURPLE, number), (m.RATIO_MAX, RED, number)],
    "perf-plot": [(m.PERF_ENV_STEPS_PER_S, GREEN, number)],
}


def lines(curves: dict[str, Curve], spec: list[tuple[str, str, Callable[[float | None], str]]]
          ) -> list[PlotLine]:
    """PlotLines (labelled with their newest value) for the keys that have data."""
    return [PlotLine(f"{n.LABELS[k]} {fmt(curves[k].last)}", curves[k].x, curves[k].y, color)
            for k, color, fmt in spec if k in curves]


def q_band(curves: dict[str, Curve]) -> list[PlotLine]:
    """Q mean with a +-std band (a darker line either side) and Q min."""
    out = lines(curves, [(m.Q_MEAN, BLUE, number), (m.Q_MIN, ORANGE, number)])
    mean, std = curves.get(m.Q_MEAN), curves.get(m.Q_STD)
    if mean and std and len(mean.y) == len(std.y):
        for sign, label in ((1, "+std"), (-1, "-std")):
            y = [mu + sign * sd for mu, sd in zip(mean.y, std.y, strict=True)]
            out.append(PlotLine(label, mean.x, y, BAND, in_legend=False))
    return out


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
        self.curves: dict[str, Curve] = {}
        self._token: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield RunHeader(id="run-header")
        with VerticalScroll(id="panels"):
            with Vertical(id="success-panel", classes="panel"):
                yield MetricPlot(ylim=(0.0, 1.0), id="success-plot")
            with Vertical(id="return-panel", classes="panel"):
                yield MetricPlot(id="return-plot")
            with Vertical(id="q-panel", classes="panel"):
                yield MetricPlot(id="q-plot")
                yield MetricTable([m.Q_STD], id="q-table")
            with Vertical(id="fpo-panel", classes="panel"):
                yield MetricTable(n.FPO_TABLE, id="fpo-table")
                yield MetricPlot(id="ratio-plot")
            with Vertical(id="perf-panel", classes="panel"):
                yield MetricTable(n.PERF_TABLE, id="perf-table")
                yield MetricPlot(id="perf-plot")
            with Vertical(id="events-panel", classes="panel"):
                yield EventsLog(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"run {self.run_id}"
        titles = {"success-panel": "success rate", "return-panel": "return", "q-panel": "Q-ensemble",
                  "fpo-panel": "FPO", "perf-panel": "performance", "events-panel": "events"}
        for panel, title in titles.items():
            self.query_one(f"#{panel}").border_title = title
        self._token = self.app.reader.subscribe(self, RunFeed(self.run_id))

    def on_unmount(self) -> None:
        if self._token is not None:
            self.app.reader.unsubscribe(self._token)

    def on_run_updated(self, message: RunUpdated) -> None:
        run = message.run
        self.sub_title = f"run {run.id} · {run.name}"
        self.query_one(RunHeader).show(run, message.checkpoints)
        self.query_one(EventsLog).add(message.events, run.started)
        if message.curves:
            self.curves.update(message.curves)
            self._draw(message.curves, message.x_label)
        self.loaded = not message.behind

    def on_read_failed(self, message: ReadFailed) -> None:
        self.app.report_read_error(message.error)

    def _draw(self, changed: dict[str, Curve], x_label: str) -> None:
        for plot_id, spec in PLOTS.items():
            self._plot(plot_id, lines(self.curves, spec), x_label)
        q = q_band(self.curves)
        self._plot("q-plot", q, x_label, f"  [{BAND}]━ ±std[/]" if len(q) > 2 else "")
        for table in self.query(MetricTable):
            table.show(changed)

    def _plot(self, plot_id: str, plotted: list[PlotLine], x_label: str, extra: str = "") -> None:
        plot = self.query_one(f"#{plot_id}", MetricPlot)
        plot.show(plotted, x_label)
        if plot.parent is not None:
            plot.parent.border_subtitle = legend(plotted) + extra

    @property
    def current_run_id(self) -> int | None:
        """This screen's run."""
        return self.run_id

"""The compare screen: any metric of several runs overlaid (against env steps, iteration or wall
time, optionally smoothed; evaluations as points), their key numbers, the config keys in which
they differ, and a warning when they are not on the same task."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from fpoctl.dash import names as n
from fpoctl.dash.data import Curve, RunInfo
from fpoctl.dash.feeds import CompareFeed
from fpoctl.dash.messages import CompareUpdated, ReadFailed
from fpoctl.dash.screens.pick import PickScreen
from fpoctl.dash.views import WINDOWS, X_AXES, CompareView
from fpoctl.dash.widgets.metric_plot import PALETTE, MetricPlot, PlotLine, legend
from fpoctl.dash.widgets.run_header import STATUS_STYLE, value_text
from fpoctl.fmt import duration, number, percent
from fpoctl.metric_names import is_eval


def metric_choices(keys: list[str]) -> list[tuple[str, str]]:
    """(key, label) of every metric the runs log: the usual ones first, then the rest by name."""
    first = [k for k in n.COMPARE_KEYS if k in keys]
    return [(k, n.label(k)) for k in first + [k for k in keys if k not in first]]


def differ_table(runs: list[RunInfo], differ: dict[str, list]) -> Table:
    """Config keys (rows) in which the runs (columns) differ."""
    table = Table(box=None, header_style="dim", title="config: where the runs differ",
                  title_style="dim", title_justify="left")
    table.add_column("key", no_wrap=True)
    for i, run in enumerate(runs):
        table.add_column(f"[{PALETTE[i % len(PALETTE)]}]{run.id}[/]", justify="right", no_wrap=True)
    for key, values in differ.items():
        table.add_row(key, *("-" if v is None else value_text(v) for v in values))
    if not differ:
        table.add_row("(the same config)")
    return table


class CompareScreen(Screen[None]):
    """One metric of up to eight runs on one plot, with what sets the runs apart."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("m", "pick_metric", "metric"),
        Binding("x", "next_axis", "x axis"),
        Binding("w", "next_window", "smooth"),
    ]

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.feed = CompareFeed(run_ids)
        self.loaded = False
        self.runs: list[RunInfo] = []
        self.curves: dict[int, Curve] = {}
        self.keys: list[str] = []
        self.per_point: dict[int, float | None] = {}
        self.differ: dict[str, list] = {}
        self.x_label = X_AXES[0]
        self._token: int | None = None

    @property
    def view(self) -> CompareView:
        """What is plotted (the feed reads it on its next poll)."""
        return self.feed.view

    @property
    def metric(self) -> str:
        """The metric plotted."""
        return self.view.metric

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="compare-panel", classes="panel"):
            yield MetricPlot(id="compare-plot")
        yield Static(id="compare-warning")
        with VerticalScroll(id="compare-tables"):
            yield Static(id="compare-table")
            yield Static(id="compare-differ")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "compare " + ", ".join(map(str, self.run_ids))
        self._token = self.app.reader.subscribe(self, self.feed)

    def on_unmount(self) -> None:
        if self._token is not None:
            self.app.reader.unsubscribe(self._token)

    def on_compare_updated(self, message: CompareUpdated) -> None:
        self.runs, self.curves, self.x_label = message.runs, message.curves, message.x_label
        self.keys, self.per_point, self.differ = message.keys, message.per_point, message.differ
        self.loaded = message.view == self.view
        self._draw(message.view)

    def on_read_failed(self, message: ReadFailed) -> None:
        self.app.report_read_error(message.error)

    # -- keys ---------------------------------------------------------------------------
    def _set_view(self, **change: object) -> None:
        self.feed.view = CompareView(**{**self.view.__dict__, **change})
        self.loaded = False
        self.app.reader.poke()

    def action_pick_metric(self) -> None:
        """Choose the metric from those the runs log."""
        def picked(key: str | None) -> None:
            if key is not None and key != self.metric:
                self._set_view(metric=key)

        self.app.push_screen(PickScreen("metric", metric_choices(self.keys), self.metric), picked)

    def action_next_axis(self) -> None:
        """Env steps -> iteration -> wall time."""
        self._set_view(axis=X_AXES[(X_AXES.index(self.view.axis) + 1) % len(X_AXES)])

    def action_next_window(self) -> None:
        """No smoothing -> a trailing mean over 3, 5, 10, 20 points."""
        self._set_view(window=WINDOWS[(WINDOWS.index(self.view.window) + 1) % len(WINDOWS)])

    # -- drawing ------------------------------------------------------------------------
    @property
    def plotted(self) -> list[PlotLine]:
        """One line (evaluations: points) per run that has the metric."""
        out = []
        for i, run in enumerate(self.runs):
            curve = self.curves.get(run.id)
            if curve is not None:
                out.append(PlotLine(f"{run.id} {run.name}", curve.x, curve.y, PALETTE[i % len(PALETTE)],
                                    points=is_eval(self.metric)))
        return out

    def _draw(self, view: CompareView) -> None:
        is_rate = view.metric in n.RATES
        plot = self.query_one(MetricPlot)
        plot.ylim = (0.0, 1.0) if is_rate else None
        lines = self.plotted
        top = max((max(ln.x) for ln in lines), default=0.0)
        plot.show(lines, self.x_label, xlim=(0.0, top) if top > 0 else None)
        panel = self.query_one("#compare-panel")
        smoothing = ""
        if view.window > 1 and not is_eval(view.metric):
            smoothing = f" · mean of {view.window} points"
        panel.border_title = f"{n.label(view.metric)} vs {self.x_label}{smoothing}"
        panel.border_subtitle = legend(lines)
        if not lines and self.runs:
            panel.border_subtitle = f"none of these runs logs {view.metric} (m: pick another)"
        tasks = list(dict.fromkeys(r.task for r in self.runs))
        warning = self.query_one("#compare-warning", Static)
        warning.display = len(tasks) > 1
        warning.update(f"⚠ different tasks: {', '.join(tasks)} — their numbers do not compare")
        self.query_one("#compare-table", Static).update(self._runs_table(is_rate))
        self.query_one("#compare-differ", Static).update(differ_table(self.runs, self.differ))

    def _runs_table(self, is_rate: bool) -> Table:
        """One row per run; below 120 columns without task, min and env steps (the warning and
        the config table name the tasks)."""
        fmt = percent if is_rate else number
        narrow = self.size.width < 120
        table = Table(box=None, header_style="dim", expand=True)
        for i, run in enumerate(self.runs):
            curve = self.curves.get(run.id)
            per_point = self.per_point.get(run.id)
            cells = {
                "run": f"[{PALETTE[i % len(PALETTE)]}]━[/] {run.id} {run.name}", "task": run.task,
                "status": f"[{STATUS_STYLE.get(run.status, '')}]{run.status}[/]",
                "last": fmt(curve.last) if curve else "-", "min": fmt(curve.lo) if curve else "-",
                "max": fmt(curve.hi) if curve else "-",
                "episodes/pt": f"{per_point:.0f}" if per_point is not None else "-",
                "env steps": number(run.env_steps), "elapsed": duration(run.elapsed),
            }
            if narrow:
                del cells["task"], cells["min"], cells["env steps"]
            if not table.columns:
                for col in cells:
                    table.add_column(col, justify="left" if col in ("run", "task", "status") else "right",
                                     no_wrap=True, ratio=1 if col == "run" else None)
            table.add_row(*cells.values())
        return table

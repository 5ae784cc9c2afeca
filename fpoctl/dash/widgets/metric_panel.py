"""One bordered panel of the run screen, built from a `layout.Panel`: a metric table and/or a plot
whose legend (with each line's newest value) is the border's subtitle."""

from __future__ import annotations

from collections.abc import Mapping

from textual.app import ComposeResult
from textual.containers import Vertical

from fpoctl.dash.data import Curve
from fpoctl.dash.layout import BAND, Panel
from fpoctl.dash.names import label
from fpoctl.dash.widgets.metric_plot import MetricPlot, PlotBand, PlotLine, legend
from fpoctl.dash.widgets.metric_table import MetricTable
from fpoctl.fmt import number


def plot_lines(spec: Panel, curves: Mapping[str, Curve]) -> list[PlotLine]:
    """The panel's lines that have data, each labelled with its newest value."""
    return [PlotLine(f"{ln.legend or spec.labels.get(ln.key) or label(ln.key)} {ln.fmt(curves[ln.key].last)}",
                     curves[ln.key].x, curves[ln.key].y, ln.color, points=ln.points)
            for ln in spec.lines if ln.key in curves]


def plot_band(spec: Panel, curves: Mapping[str, Curve]) -> PlotBand | None:
    """mean +-std of the panel's band keys, when both have the same points."""
    if spec.band is None:
        return None
    mean, std = curves.get(spec.band[0]), curves.get(spec.band[1])
    if mean is None or std is None or len(mean.y) != len(std.y):
        return None
    lo = [mu - sd for mu, sd in zip(mean.y, std.y, strict=True)]
    hi = [mu + sd for mu, sd in zip(mean.y, std.y, strict=True)]
    return PlotBand(f"±std {number(std.last)}", mean.x, lo, hi, BAND)


class MetricPanel(Vertical):
    """A panel whose table and plot exist from construction, so data can be shown before the
    panel has been laid out (the first update of the run screen mounts and fills it at once)."""

    def __init__(self, spec: Panel) -> None:
        super().__init__(id=spec.id, classes="panel" if spec.lines else "panel -table")
        self.spec = spec
        self.table = MetricTable(spec.table, labels=spec.labels) if spec.table else None
        self.plot = MetricPlot(ylim=spec.ylim) if spec.lines else None
        self.border_title = spec.title

    def compose(self) -> ComposeResult:
        if self.table is not None:
            yield self.table
        if self.plot is not None:
            yield self.plot

    def show(self, curves: Mapping[str, Curve], changed: Mapping[str, Curve], x_label: str,
             xlim: tuple[float, float] | None) -> None:
        """Redraw from all curves held (`changed`: those new since the last call)."""
        if self.table is not None:
            self.table.show(changed)
        if self.plot is None:
            return
        lines, band = plot_lines(self.spec, curves), plot_band(self.spec, curves)
        self.plot.show(lines, x_label, band=band, xlim=xlim)
        notes = [f"[{ln.color}]{ln.legend or label(ln.key)} {ln.fmt(curves[ln.key].last)}[/]"
                 for ln in self.spec.notes if ln.key in curves]
        self.border_subtitle = "  ".join(filter(None, [legend(lines, band), *notes]))

"""A compact table of metrics: newest value, min and max when they fit, and a sparkline that
fills the rest of the width."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table
from textual.app import RenderResult
from textual.widget import Widget

from fpoctl.dash.data import Curve
from fpoctl.dash.names import label
from fpoctl.fmt import number, sparkline

MIN_TREND = 6
"""Narrowest sparkline worth a column."""


class MetricTable(Widget):
    """One row per metric key; rows without data show dashes. Narrow: min and max go first."""

    DEFAULT_CSS = "MetricTable { height: auto; }"

    def __init__(self, keys: Sequence[str], *, labels: Mapping[str, str] | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.keys = list(keys)
        self.labels = dict(labels or {})
        self.curves: dict[str, Curve] = {}

    def show(self, curves: Mapping[str, Curve]) -> None:
        """Take the curves of this table's keys and redraw."""
        mine = {k: c for k, c in curves.items() if k in self.keys}
        if mine:
            self.curves.update(mine)
            self.refresh()

    def render(self) -> RenderResult:
        cells = {"metric": [self.labels.get(k) or label(k) for k in self.keys]}
        for name, pick in (("last", "last"), ("min", "lo"), ("max", "hi")):
            cells[name] = [number(getattr(c, pick)) if (c := self.curves.get(k)) else "-"
                           for k in self.keys]
        widths = {name: max(len(name), *map(len, column)) for name, column in cells.items()}
        shown = list(cells)
        while len(shown) > 2 and sum(widths[c] + 2 for c in shown) > self.size.width:
            shown.remove("min" if "min" in shown else "max")
        spark_width = self.size.width - sum(widths[c] + 2 for c in shown) - 1
        table = Table(box=None, padding=(0, 1), header_style="dim", pad_edge=False)
        for name in shown:
            table.add_column(name, justify="left" if name == "metric" else "right", no_wrap=True)
        trend = spark_width >= MIN_TREND
        if trend:
            table.add_column("trend", no_wrap=True, style="cyan")
        for i, key in enumerate(self.keys):
            row = [cells[name][i] for name in shown]
            if trend:
                c = self.curves.get(key)
                row.append(sparkline(c.y, spark_width) if c else "")
            table.add_row(*row)
        return table

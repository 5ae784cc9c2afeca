"""A compact table of metrics: newest value, min, max and a sparkline that fills the width."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table
from textual.app import RenderResult
from textual.widget import Widget

from fpoctl.dash.data import Curve
from fpoctl.dash.names import LABELS
from fpoctl.fmt import number, sparkline


class MetricTable(Widget):
    """One row per metric key; rows without data show dashes."""

    DEFAULT_CSS = "MetricTable { height: auto; }"

    def __init__(self, keys: Sequence[str], *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.keys = list(keys)
        self.curves: dict[str, Curve] = {}

    def show(self, curves: Mapping[str, Curve]) -> None:
        """Take the curves of this table's keys and redraw."""
        mine = {k: c for k, c in curves.items() if k in self.keys}
        if mine:
            self.curves.update(mine)
            self.refresh()

    def render(self) -> RenderResult:
        rows = []
        for key in self.keys:
            c = self.curves.get(key)
            numbers = [number(c.last), number(c.lo), number(c.hi)] if c else ["-", "-", "-"]
            rows.append([LABELS.get(key, key), *numbers])
        headers = ["metric", "last", "min", "max"]
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        spark_width = self.size.width - sum(widths) - 2 * (len(headers) + 1)
        table = Table(box=None, padding=(0, 1), header_style="dim")
        for i, name in enumerate(headers):
            table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
        if spark_width >= 4:
            table.add_column("trend", no_wrap=True, style="cyan")
            for key, row in zip(self.keys, rows, strict=True):
                c = self.curves.get(key)
                row.append(sparkline(c.y, spark_width) if c else "")
        for row in rows:
            table.add_row(*row)
        return table

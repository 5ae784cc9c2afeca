"""A plotext line plot of a few curves against env steps; the legend lives in the panel title."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from fpoctl.dash.data import downsample

PALETTE = ("#4fc3f7", "#81c784", "#ffb74d", "#e57373", "#ba68c8", "#fff176", "#4db6ac", "#f06292")
"""Line colours (hex, so the legend in a panel title can use the same ones)."""

MIN_WIDTH, MIN_HEIGHT = 16, 5


@dataclass(frozen=True)
class PlotLine:
    """One line to draw: points, colour (hex), and whether the legend names it."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: str
    in_legend: bool = True


def legend(lines: Sequence[PlotLine]) -> str:
    """Rich markup naming each line in its colour (for a border title)."""
    return "  ".join(f"[{line.color}]━ {line.label}[/]" for line in lines if line.in_legend)


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


class MetricPlot(PlotextPlot):
    """Lines against a shared x axis, rescaled to k/M steps; a hint when there is no data."""

    def __init__(self, *, ylim: tuple[float, float] | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.ylim = ylim
        self.lines: list[PlotLine] = []
        self.x_label = "env steps"

    def show(self, lines: Sequence[PlotLine], x_label: str) -> None:
        """Replace the plotted lines and redraw."""
        self.lines, self.x_label = [ln for ln in lines if ln.x], x_label
        self.refresh()

    def render(self) -> RenderResult:
        if not self.lines:
            return Text("waiting for data", style="dim", justify="center")
        if self.size.width < MIN_WIDTH or self.size.height < MIN_HEIGHT:
            return Text("")
        top = max(max(line.x) for line in self.lines)
        scale, unit = (1e6, " (M)") if top >= 2e6 else (1e3, " (k)") if top >= 2e3 else (1.0, "")
        plt = self.plt
        plt.clear_figure()
        points = 2 * self.size.width  # braille: two dots per cell across; more is never seen
        for line in self.lines:
            x, y = downsample(np.asarray(line.x) / scale, np.asarray(line.y), points)
            plt.plot(x.tolist(), y.tolist(), color=_rgb(line.color), marker="braille")
        plt.xlabel(self.x_label + unit)
        if self.ylim is not None:
            plt.ylim(*self.ylim)
        return super().render()

"""A plotext plot of a few curves against a shared x axis: lines, evaluations as points, and a
shaded band (e.g. Q mean +-std); the legend lives in the panel's border."""

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

MIN_WIDTH, MIN_HEIGHT = 16, 4
LABEL_FROM_HEIGHT = 12
"""Plots at least this tall name their x axis under the tick labels (smaller ones: the ticks
carry the unit and the panel names the axis)."""


@dataclass(frozen=True)
class PlotLine:
    """One line to draw: points, colour (hex), whether the legend names it, and whether its
    points are drawn one by one (evaluations: a few points, each an average of many episodes)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: str
    in_legend: bool = True
    points: bool = False


@dataclass(frozen=True)
class PlotBand:
    """A shaded range lo..hi over x, drawn under the lines."""

    label: str
    x: Sequence[float]
    lo: Sequence[float]
    hi: Sequence[float]
    color: str


def legend(lines: Sequence[PlotLine], band: PlotBand | None = None) -> str:
    """Rich markup naming each line in its colour (for a border title)."""
    parts = [f"[{ln.color}]{'●' if ln.points else '━'} {ln.label}[/]" for ln in lines if ln.in_legend]
    if band is not None:
        parts.append(f"[{band.color}]█ {band.label}[/]")
    return "  ".join(parts)


def x_scale(top: float, seconds: bool = False) -> tuple[float, str]:
    """Divisor and suffix for x tick labels reaching `top`: counts in k or M, seconds in m or h."""
    if seconds:
        return (3600.0, "h") if top >= 7200 else (60.0, "m") if top >= 120 else (1.0, "s")
    return (1e6, "M") if top >= 2e6 else (1e3, "k") if top >= 2e3 else (1.0, "")


def _tick(value: float, suffix: str, whole: bool) -> str:
    text = f"{value:.0f}" if whole else f"{value:.1f}".rstrip("0").rstrip(".")
    return text + suffix if text != "0" else "0"


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def band_dots(band: PlotBand, n_x: int, n_y: int, y_span: float) -> tuple[list[float], list[float]]:
    """Points that fill the band at braille resolution: `n_x` columns, each filled from lo to hi
    with a dot every 1/`n_y` of `y_span` (so the band reads as a shaded area, not two thin lines)."""
    x, lo = downsample(np.asarray(band.x, float), np.asarray(band.lo, float), n_x)
    _, hi = downsample(np.asarray(band.x, float), np.asarray(band.hi, float), n_x)
    step = y_span / max(n_y, 1) or 1.0
    counts = np.maximum(np.ceil((hi - lo) / step).astype(np.int64), 0) + 1
    xs = np.repeat(x, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    ys = np.repeat(lo, counts) + np.minimum(offsets * step, np.repeat(hi - lo, counts))
    return xs.tolist(), ys.tolist()


class MetricPlot(PlotextPlot):
    """Lines (and points, and a band) against a shared x axis; a hint when there is no data."""

    def __init__(self, *, ylim: tuple[float, float] | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.ylim = ylim
        self.lines: list[PlotLine] = []
        self.band: PlotBand | None = None
        self.x_label = "env steps"
        self.xlim: tuple[float, float] | None = None

    def show(self, lines: Sequence[PlotLine], x_label: str, *, band: PlotBand | None = None,
             xlim: tuple[float, float] | None = None) -> None:
        """Replace what is plotted and redraw; `xlim` shares one x range between plots."""
        self.lines, self.x_label = [ln for ln in lines if ln.x], x_label
        self.band = band if band is not None and band.x else None
        self.xlim = xlim
        self.refresh()

    def render(self) -> RenderResult:
        if not self.lines:
            return Text("waiting for data", style="dim", justify="center")
        width, height = self.size.width, self.size.height
        if width < MIN_WIDTH or height < MIN_HEIGHT:
            return Text("")
        left, right = self.xlim or (min(min(ln.x) for ln in self.lines),
                                    max(max(ln.x) for ln in self.lines))
        scale, suffix = x_scale(right, seconds=self.x_label == "wall time")
        plt = self.plt
        plt.clear_figure()
        plt.frame(False)
        points = 2 * width  # braille: two dots per cell across; more is never seen
        if self.band is not None:
            ys = [v for ln in self.lines for v in ln.y] + list(self.band.lo) + list(self.band.hi)
            bx, by = band_dots(self.band, points, 4 * height, max(ys) - min(ys))
            plt.scatter((np.asarray(bx) / scale).tolist(), by, color=_rgb(self.band.color),
                        marker="braille")
        for line in sorted(self.lines, key=lambda ln: ln.points):  # points on top
            if line.points:
                plt.scatter([v / scale for v in line.x], list(line.y), color=_rgb(line.color),
                            marker="●")
            else:
                x, y = downsample(np.asarray(line.x) / scale, np.asarray(line.y), points)
                plt.plot(x.tolist(), y.tolist(), color=_rgb(line.color), marker="braille")
        lo, hi = left / scale, right / scale
        if hi > lo:
            plt.xlim(lo, hi)
            ticks = np.linspace(lo, hi, max(2, min(5, width // 12))).tolist()
            whole = hi - lo >= 20  # 0, 50, 100 rather than 49.8, 99.5
            plt.xticks(ticks, [_tick(t, suffix, whole) for t in ticks])
        if height >= LABEL_FROM_HEIGHT:
            plt.xlabel(self.x_label)
        if self.ylim is not None:
            plt.ylim(*self.ylim)
        return super().render()

"""Short text for numbers, durations and trends, shared by the CLI and the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

SPARK = "▁▂▃▄▅▆▇█"


def duration(seconds: float | None) -> str:
    """A compact duration: 42s, 5m12s, 3h05m, 2d04h (or '-')."""
    if seconds is None:
        return "-"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def number(v: float | None) -> str:
    """Four significant digits, with k/M suffixes for big counts (or '-')."""
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    return f"{v:.4g}"


def percent(v: float | None) -> str:
    """A rate in [0, 1] as a whole percentage (or '-')."""
    return "-" if v is None else f"{100 * v:.0f}%"


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """A unicode sparkline of `values` squeezed (by bucket means) into `width` cells."""
    if not values or width <= 0:
        return ""
    if len(values) > width:
        edges = [round(i * len(values) / width) for i in range(width + 1)]
        values = [sum(values[a:b]) / (b - a) for a, b in pairwise(edges) if b > a]
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(SPARK[min(7, int((v - lo) / span * 7.999))] for v in values)


def ranges(values: Sequence[int | None]) -> str:
    """Integers as runs, in their order: [0, 1, 2, 5, 6] -> '0-2, 5-6' (or '-')."""
    parts: list[str] = []
    run: list[int] = []
    for v in [*values, None]:
        if v is not None and run and v == run[-1] + 1:
            run.append(v)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [v] if v is not None else []
    return ", ".join(parts) or "-"

"""What screens ask the reader for beyond the stored rows, and the facts it sends back (plain
data): a run's header detail (overrides, init chain, success arc) and the compare view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fpoctl.dash.data import RunInfo
from fpoctl.dash.names import COMPARE_KEYS
from fpoctl.train import lineage as lin

X_AXES = ("env steps", "iteration", "wall time")
"""What the compare screen can plot against."""
WINDOWS = (1, 3, 5, 10, 20)
"""Smoothing choices: trailing means over this many points (1: none)."""
HEADER_KEYS = frozenset(("task", "policy", "seed", "iterations", "steps", "init"))
"""Config keys the run header shows in their own places, not among the overrides."""


@dataclass(frozen=True)
class RunDetail:
    """What the run screen's header adds to a `RunInfo`: what defines the run and how it went."""

    overrides: dict[str, Any]
    """Config keys that differ from the kind's defaults (less those the header names anyway)."""
    lineage: tuple[str, ...] | None
    """The init chain, nearest first (None until read: a tick after the first)."""
    prior: float | None = None
    """Evaluation success: the first evaluation's (a fine-tune's prior), the best, the last."""
    best: float | None = None
    last: float | None = None
    evaluations: int = 0


def run_detail(run: RunInfo, lineage: tuple[str, ...] | None,
               evals: tuple[np.ndarray, np.ndarray] | None) -> RunDetail:
    """A `RunDetail` from the run, its init chain, and its eval-success (steps, values)."""
    changed = {k: v for k, v in lin.overrides(run.kind, run.config).items() if k not in HEADER_KEYS}
    series = list(zip(evals[0].tolist(), evals[1].tolist(), strict=True)) if evals else []
    arc = lin.success_arc(series)
    return RunDetail(changed, lineage, arc.prior, arc.best, arc.last, len(series))


@dataclass(frozen=True)
class CompareView:
    """What the compare screen plots: one metric against one x axis, optionally smoothed."""

    metric: str = COMPARE_KEYS[0]
    axis: str = X_AXES[0]
    window: int = 1
    """Trailing mean over this many points (1: none); evaluations are never smoothed."""

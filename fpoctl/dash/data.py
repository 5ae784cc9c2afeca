"""Plain data the screens show, built in the reader thread: run summaries, events, curves.

`RunSeries` accumulates one run's metric rows as they arrive (only rows newer than the last
seen id are ever read) and turns changed keys into downsampled `Curve`s against env steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpoctl.jobs.process import display_status
from fpoctl.metric_names import ENV_STEPS, EVAL_SUCCESS, ROLLOUT_RETURN, ROLLOUT_SUCCESS
from fpoctl.store import MetricRow, Run, elapsed_s, eta_s

MAX_POINTS = 400
"""Points per plotted curve: enough for a 200-cell-wide braille plot, cheap to draw."""


@dataclass(frozen=True)
class RunInfo:
    """One run as the dashboard shows it: stored columns plus the key numbers."""

    id: int
    name: str
    kind: str
    task: str
    policy: str
    status: str
    step: int
    total_steps: int | None
    seed: int | None
    git_sha: str | None
    config: dict[str, Any]
    error: str | None
    started: float | None
    """When the run first ran (its first attempt), else when it was created."""
    elapsed: float | None
    """Seconds it has run, over all its attempts."""
    eta: float | None
    """Seconds left at its recent iteration rate (None: not running, or nothing to go by)."""
    env_steps: float | None = None
    success: float | None = None
    best_success: float | None = None
    ret: float | None = None
    phase: str | None = None
    """What the run is doing when it is not iterating, e.g. "evaluating the prior 12/50 episodes";
    None while it iterates."""


def run_info(run: Run, now: float, latest: Mapping[str, float], best: Mapping[str, float],
             recent: Sequence[tuple[float, int]] = ()) -> RunInfo:
    """A `RunInfo` from a stored run, its newest metric values, its best values and the (time,
    step) of its newest iterations (`Store.step_times`: the ETA's recent rate)."""
    status = display_status(run, now)
    alive = status == "running"
    return RunInfo(
        id=run.id, name=run.name, kind=run.kind, task=run.task, policy=run.policy, status=status,
        step=run.step, total_steps=run.total_steps, seed=run.seed, git_sha=run.git_sha,
        config=dict(run.config or {}), error=run.error,
        started=run.first_started or run.started or run.created,
        elapsed=elapsed_s(run, now, alive=alive), eta=eta_s(run, now, recent, alive=alive),
        env_steps=latest.get(ENV_STEPS),
        success=latest.get(EVAL_SUCCESS, latest.get(ROLLOUT_SUCCESS)),
        best_success=best.get(EVAL_SUCCESS, best.get(ROLLOUT_SUCCESS)),
        ret=latest.get(ROLLOUT_RETURN), phase=run.phase,
    )


@dataclass(frozen=True)
class EventInfo:
    """One line of a run's event log."""

    id: int
    time: float
    level: str
    kind: str
    message: str


@dataclass(frozen=True)
class Curve:
    """One metric ready to plot: downsampled points plus exact last/min/max over all rows."""

    key: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    last: float
    lo: float
    hi: float
    count: int


def downsample(x: np.ndarray, y: np.ndarray, n: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `n` points: bucket means of all but the last point, which is kept exact."""
    if len(x) <= n:
        return x, y
    head = len(x) - 1
    starts = np.linspace(0, head, n, endpoint=False).astype(np.int64)
    counts = np.diff(np.append(starts, head))
    xs = np.add.reduceat(x[:head], starts) / counts
    ys = np.add.reduceat(y[:head], starts) / counts
    return np.append(xs, x[-1]), np.append(ys, y[-1])


class Column:
    """One key's points in step order: step and value arrays that grow by doubling, so a tick
    appends a few rows and plots without copying Python lists into NumPy."""

    def __init__(self) -> None:
        self._steps = np.empty(256, dtype=np.int64)
        self._values = np.empty(256, dtype=np.float64)
        self.size = 0

    @property
    def steps(self) -> np.ndarray:
        """Steps held (a view)."""
        return self._steps[: self.size]

    @property
    def values(self) -> np.ndarray:
        """Values held (a view)."""
        return self._values[: self.size]

    def extend(self, steps: list[int], values: list[float]) -> None:
        """Append increasing steps; a first step at or before the last held one (a resumed
        run re-logging) first drops the points from that step on."""
        if self.size and steps[0] <= self._steps[self.size - 1]:
            self.size = int(np.searchsorted(self.steps, steps[0], side="left"))
        end = self.size + len(steps)
        if end > len(self._steps):
            capacity = max(end, 2 * len(self._steps))
            self._steps = np.resize(self._steps, capacity)
            self._values = np.resize(self._values, capacity)
        self._steps[self.size:end] = steps
        self._values[self.size:end] = values
        self.size = end


class RunSeries:
    """All rows seen so far of one run (optionally only some keys), one `Column` per key;
    `dirty` names the keys changed since the last `take_curves()`."""

    def __init__(self, keys: frozenset[str] | None = None) -> None:
        self.keys = keys
        self.last_id = 0
        self.columns: dict[str, Column] = {}
        self.dirty: set[str] = set()

    def add(self, rows: Iterable[MetricRow]) -> None:
        """Take rows (oldest first), grouped per key into increasing runs of steps."""
        pending: dict[str, tuple[list[int], list[float]]] = {}
        for row in rows:
            self.last_id = max(self.last_id, row.id)
            if self.keys is not None and row.key not in self.keys:
                continue
            steps, values = pending.setdefault(row.key, ([], []))
            if steps and row.step <= steps[-1]:  # a rewind inside this batch
                self._column(row.key).extend(steps, values)
                steps.clear(), values.clear()
            steps.append(row.step)
            values.append(row.value)
        for key, (steps, values) in pending.items():
            if steps:
                self._column(key).extend(steps, values)
                self.dirty.add(key)

    def _column(self, key: str) -> Column:
        return self.columns.setdefault(key, Column())

    def last(self, key: str) -> float | None:
        """The newest value of `key`, if any."""
        col = self.columns.get(key)
        return float(col.values[-1]) if col and col.size else None

    def best(self, key: str) -> float | None:
        """The largest value of `key`, if any."""
        col = self.columns.get(key)
        return float(col.values.max()) if col and col.size else None

    @property
    def x_label(self) -> str:
        """What curves are plotted against."""
        return "env steps" if ENV_STEPS in self.columns else "iteration"

    def take_curves(self, max_points: int = MAX_POINTS) -> dict[str, Curve]:
        """Curves of the keys changed since the last call (all keys once env steps change)."""
        keys = set(self.columns) if ENV_STEPS in self.dirty else set(self.dirty)
        self.dirty.clear()
        return {k: self.curve(k, max_points) for k in sorted(keys) if self.columns[k].size}

    def curve(self, key: str, max_points: int = MAX_POINTS) -> Curve:
        """One key against env steps (the newest env-step count at or before each step)."""
        col = self.columns[key]
        y = col.values
        env = self.columns.get(ENV_STEPS)
        if env is not None and env.size:
            at = np.searchsorted(env.steps, col.steps, side="right") - 1
            x = np.where(at >= 0, env.values[np.clip(at, 0, None)], 0.0)
        else:
            x = col.steps.astype(np.float64)
        xs, ys = downsample(x, y, max_points)
        return Curve(key=key, x=tuple(xs.tolist()), y=tuple(ys.tolist()), last=float(y[-1]),
                     lo=float(y.min()), hi=float(y.max()), count=len(y))

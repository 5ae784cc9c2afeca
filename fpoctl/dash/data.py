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
from fpoctl.store import MetricRow, Run, Store, elapsed_s, eta_s

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


def recent_steps(store: Store, run: Run) -> list[tuple[float, int]]:
    """What `run_info` measures a running run's ETA with: the (time, step) of its newest
    iterations in this attempt (none when it is not running)."""
    return store.step_times(run.id, since=run.started) if run.status == "running" else []


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
    """One key's points in step order: step, value and write-time arrays that grow by doubling,
    so a tick appends a few rows and plots without copying Python lists into NumPy."""

    def __init__(self) -> None:
        self._steps = np.empty(256, dtype=np.int64)
        self._values = np.empty(256, dtype=np.float64)
        self._times = np.empty(256, dtype=np.float64)
        self.size = 0

    @property
    def steps(self) -> np.ndarray:
        """Steps held (a view)."""
        return self._steps[: self.size]

    @property
    def values(self) -> np.ndarray:
        """Values held (a view)."""
        return self._values[: self.size]

    @property
    def times(self) -> np.ndarray:
        """When each point was written (epoch seconds; a view)."""
        return self._times[: self.size]

    def extend(self, steps: list[int], values: list[float], times: list[float]) -> None:
        """Append increasing steps; a first step at or before the last held one (a resumed
        run re-logging) first drops the points from that step on."""
        if self.size and steps[0] <= self._steps[self.size - 1]:
            self.size = int(np.searchsorted(self.steps, steps[0], side="left"))
        end = self.size + len(steps)
        if end > len(self._steps):
            capacity = max(end, 2 * len(self._steps))
            self._steps = np.resize(self._steps, capacity)
            self._values = np.resize(self._values, capacity)
            self._times = np.resize(self._times, capacity)
        self._steps[self.size:end] = steps
        self._values[self.size:end] = values
        self._times[self.size:end] = times
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
        pending: dict[str, tuple[list[int], list[float], list[float]]] = {}
        for row in rows:
            self.last_id = max(self.last_id, row.id)
            if self.keys is not None and row.key not in self.keys:
                continue
            steps, values, times = pending.setdefault(row.key, ([], [], []))
            if steps and row.step <= steps[-1]:  # a rewind inside this batch
                self._column(row.key).extend(steps, values, times)
                steps.clear(), values.clear(), times.clear()
            steps.append(row.step)
            values.append(row.value)
            times.append(row.time)
        for key, (steps, values, times) in pending.items():
            if steps:
                self._column(key).extend(steps, values, times)
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

    def x_of(self, key: str, axis: str = "env steps") -> np.ndarray:
        """The x of each point of `key`: the newest env-step count at or before its step ("env
        steps", the iteration where the run logs none), its step ("iteration"), or seconds since
        the run's first row ("wall time")."""
        col = self.columns[key]
        env = self.columns.get(ENV_STEPS)
        if axis == "wall time":
            first = min(float(c.times[0]) for c in self.columns.values() if c.size)
            return col.times - first
        if axis == "env steps" and env is not None and env.size:
            at = np.searchsorted(env.steps, col.steps, side="right") - 1
            return np.where(at >= 0, env.values[np.clip(at, 0, None)], 0.0)
        return col.steps.astype(np.float64)

    def curve(self, key: str, max_points: int = MAX_POINTS, axis: str = "env steps",
              window: int = 1) -> Curve:
        """One key against `axis` (see `x_of`), optionally a trailing mean over `window` points."""
        y = self.columns[key].values
        xs, ys = downsample(self.x_of(key, axis), smooth(y, window), max_points)
        return Curve(key=key, x=tuple(xs.tolist()), y=tuple(ys.tolist()), last=float(y[-1]),
                     lo=float(y.min()), hi=float(y.max()), count=len(y))


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` points (fewer at the start); window 1: `y` itself."""
    if window <= 1 or len(y) < 2:
        return y
    total = np.cumsum(np.insert(y, 0, 0.0))
    ends = np.arange(1, len(y) + 1)
    starts = np.maximum(ends - window, 0)
    return (total[ends] - total[starts]) / (ends - starts)

"""Plain data the screens show, built in the reader thread: run summaries, events, curves.

`RunSeries` accumulates one run's metric rows as they arrive (only rows newer than the last
seen id are ever read) and turns changed keys into downsampled `Curve`s against env steps.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fpoctl.dash.names import ENV_STEPS, EVAL_SUCCESS, ROLLOUT_RETURN, ROLLOUT_SUCCESS
from fpoctl.store import MetricRow, Run, display_status

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
    elapsed: float | None
    eta: float | None
    env_steps: float | None = None
    success: float | None = None
    best_success: float | None = None
    ret: float | None = None


def run_info(run: Run, now: float, latest: Mapping[str, float], best: Mapping[str, float]) -> RunInfo:
    """A `RunInfo` from a stored run, its newest metric values and its best values."""
    status = display_status(run, now)
    end = run.finished or (now if status == "running" else run.heartbeat)
    elapsed = end - run.started if run.started and end else None
    eta = None
    if status == "running" and run.total_steps and run.step and elapsed is not None:
        eta = elapsed / run.step * max(run.total_steps - run.step, 0)
    return RunInfo(
        id=run.id, name=run.name, kind=run.kind, task=run.task, policy=run.policy, status=status,
        step=run.step, total_steps=run.total_steps, seed=run.seed, git_sha=run.git_sha,
        config=dict(run.config or {}), error=run.error, started=run.started or run.created,
        elapsed=elapsed, eta=eta, env_steps=latest.get(ENV_STEPS),
        success=latest.get(EVAL_SUCCESS, latest.get(ROLLOUT_SUCCESS)),
        best_success=best.get(EVAL_SUCCESS, best.get(ROLLOUT_SUCCESS)),
        ret=latest.get(ROLLOUT_RETURN),
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


@dataclass
class RunSeries:
    """All rows seen so far of one run, per key, in step order; `dirty` names changed keys."""

    keys: frozenset[str] | None = None
    last_id: int = 0
    steps: dict[str, list[int]] = field(default_factory=dict)
    values: dict[str, list[float]] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)

    def add(self, rows: Iterable[MetricRow]) -> int:
        """Append rows (oldest first); a step at or before a key's last one (a resumed run
        rewinding) first drops that key's points from that step on. Returns rows taken."""
        n = 0
        for row in rows:
            self.last_id = max(self.last_id, row.id)
            if self.keys is not None and row.key not in self.keys:
                continue
            steps = self.steps.setdefault(row.key, [])
            values = self.values.setdefault(row.key, [])
            if steps and row.step <= steps[-1]:
                cut = bisect.bisect_left(steps, row.step)
                del steps[cut:], values[cut:]
            steps.append(row.step)
            values.append(row.value)
            self.dirty.add(row.key)
            n += 1
        return n

    def last(self, key: str) -> float | None:
        """The newest value of `key`, if any."""
        values = self.values.get(key)
        return values[-1] if values else None

    def best(self, key: str) -> float | None:
        """The largest value of `key`, if any."""
        values = self.values.get(key)
        return max(values) if values else None

    @property
    def x_label(self) -> str:
        """What curves are plotted against."""
        return "env steps" if self.steps.get(ENV_STEPS) else "iteration"

    def take_curves(self, max_points: int = MAX_POINTS) -> dict[str, Curve]:
        """Curves of the keys changed since the last call (all keys once env steps change)."""
        keys = set(self.steps) if ENV_STEPS in self.dirty else set(self.dirty)
        self.dirty.clear()
        return {k: self.curve(k, max_points) for k in sorted(keys) if self.steps.get(k)}

    def curve(self, key: str, max_points: int = MAX_POINTS) -> Curve:
        """One key against env steps (the newest env-step count at or before each step)."""
        steps = np.asarray(self.steps[key], dtype=np.float64)
        y = np.asarray(self.values[key], dtype=np.float64)
        env_steps = self.steps.get(ENV_STEPS)
        if env_steps:
            at = np.searchsorted(np.asarray(env_steps), steps, side="right") - 1
            env = np.asarray(self.values[ENV_STEPS], dtype=np.float64)
            x = np.where(at >= 0, env[np.clip(at, 0, None)], 0.0)
        else:
            x = steps
        xs, ys = downsample(x, y, max_points)
        return Curve(key=key, x=tuple(xs.tolist()), y=tuple(ys.tolist()), last=float(y[-1]),
                     lo=float(y.min()), hi=float(y.max()), count=len(y))

"""How long a run has run and how long it has left, across stop / resume, from its stored row.

A run's time is the sum of its attempts: `active_s` holds the ended ones; the open attempt (status
`running`) counts from `started` up to now while its worker lives, or up to its last heartbeat
when it is lost. `Store.set_status` closes an attempt with the same rule (`attempt_end`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from fpoctl.store.models import Run

HEARTBEAT_STALE_S = 120.0
"""A worker silent this long whose pid is gone is `lost` (FPOCTL_HEARTBEAT_STALE_S overrides)."""

RECENT_STEPS = 10
"""Iterations the ETA's rate is measured over: the newest ones of the current attempt."""


def heartbeat_stale_s() -> float:
    """Seconds without a heartbeat after which a run whose worker is gone shows as `lost`."""
    try:
        return float(os.environ.get("FPOCTL_HEARTBEAT_STALE_S", HEARTBEAT_STALE_S))
    except ValueError:
        return HEARTBEAT_STALE_S


def attempt_end(run: Run, now: float, alive: bool | None = None) -> float:
    """Where the run's open attempt ends: `now` while its worker lives (`alive`; None: judged by
    a fresh heartbeat), else its last heartbeat (a lost run stopped counting when it fell silent)."""
    if alive is None:
        alive = run.heartbeat is not None and now - run.heartbeat <= heartbeat_stale_s()
    if alive:
        return now
    return run.heartbeat if run.heartbeat is not None else (run.started or now)


def elapsed_s(run: Run, now: float, *, alive: bool | None = None) -> float | None:
    """Seconds the run has spent running over all its attempts (a stopped hour in between does
    not count); None when it never ran."""
    if run.started is None and not run.active_s:
        return None
    total = float(run.active_s or 0.0)
    if run.status == "running" and run.started is not None:
        total += max(attempt_end(run, now, alive) - run.started, 0.0)
    return total


def eta_s(run: Run, now: float, recent: Sequence[tuple[float, int]], *,
          alive: bool | None = None) -> float | None:
    """Seconds until the run's last iteration, at its recent rate.

    `recent`: (time, step) of its newest logged iterations (`Store.step_times`); those of the
    current attempt (at or after `started`, at most RECENT_STEPS) give the seconds per iteration;
    with fewer than two of them, the mean over its active time does. The iteration in progress
    counts as partly done (the time since the newest point), but the estimate never drops below
    the whole iterations left after it. None: not running (or lost), no total, nothing left (the
    run is doing its end work; its phase says what) or nothing to go by yet."""
    if run.status != "running" or not run.total_steps or run.started is None:
        return None
    left = run.total_steps - run.step
    if left <= 0 or attempt_end(run, now, alive) != now:  # done, or lost: no end in sight
        return None
    points = [(t, s) for t, s in recent if t >= run.started][-RECENT_STEPS:]
    if len(points) >= 2 and points[-1][1] > points[0][1] and points[-1][0] > points[0][0]:
        per_step = (points[-1][0] - points[0][0]) / (points[-1][1] - points[0][1])
        since = max(now - points[-1][0], 0.0)
    else:
        elapsed = elapsed_s(run, now, alive=alive)
        if not elapsed or run.step <= 0:
            return None
        per_step, since = elapsed / run.step, 0.0
    return max(left * per_step - since, (left - 1) * per_step)

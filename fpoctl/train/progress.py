"""How a job shows what it is doing: after each iteration (or SFT step), and through each long
phase (demo collection, evaluations, checkpoint writes, a resume) as k/N with a rate.

`JobProgress` is what a job calls. It sets the run's `phase` in the store (what the dashboard's
header shows; at most once a second, and it counts as a heartbeat) and hands the same news to a
`Progress`: the CLI's bar on a terminal, or `LogLines` — one timestamped line per iteration and
per phase update — in a detached job's train.log or on a terminal that is not one (nohup, CI).
"""

from __future__ import annotations

import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Protocol

from fpoctl.errors import StoreError
from fpoctl.fmt import duration

if TYPE_CHECKING:  # the supervisor imports this module for `stamp`: no store to load there
    from fpoctl.store import Store

STAMP = "%Y-%m-%d %H:%M:%S"
"""How every line of a job's log starts (local time)."""
STAMPED = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
"""A line that already starts with a `STAMP` (the supervisor does not stamp it twice)."""

LOG_KEYS = (("rollout/success_rate", "success", True), ("eval/success_rate", "eval", True),
            ("rollout/return", "return", False), ("fpo/approx_kl", "kl", False),
            ("sft/loss", "loss", False), ("perf/env_steps_per_s", "env steps/s", False))
"""Metrics an iteration's log line shows: key, label, as a percentage."""


def stamp(at: float | None = None) -> str:
    """`at` (default: now) as a log line's timestamp."""
    return time.strftime(STAMP, time.localtime(at))


def rate(count: float, seconds: float, unit: str) -> str:
    """`1.4 episodes/s`, or per minute when slower than one every ten seconds ("" when there is
    nothing to measure yet)."""
    if seconds <= 0 or count <= 0:
        return ""
    per_s = count / seconds
    if per_s < 0.1:
        return f"{_figures(per_s * 60)} {unit}/min"
    return f"{_figures(per_s)} {unit}/s"


def _figures(value: float) -> str:
    """Two significant figures, never in exponent form: 0.12, 1.4, 47, 140."""
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"


class Progress(Protocol):
    """Where a job's progress is shown (a terminal's bar, or lines of a log)."""

    def __call__(self, step: int, total: int, metrics: dict[str, float]) -> None:
        """An iteration (or SFT step) `step` of `total` is done, with its metrics."""

    def phase(self, text: str, done: int | None = None, total: int | None = None) -> None:
        """A long phase's state, e.g. "evaluating the prior: 12/50 episodes (1.4 episodes/s)"."""

    def note(self, text: str) -> None:
        """A line that marks something, e.g. "=== resumed at iteration 263/400 ..."."""


class LogLines:
    """Progress as timestamped lines: one per iteration (with the recent rate and the ETA), a
    phase's first and last state and one every `every` seconds between, and notes."""

    def __init__(self, unit: str = "iter", *, write: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time, every: float = 10.0) -> None:
        self.unit, self.clock, self.every = unit, clock, every
        self.write = write or (lambda line: print(line, file=sys.stdout, flush=True))
        self._steps: deque[tuple[float, int]] = deque(maxlen=10)
        self._phase_at = float("-inf")

    def _line(self, text: str) -> None:
        self.write(f"{stamp(self.clock())} {text}")

    def __call__(self, step: int, total: int, metrics: dict[str, float]) -> None:
        now = self.clock()
        self._steps.append((now, step))
        parts = [f"{self.unit} {step}/{total}"]
        (t0, s0), (t1, s1) = self._steps[0], self._steps[-1]
        if s1 > s0 and t1 > t0:
            per_step = (t1 - t0) / (s1 - s0)
            parts += [rate(s1 - s0, t1 - t0, self.unit), f"ETA {duration(per_step * (total - step))}"]
        parts += [f"{label} {metrics[k]:.0%}" if pct else f"{label} {metrics[k]:.4g}"
                  for k, label, pct in LOG_KEYS if k in metrics]
        self._line("  ".join(parts))
        self._phase_at = float("-inf")

    def phase(self, text: str, done: int | None = None, total: int | None = None) -> None:
        now = self.clock()
        if done in (None, 0, total) or now - self._phase_at >= self.every:
            self._line(text)
            self._phase_at = now

    def note(self, text: str) -> None:
        self._line(text)


class JobProgress:
    """A job's one reporter: the run's `phase` in the store (`store` None: another rank, which
    reports nothing) and the job's `Progress` (None: nobody watches this process)."""

    def __init__(self, store: Store | None, run_id: int, shown: Progress | None, *,
                 clock: Callable[[], float] = time.time, every: float = 1.0) -> None:
        self.store, self.run_id, self.clock, self.every = store, run_id, clock, every
        self.shown = shown if store is not None else None
        self._what: str | None = None  # the phase under way
        self._started = 0.0
        self._sent = float("-inf")

    def step(self, step: int, total: int, metrics: dict[str, float]) -> None:
        """An iteration is done: the phase (if any) is over."""
        self.end_phase()
        if self.shown is not None:
            self.shown(step, total, metrics)

    def phase(self, what: str, done: int | None = None, total: int | None = None,
              unit: str = "", detail: str = "") -> None:
        """`what` is under way, `done` of `total` `unit`s so far (the rate counts from the first
        call with this `what`); `detail` follows, e.g. "task 3/10" of a suite."""
        now = self.clock()
        if what != self._what:
            self._what, self._started, self._sent = what, now, float("-inf")
        text = what
        if done is not None and total is not None:
            text += f": {done}/{total} {unit}".rstrip()
            if speed := rate(done, now - self._started, unit or "step"):
                text += f" ({speed})"
        if detail:
            text += f", {detail}"
        if done in (None, 0, total) or now - self._sent >= self.every:
            self._sent = now
            self._write(phase=text, heartbeat=now)
            if self.shown is not None:
                self.shown.phase(text, done, total)

    def end_phase(self) -> None:
        """The phase under way (if any) is over."""
        if self._what is not None:
            self._write(phase=None)
        self._what = None

    def _write(self, **fields: object) -> None:
        """Set the run's columns; a store that cannot take it now (busy, full) never stops the
        job for a phase: the next write, or the run's end, clears it."""
        if self.store is not None:
            with suppress(StoreError):
                self.store.update_run(self.run_id, **fields)

    @contextmanager
    def during(self, what: str) -> Iterator[None]:
        """`what` is the phase while the body runs (a checkpoint write); a note says how long."""
        started = self.clock()
        self.phase(what)
        yield
        self.end_phase()
        self.note(f"{what}: done in {self.clock() - started:.1f} s")

    @contextmanager
    def evaluation(self, what: str) -> Iterator[Callable[[str, int, int, int, int], None]]:
        """The phase of an evaluation: the body gets its progress callback (`protocol.EvalProgress`)
        that counts episodes done of all of them (a suite: over its tasks, naming the one under
        way); the phase ends with the body."""
        def report(name: str, number: int, tasks: int, done: int, episodes: int) -> None:
            self.phase(what, (number - 1) * episodes + done, tasks * episodes, "episodes",
                       f"task {number}/{tasks}" if tasks > 1 else "")
        self.phase(what)  # its rate counts from here
        yield report
        self.end_phase()

    def note(self, text: str) -> None:
        """A marker line in the job's output."""
        if self.shown is not None:
            self.shown.note(text)

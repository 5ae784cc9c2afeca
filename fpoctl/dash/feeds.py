"""What each screen follows: a feed polls the store and returns a message only when something
changed. Feeds run in the reader thread and read only rows newer than those already seen."""

from __future__ import annotations

from typing import Protocol

from textual.message import Message

from fpoctl.dash.data import EventInfo, RunInfo, RunSeries, recent_steps, run_info
from fpoctl.dash.messages import CompareUpdated, RunsUpdated, RunUpdated
from fpoctl.dash.names import BEST_KEYS, SUMMARY_KEYS
from fpoctl.dash.views import CompareView, RunDetail, run_detail
from fpoctl.metric_names import ENV_STEPS, EVAL_EPISODES, EVAL_SUCCESS, ROLLOUT_EPISODES, is_eval
from fpoctl.store import Store
from fpoctl.train.lineage import config_diff, lineage

CHUNK = 100_000
"""Most metric rows one poll reads for one run; a longer backlog is read over several polls."""

_TABLE_KEYS = tuple(dict.fromkeys(SUMMARY_KEYS + BEST_KEYS))
SHOWN_KEYS = (*_TABLE_KEYS, ROLLOUT_EPISODES, EVAL_EPISODES)
"""What the compare screen reads besides the viewed metric (its table; episodes per point)."""


class Feed(Protocol):
    """Something the reader polls about once a second."""

    behind: bool
    """True when rows are left over from the last poll (the reader polls again at once)."""

    def poll(self, store: Store, now: float) -> Message | None:
        """Read what is new and return a message for the screen, or None if nothing changed."""
        ...


class RunsFeed:
    """The runs table: every run's newest summary values and best success.

    The first poll seeks the newest value per run and key; later polls read only metric rows
    written since (an id range scan), so a tick costs the same with 10 or 10 million rows."""

    def __init__(self) -> None:
        self.behind = False
        self._last_id = 0
        self._latest: dict[int, dict[str, float]] = {}
        self._best: dict[int, dict[str, float]] = {}
        self._shown: list[RunInfo] | None = None

    def poll(self, store: Store, now: float) -> Message | None:
        top = store.max_metric_id()
        runs = store.list_runs()
        unseen = [r.id for r in runs if r.id not in self._latest]
        if self._shown is not None and top > self._last_id:
            rows = store.metric_rows_after(self._last_id, _TABLE_KEYS, limit=CHUNK)
            for row in rows:
                self._latest.setdefault(row.run_id, {})[row.key] = row.value
                if row.key in BEST_KEYS:
                    best = self._best.setdefault(row.run_id, {})
                    best[row.key] = max(row.value, best.get(row.key, row.value))
            self.behind = len(rows) == CHUNK
            self._last_id = rows[-1].id if self.behind else max(top, rows[-1].id if rows else 0)
        elif self._shown is None:
            self._last_id = top
        if unseen:  # new runs (or the first poll): index seeks for their whole history
            for rid, values in store.latest_values(unseen, list(SUMMARY_KEYS)).items():
                self._latest[rid] = {**self._latest.get(rid, {}), **values}
            for key in BEST_KEYS:
                for rid, value in store.best_values(unseen, key).items():
                    best = self._best.setdefault(rid, {})
                    best[key] = max(value, best.get(key, value))
        infos = [run_info(r, now, self._latest.get(r.id, {}), self._best.get(r.id, {}),
                          recent_steps(store, r)) for r in runs]
        if infos == self._shown:
            return None
        self._shown = infos
        return RunsUpdated(infos)


class RunFeed:
    """One run: its summary and header detail, curves of every key with new rows, new events,
    checkpoints. The init chain is read once, on the second poll (the first loads the curves)."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.behind = False
        self.series = RunSeries()
        self.rows_read = 0
        """Metric rows the last poll read (only those newer than the ones already held)."""
        self._last_event = 0
        self._lineage: tuple[str, ...] | None = None
        self._shown: tuple[RunInfo, list[tuple[int, bool]], RunDetail] | None = None

    def poll(self, store: Store, now: float) -> Message | None:
        run = store.get_run(self.run_id)
        rows = store.metrics_since(self.run_id, self.series.last_id, limit=CHUNK)
        self.series.add(rows)
        self.rows_read = len(rows)
        self.behind = len(rows) == CHUNK
        events = [EventInfo(e.id, e.time, e.level, e.kind, e.message)
                  for e in store.events_since(self.run_id, self._last_event)]
        if events:
            self._last_event = events[-1].id
        checkpoints = [(c.step, c.is_best) for c in store.checkpoints(self.run_id)]
        s = self.series
        info = run_info(run, now, _present({k: s.last(k) for k in SUMMARY_KEYS}),
                        _present({k: s.best(k) for k in BEST_KEYS}), recent_steps(store, run))
        if self._lineage is None and self._shown is not None:
            self._lineage = tuple(lineage(store, run))
        evals = s.columns.get(EVAL_SUCCESS)
        detail = run_detail(info, self._lineage, (evals.steps, evals.values) if evals else None)
        curves = {} if self.behind else s.take_curves()  # downsample once, when caught up
        if not curves and not events and self._shown == (info, checkpoints, detail):
            return None
        self._shown = (info, checkpoints, detail)
        return RunUpdated(info, curves, events, s.x_label, checkpoints, self.behind, detail)


class CompareFeed:
    """Several runs: their summaries, the metrics they log, and the curve of the viewed metric.

    The screen sets `view`. Only the keys the screen shows are read (the viewed metric, env
    steps, episode counts, the summary): a new metric re-reads those rows, a new axis or
    smoothing only redraws."""

    def __init__(self, run_ids: list[int]) -> None:
        self.behind = False
        self.view = CompareView()
        self.run_ids = run_ids
        self.series: dict[int, RunSeries] = {}
        self._keys: list[str] = []
        self._shown: tuple[list[RunInfo], CompareView] | None = None

    def poll(self, store: Store, now: float) -> Message | None:
        view = self.view  # set from the UI thread: read once
        if not self.series or view.metric not in next(iter(self.series.values())).keys:
            wanted = frozenset((view.metric, *SHOWN_KEYS))
            self.series = {rid: RunSeries(keys=wanted) for rid in self.run_ids}
            self._keys = sorted({k for rid in self.run_ids for k in store.metric_keys(rid)} - {ENV_STEPS})
        infos, changed, self.behind = [], False, False
        for rid, s in self.series.items():
            run = store.get_run(rid)
            rows = store.metrics_since(rid, s.last_id, keys=sorted(s.keys or ()), limit=CHUNK)
            s.add(rows)
            changed |= bool(rows)
            self.behind |= len(rows) == CHUNK
            infos.append(run_info(run, now, _present({k: s.last(k) for k in SUMMARY_KEYS}),
                                  _present({k: s.best(k) for k in BEST_KEYS}),
                                  recent_steps(store, run)))
        if self.behind or (not changed and self._shown == (infos, view)):
            return None
        self._shown = (infos, view)
        curves, per_point = {}, {}
        window = 1 if is_eval(view.metric) else view.window
        for rid, s in self.series.items():
            s.dirty.clear()
            if view.metric in s.columns and s.columns[view.metric].size:
                curves[rid] = s.curve(view.metric, axis=view.axis, window=window)
                per_point[rid] = episodes_per_point(s, view.metric, window)
        with_data = [s for s in self.series.values() if s.columns]
        axis = view.axis
        if axis == "env steps" and not all(ENV_STEPS in s.columns for s in with_data):
            axis = "iteration"  # an SFT run (or one without env steps) among them
        return CompareUpdated(infos, curves, axis, view, self._keys, per_point,
                              config_diff([r.config for r in infos]))


def episodes_per_point(series: RunSeries, metric: str, window: int) -> float | None:
    """How many episodes one plotted point of `metric` averages: an evaluation's episodes, or
    `window` iterations' rollout episodes (None when the run does not log episode counts)."""
    col = series.columns.get(EVAL_EPISODES if is_eval(metric) else ROLLOUT_EPISODES)
    if col is None or not col.size:
        return None
    return float(col.values.mean()) * (1 if is_eval(metric) else window)


def _present(values: dict[str, float | None]) -> dict[str, float]:
    return {k: v for k, v in values.items() if v is not None}

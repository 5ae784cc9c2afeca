"""What each screen follows: a feed polls the store and returns a message only when something
changed. Feeds run in the reader thread and read only rows newer than those already seen."""

from __future__ import annotations

from typing import Protocol

from textual.message import Message

from fpoctl.dash.data import EventInfo, RunInfo, RunSeries, run_info
from fpoctl.dash.messages import CompareUpdated, RunsUpdated, RunUpdated
from fpoctl.dash.names import BEST_KEYS, COMPARE_KEYS, SUMMARY_KEYS
from fpoctl.metric_names import ENV_STEPS
from fpoctl.store import Store

CHUNK = 100_000
"""Most metric rows one poll reads for one run; a longer backlog is read over several polls."""

_TABLE_KEYS = tuple(dict.fromkeys(SUMMARY_KEYS + BEST_KEYS))


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
        infos = [run_info(r, now, self._latest.get(r.id, {}), self._best.get(r.id, {})) for r in runs]
        if infos == self._shown:
            return None
        self._shown = infos
        return RunsUpdated(infos)


class RunFeed:
    """One run: its summary, curves of every key with new rows, new events, checkpoints."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.behind = False
        self.series = RunSeries()
        self.rows_read = 0
        """Metric rows the last poll read (only those newer than the ones already held)."""
        self._last_event = 0
        self._shown: tuple[RunInfo, list[tuple[int, bool]]] | None = None

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
                        _present({k: s.best(k) for k in BEST_KEYS}))
        curves = {} if self.behind else s.take_curves()  # downsample once, when caught up
        if not curves and not events and self._shown == (info, checkpoints):
            return None
        self._shown = (info, checkpoints)
        return RunUpdated(info, curves, events, s.x_label, checkpoints, self.behind)


class CompareFeed:
    """Several runs: their summaries and the curves the compare screen can overlay."""

    def __init__(self, run_ids: list[int]) -> None:
        self.behind = False
        keys = frozenset((*COMPARE_KEYS, ENV_STEPS))
        self.series = {rid: RunSeries(keys=keys) for rid in run_ids}
        self._shown: list[RunInfo] | None = None

    def poll(self, store: Store, now: float) -> Message | None:
        infos, curves, self.behind = [], {}, False
        for rid, s in self.series.items():
            run = store.get_run(rid)
            rows = store.metrics_since(rid, s.last_id, keys=sorted(s.keys or ()), limit=CHUNK)
            s.add(rows)
            run_behind = len(rows) == CHUNK
            self.behind |= run_behind
            infos.append(run_info(run, now, _present({k: s.last(k) for k in SUMMARY_KEYS}),
                                  _present({k: s.best(k) for k in BEST_KEYS})))
            if not run_behind and (changed := s.take_curves()):
                curves[rid] = changed
        if not curves and infos == self._shown:
            return None
        self._shown = infos
        with_data = [s for s in self.series.values() if s.columns]
        x_label = "env steps" if all(s.x_label == "env steps" for s in with_data) else "iteration"
        return CompareUpdated(infos, curves, x_label)


def _present(values: dict[str, float | None]) -> dict[str, float]:
    return {k: v for k, v in values.items() if v is not None}

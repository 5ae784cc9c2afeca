"""The dashboard's data side without a UI: curves and downsampling, incremental feeds on a real
store, reads while another process holds the write lock, and the run-action switchboard."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fpoctl.dash import names as n
from fpoctl.dash.actions import ACTIONS
from fpoctl.dash.data import RunSeries, downsample
from fpoctl.dash.feeds import CompareFeed, RunFeed, RunsFeed
from fpoctl.dash.messages import CompareUpdated, RunsUpdated, RunUpdated
from fpoctl.dash.views import CompareView
from fpoctl.hub.push import push_run
from fpoctl.jobs.control import resume_run, stop_run
from fpoctl.store import MetricRow, Store
from tests.seed_store import FROZEN_NOW, seed_runs, write_iterations


def rows(*items: tuple[int, str, float], first_id: int = 1) -> list[MetricRow]:
    """MetricRows from (step, key, value), ids counting up."""
    return [MetricRow(first_id + i, step, key, value, 0.0) for i, (step, key, value) in enumerate(items)]


def test_downsample_keeps_the_last_point_exact_and_the_mean() -> None:
    x = np.arange(10_001, dtype=float)
    y = np.sin(x / 500) + x / 10_000
    xs, ys = downsample(x, y, 400)
    assert len(xs) == len(ys) == 401 and (xs[-1], ys[-1]) == (x[-1], y[-1])
    assert np.all(np.diff(xs) > 0)
    assert ys[:-1].mean() == pytest.approx(y[:-1].mean(), rel=1e-2)
    short = np.arange(5, dtype=float)
    assert downsample(short, short, 400)[0] is short


def test_series_plots_against_env_steps_and_rewinds_on_resume() -> None:
    s = RunSeries()
    s.add(rows(*[(i, n.ENV_STEPS, 100.0 * (i + 1)) for i in range(10)],
               *[(i, n.ROLLOUT_SUCCESS, i / 10) for i in range(10)]))
    curves = s.take_curves()
    assert curves[n.ROLLOUT_SUCCESS].x == tuple(100.0 * (i + 1) for i in range(10))
    assert (curves[n.ROLLOUT_SUCCESS].last, curves[n.ROLLOUT_SUCCESS].hi) == (0.9, 0.9)
    assert s.take_curves() == {}  # nothing new, nothing to redraw
    s.add(rows((6, n.ROLLOUT_SUCCESS, 0.05), first_id=100))  # resumed from iteration 6
    curve = s.take_curves()[n.ROLLOUT_SUCCESS]
    assert curve.count == 7 and curve.last == 0.05 and s.last_id == 100
    assert RunSeries().x_label == "iteration"


def test_run_feed_reads_only_new_rows_and_posts_only_changes(store: Store) -> None:
    ids = seed_runs(store)
    rid = ids["pi0-libero-spatial"]
    feed = RunFeed(rid)
    first = feed.poll(store, FROZEN_NOW)
    assert isinstance(first, RunUpdated) and len(first.events) == 5
    assert first.curves[n.ROLLOUT_SUCCESS].count == 120 and first.x_label == "env steps"
    assert first.checkpoints == [(50, False), (100, True)]
    assert first.detail.lineage is None  # read on the next poll: the curves come first
    second = feed.poll(store, FROZEN_NOW)
    assert isinstance(second, RunUpdated) and second.curves == {} and feed.rows_read == 0
    assert second.detail.lineage == ("pulled pi0 (lerobot/pi0_base)",)
    assert feed.poll(store, FROZEN_NOW) is None and feed.rows_read == 0
    write_iterations(store, rid, 120, 1)
    update = feed.poll(store, FROZEN_NOW)
    assert isinstance(update, RunUpdated) and update.events == []
    assert update.curves[n.ROLLOUT_SUCCESS].count == 121 and update.run.step == 121
    assert feed.rows_read == 18  # one iteration's keys (no eval on iteration 120), nothing older


def test_runs_feed_updates_incrementally(store: Store) -> None:
    ids = seed_runs(store)
    feed = RunsFeed()
    first = feed.poll(store, FROZEN_NOW)
    assert isinstance(first, RunsUpdated)
    by_name = {r.name: r for r in first.runs}
    assert by_name["pi0-aloha-insertion"].status == "lost"
    assert by_name["pi0-libero-goal"].success is None
    assert feed.poll(store, FROZEN_NOW) is None
    rid = ids["pi0-libero-goal"]
    with store.metric_writer(rid) as w:
        w.log(0, {n.ROLLOUT_SUCCESS: 0.25, n.ENV_STEPS: 4096, n.EVAL_SUCCESS: 0.5})
        w.log(1, {n.ROLLOUT_SUCCESS: 0.125, n.ENV_STEPS: 8192})
    new = store.create_run(name="late", task="fast-reach", policy="mlp")
    with store.metric_writer(new.id) as w:
        w.log(0, {n.ROLLOUT_RETURN: 3.0})
    update = feed.poll(store, FROZEN_NOW)
    assert isinstance(update, RunsUpdated)
    by_name = {r.name: r for r in update.runs}
    goal = by_name["pi0-libero-goal"]
    assert (goal.success, goal.best_success, goal.env_steps) == (0.5, 0.5, 8192)
    assert by_name["late"].ret == 3.0


def test_compare_feed_overlays_the_chosen_runs(store: Store) -> None:
    ids = seed_runs(store)
    chosen = [ids["mlp-fast-reach"], ids["pi0-aloha-insertion"]]
    feed = CompareFeed(chosen)
    message = feed.poll(store, FROZEN_NOW)
    assert isinstance(message, CompareUpdated) and [r.id for r in message.runs] == chosen
    assert message.view.metric == n.EVAL_SUCCESS and message.curves[chosen[0]].count == 20
    assert {n.EVAL_SUCCESS, n.ROLLOUT_SUCCESS, n.APPROX_KL, n.Q_STD} <= set(message.keys)
    assert message.per_point == {chosen[0]: 50.0, chosen[1]: 50.0}  # episodes of an evaluation
    assert {"task", "seed", "iterations"} <= set(message.differ) and "clip_eps" not in message.differ
    assert feed.poll(store, FROZEN_NOW) is None  # nothing new
    feed.view = CompareView(metric=n.ROLLOUT_SUCCESS, axis="iteration", window=5)
    smoothed = feed.poll(store, FROZEN_NOW)
    assert isinstance(smoothed, CompareUpdated) and smoothed.view == feed.view
    curve = smoothed.curves[chosen[0]]
    assert curve.x[:3] == (0.0, 1.0, 2.0) and smoothed.per_point[chosen[0]] == 5 * 16.0
    raw = feed.series[chosen[0]].columns[n.ROLLOUT_SUCCESS].values
    assert curve.y[10] == pytest.approx(raw[6:11].mean()) and curve.last == raw[-1]


HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")  # without WAL this would block every reader
conn.execute("INSERT INTO events (run_id, time, level, kind, message) VALUES (?, 0, 'info', 'note', 'x')",
             (int(sys.argv[2]),))
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def test_feeds_read_while_another_process_holds_the_write_lock(store: Store, settings) -> None:
    ids = seed_runs(store)
    rid = ids["pi0-libero-spatial"]
    run_feed, runs_feed = RunFeed(rid), RunsFeed()
    path = store.engine.url.database
    proc = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, path, str(rid)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        # The writer holds its lock until told to commit: without WAL these reads would wait for
        # it until the busy timeout, then fail with "database is locked".
        assert isinstance(run_feed.poll(store, FROZEN_NOW), RunUpdated)
        assert isinstance(runs_feed.poll(store, FROZEN_NOW), RunsUpdated)
    finally:
        proc.communicate("commit\n", timeout=10)
    assert proc.returncode == 0
    update = run_feed.poll(store, FROZEN_NOW)
    assert isinstance(update, RunUpdated) and [e.message for e in update.events] == ["x"]


def test_run_keys_call_the_cli_commands_service_functions() -> None:
    assert {name: action.service for name, action in ACTIONS.items()} == {
        "stop": stop_run, "resume": resume_run, "push": push_run}
    assert [name for name, action in ACTIONS.items() if action.asks] == ["push"]  # the repo

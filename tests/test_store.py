"""Run-store API: runs, events, checkpoints, batched metrics, incremental reads, concurrency."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from fpoctl.errors import NotFoundError, StoreError
from fpoctl.store import Store, db


def test_run_lifecycle_and_lookup_by_name(store: Store) -> None:
    run = store.create_run(name="spatial-fpo", task="libero-spatial", config={"lr": 1e-5}, seed=3)
    store.set_status(run.id, "running")
    store.heartbeat(run.id, step=7)
    got = store.get_run("spatial-fpo")
    assert (got.id, got.status, got.step, got.config, got.seed) == (run.id, "running", 7,
                                                                      {"lr": 1e-5}, 3)
    assert got.pid == os.getpid()
    store.set_status(run.id, "failed", error="NaN loss")
    assert store.get_run(run.id).error == "NaN loss"
    assert [e.message for e in store.events_since(run.id)][-1] == "status -> failed: NaN loss"
    with pytest.raises(NotFoundError):
        store.get_run(999)


def test_delete_run_cascades_to_metrics_and_events(store: Store) -> None:
    run = store.create_run(name="x")
    with store.metric_writer(run.id) as w:
        w.log(1, {"a": 1.0})
    store.add_event(run.id, "hello")
    store.add_checkpoint(run.id, 1, "/tmp/x", "0" * 64)
    store.delete_run(run.id)
    with store.engine.connect() as conn:
        for table in ("metrics", "events", "checkpoints"):
            assert conn.exec_driver_sql(f"select count(*) from {table}").scalar() == 0


def test_writer_batches_by_count_and_time(store: Store) -> None:
    run = store.create_run(name="x")
    w = store.metric_writer(run.id, max_rows=10, max_seconds=0.2)
    w.log(0, {f"k{i}": i for i in range(5)})
    assert store.metrics_since(run.id) == []  # below the batch size, before the timer
    w.log(1, {f"k{i}": i for i in range(5)})
    assert len(store.metrics_since(run.id)) == 10  # count flush
    w.log(2, {"late": 1.0, "nan": float("nan")})
    time.sleep(0.6)
    rows = store.metrics_since(run.id, 10)
    assert [(r.step, r.key) for r in rows] == [(2, "late")]  # time flush; NaN skipped
    w.close()


def test_reader_returns_only_newer_rows(store: Store) -> None:
    run = store.create_run(name="x")
    other = store.create_run(name="y")
    with store.metric_writer(run.id) as w, store.metric_writer(other.id) as w2:
        for step in range(100):
            w.log(step, {"rollout/return": step, "fpo/cfm_loss": -step})
            w2.log(step, {"rollout/return": 0})
    first = store.metrics_since(run.id, 0, limit=50)
    rest = store.metrics_since(run.id, first[-1].id)
    assert len(first) + len(rest) == 200
    assert {r.id for r in first}.isdisjoint(r.id for r in rest)
    only = store.metrics_since(run.id, 0, keys=["fpo/cfm_loss"])
    assert [r.value for r in only] == [-s for s in range(100)]
    assert store.latest_values([run.id], ["rollout/return"]) == {run.id: {"rollout/return": 99.0}}
    assert store.series(run.id, "rollout/return")[-1] == (99, 99.0)


def test_rows_of_every_run_after_an_id_and_a_runs_rows_after_a_step_deleted(store: Store) -> None:
    run, other = store.create_run(name="x"), store.create_run(name="y")
    assert store.max_metric_id() == 0
    with store.metric_writer(run.id) as w:
        for step in range(3):
            w.log(step, {"a": step, "b": -step})
    with store.metric_writer(other.id) as w:
        w.log(0, {"a": 10.0})
    rows = store.metric_rows_after(0, ["a"], limit=10)
    assert [(r.run_id, r.value) for r in rows] == [(run.id, 0.0), (run.id, 1.0), (run.id, 2.0),
                                                   (other.id, 10.0)]
    assert rows[-1].id == store.max_metric_id()
    assert store.metric_rows_after(rows[1].id, ["a"], limit=1) == [rows[2]]
    assert store.delete_metrics_after(run.id, 0) == 4  # steps 1 and 2, both keys
    assert [r.step for r in store.metrics_since(run.id)] == [0, 0]
    assert len(store.metrics_since(other.id)) == 1


def _write_rows(url: str, run_id: int, n: int) -> None:
    store = Store(url)
    with store.metric_writer(run_id, max_rows=500, max_seconds=0.05) as w:
        for i in range(n // 4):
            w.log(i, {"a": i, "b": i, "c": i, "d": i})
            if i % 1000 == 0:
                store.heartbeat(run_id, step=i)  # other writes interleave with metric batches


def test_writer_process_and_polling_reader_lose_nothing(store: Store) -> None:
    n = 100_000
    run = store.create_run(name="concurrent")
    proc = mp.get_context("spawn").Process(target=_write_rows, args=(store.url, run.id, n))
    proc.start()
    seen: list[int] = []
    last = 0
    deadline = time.time() + 240
    while time.time() < deadline:
        rows = store.metrics_since(run.id, last)  # raises on "database is locked"
        if rows:
            seen.extend(r.id for r in rows)
            last = rows[-1].id
        elif not proc.is_alive():
            break
        time.sleep(0.01)
    proc.join()
    assert proc.exitcode == 0
    assert len(seen) == n and len(set(seen)) == n


def test_two_processes_opening_a_new_store_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = f"from fpoctl.store import Store; Store({url!r}).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
             for _ in range(3)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    assert db.current_revision(db.make_engine(url)) == db.head_revision()


def test_database_newer_than_code_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    Store(url).close()
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql("update alembic_version set version_num = 'f00dfeed9999'")
    with pytest.raises(StoreError, match="newer than this fpoctl"):
        Store(url)

"""A store that stops taking writes while a run trains (a full disk, a read-only file, a lock
held too long): the run ends `failed` with the reason (when that can still be written), the
command exits 1 with one `error:` line, no thread prints a traceback, and the lock hint appears
only for a lock. Faults are injected into SQLite's answers (always runs) and, where the machine
lets a test mount a small tmpfs, the disk really fills up."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from fpoctl.errors import StoreError
from fpoctl.store import Store, db
from tests.jobs_helpers import SMALL, wait_for
from tests.test_bad_input import Case, assert_one_error_line, run_main

LONG_RUN = ["finetune", "--foreground", "--iterations", "100000", *SMALL, "--set", "eval_every=100000",
            "--set", "checkpoint_every=100000"]
FAULTS = {"full": ("database or disk is full", "free some space"),
          "readonly": ("attempt to write a readonly database", "make it writable"),
          "locked": ("database is locked", "write lock")}


def metric_inserts_fail(monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    """From now on every engine's inserts into the metrics table fail with SQLite's `message`."""
    make = db.make_engine

    def engine_with_fault(url: str) -> Engine:
        engine = make(url)

        def fail(conn, cursor, statement, params, context, executemany) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO METRICS"):
                raise sqlite3.OperationalError(message)

        event.listen(engine, "before_cursor_execute", fail)
        return engine

    monkeypatch.setattr(db, "make_engine", engine_with_fault)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_store_that_stops_taking_metrics_fails_the_run_in_one_line(
        fault: str, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    message, fix = FAULTS[fault]
    metric_inserts_fail(monkeypatch, message)
    code, out, err = run_main(LONG_RUN, capsys)
    line = assert_one_error_line(code, out, err, Case((), (message, fix),
                                                      absent=() if fault == "locked" else ("lock",)))
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as store:
        run = store.get_run(1)
    assert run.status == "failed" and message in run.error, (run.status, run.error)
    assert run.step < 100000 and line.endswith(run.error.split(": ", 1)[1])


def test_the_metric_flusher_thread_keeps_a_failed_write_for_the_trainer(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    raised: list[BaseException] = []
    monkeypatch.setattr("threading.excepthook", lambda args: raised.append(args.exc_value))
    run = store.create_run(name="x")
    writer = store.metric_writer(run.id, max_seconds=0.05)

    def fail(conn, cursor, statement, params, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO METRICS"):
            raise sqlite3.OperationalError("database or disk is full")

    event.listen(store.engine, "before_cursor_execute", fail)
    writer.log(0, {"a": 1.0})
    time.sleep(0.3)  # the flusher meets the full disk
    with pytest.raises(StoreError, match="database or disk is full"):
        writer.log(1, {"a": 2.0})
    writer.close()  # nothing more to flush, nothing raised again
    assert raised == []


def test_a_really_full_disk_under_the_store_fails_the_run_in_one_line(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=80m", "tmpfs", str(small)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"needs to mount a small tmpfs (root, CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    url = f"sqlite:///{small / 'fpoctl.db'}"
    env = {**os.environ, "FPOCTL_HOME": str(tmp_path / "home"), "FPOCTL_DB": url, "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "fpoctl.cli", *LONG_RUN], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with Store(url) as store:
            wait_for(lambda: store.list_runs() and store.get_run(1).step >= 2)
        with (small / "filler").open("wb") as filler:  # the disk fills up while the run trains
            try:
                while True:
                    filler.write(b"\0" * 2**20)
                    filler.flush()
            except OSError:
                pass
        out, err = proc.communicate(timeout=180)
        assert_one_error_line(proc.returncode, out, err,
                              Case((), ("database or disk is full", "free some space"), absent=("lock",)))
        (small / "filler").unlink()
        with Store(url) as store:
            run = store.get_run(1)
        assert run.status == "failed" and "database or disk is full" in run.error, (run.status, run.error)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        subprocess.run(["umount", str(small)], check=True)

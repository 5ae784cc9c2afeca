"""The CLI shell: help, version, runs/db/doctor, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from fpoctl import __version__
from fpoctl.store import Store
from tests.conftest import run_cli


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit code != 0, a single 'error:' line on stderr mentioning `fragments`, no traceback."""
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for frag in fragments:
        assert frag in lines[0], lines[0]


def test_help_and_version(home: Path) -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for cmd in ("runs", "db", "doctor"):
        assert cmd in proc.stdout
    assert run_cli("--version").stdout.strip() == f"fpoctl {__version__}"


def test_runs_list_show_rm_with_json(home: Path) -> None:
    home.mkdir(parents=True)
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as s:
        run = s.create_run(name="demo-run", task="fast-goal", policy="mlp", seed=1)
        with s.metric_writer(run.id) as w:
            for i in range(20):
                w.log(i, {"rollout/success_rate": i / 20, "eval/success_rate": i / 25})
        s.set_status(run.id, "finished")
    listed = json.loads(run_cli("runs", "list", "--json").stdout)
    assert [(r["id"], r["name"], r["status"]) for r in listed] == [(run.id, "demo-run", "finished")]
    assert listed[0]["best_success"] == pytest.approx(19 / 25)
    table = run_cli("runs", "list").stdout
    assert "demo-run" in table and "finished" in table
    shown = run_cli("runs", "show", "demo-run")
    assert shown.returncode == 0 and "eval/success_rate" in shown.stdout and "▁" in shown.stdout
    assert json.loads(run_cli("runs", "show", str(run.id), "--json").stdout)["task"] == "fast-goal"
    (home / "runs" / str(run.id)).mkdir(parents=True)
    assert run_cli("runs", "rm", str(run.id), "--yes").returncode == 0
    assert not (home / "runs" / str(run.id)).exists()
    assert json.loads(run_cli("runs", "list", "--json").stdout) == []


def test_db_current_and_upgrade(home: Path) -> None:
    assert run_cli("db", "upgrade").returncode == 0
    info = json.loads(run_cli("db", "current", "--json").stdout)
    assert info["revision"] == info["head"] and info["url"].endswith("fpoctl.db")


def test_doctor_reports_every_check(home: Path) -> None:
    proc = run_cli("doctor", "--json")
    names = [c["name"] for c in json.loads(proc.stdout)]
    assert names[:2] == ["python", "torch"] and "store" in names and "disk" in names
    assert proc.returncode == (1 if any(c["status"] == "fail" for c in json.loads(proc.stdout))
                               else 0)


def test_unknown_run_id(home: Path) -> None:
    assert_one_line_error(run_cli("runs", "show", "42"), "no run '42'")


def test_garbage_file_as_database(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    assert_one_line_error(run_cli("--db", f"sqlite:///{garbage}", "runs", "list"),
                          "not an SQLite database")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere: chmod cannot make "
                    "a folder unwritable for root")
def test_unwritable_home_as_user(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert_one_line_error(run_cli("--home", str(locked / "home"), "runs", "list"), "cannot write")


def test_unwritable_home(tmp_path: Path) -> None:
    # A home under a regular file cannot be created, for root too.
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_one_line_error(run_cli("--home", str(blocker / "home"), "runs", "list"),
                          "cannot write to the fpoctl home")


def test_database_newer_than_code(home: Path) -> None:
    assert run_cli("db", "upgrade").returncode == 0
    with sa.create_engine(f"sqlite:///{home / 'fpoctl.db'}").begin() as conn:
        conn.exec_driver_sql("update alembic_version set version_num = 'f00dfeed9999'")
    assert_one_line_error(run_cli("runs", "list"), "newer than this fpoctl")


def test_locked_database_is_a_one_line_error(home: Path) -> None:
    assert run_cli("sft", "--task", "fast-goal", "--expert", "2", "--steps", "5",
                   "--set", "eval_episodes=1").returncode == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
         "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(60)",
         str(home / "fpoctl.db")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = run_cli("runs", "rm", "1", "--yes", env={"FPOCTL_DB_BUSY_TIMEOUT_S": "1"})
        assert_one_line_error(proc, "database is locked")
    finally:
        holder.kill()
        holder.wait()
    assert run_cli("runs", "show", "1").returncode == 0  # nothing lost


def test_bad_database_url(home: Path) -> None:
    assert_one_line_error(run_cli("--db", "nonsense://", "runs", "list"))


def test_store_works_from_an_installed_wheel(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(root)], check=True, timeout=300,
                   capture_output=True)
    wheel = next((tmp_path / "dist").glob("fpoctl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "fpoctl/store/migrations/env.py" in names
    assert any(n.startswith("fpoctl/store/migrations/versions/0001_") for n in names)
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = ("import fpoctl, sys; assert fpoctl.__file__.startswith(sys.argv[1]), fpoctl.__file__;"
            "from fpoctl.store import Store; s = Store(sys.argv[2]); print(s.create_run(name='w').id)")
    proc = subprocess.run([sys.executable, "-c", code, str(target), f"sqlite:///{tmp_path}/w.db"],
                          env={**os.environ, "PYTHONPATH": str(target)}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"

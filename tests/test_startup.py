"""`fpoctl --help` and `--version` start without the heavy libraries (the store's SQLAlchemy and
alembic, torch, NumPy, Textual, Gymnasium, the Hub client); `runs list` loads SQLAlchemy but no
trainer, simulator or dashboard, and alembic only when the store needs migrating. Each case runs
the real entry point in a fresh interpreter and lists what it imported (timings: bench/startup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("sqlalchemy", "alembic", "torch", "numpy", "textual", "gymnasium", "huggingface_hub")
LOADED = """
import json, sys
sys.argv = ["fpoctl", *sys.argv[1:]]
import fpoctl.cli
try:
    fpoctl.cli.main()
except SystemExit as exc:
    code = exc.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))
sys.__stderr__.write("LOADED " + json.dumps({"code": code, "heavy": heavy}) + "\\n")
"""


def loaded(home: Path, *args: str) -> dict:
    """Exit code and the heavy top-level packages imported by `fpoctl ARGS`."""
    proc = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{LOADED}", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "FPOCTL_HOME": str(home),
                                                       "COLUMNS": "120"})
    line = next(x for x in proc.stderr.splitlines() if x.startswith("LOADED "))
    return json.loads(line.removeprefix("LOADED "))


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("finetune", "--help"), ("runs", "--help"),
                                  ("eval", "--help"), ("dash", "--help"), ()])
def test_help_and_version_import_no_heavy_library(args: tuple[str, ...], home: Path) -> None:
    result = loaded(home, *args)
    assert result["code"] in (0, 2)  # no arguments: the help, exit 2
    assert result["heavy"] == []


def test_runs_list_loads_the_store_only_and_alembic_only_to_migrate(home: Path) -> None:
    first = loaded(home, "runs", "list")  # creates the store: alembic migrates it
    assert first["code"] == 0 and first["heavy"] == ["alembic", "sqlalchemy"]
    again = loaded(home, "runs", "list")  # at head: the revision is read by plain SQL
    assert again["code"] == 0 and again["heavy"] == ["sqlalchemy"]


def test_the_newest_migration_read_without_alembic_is_alembics_head() -> None:
    from fpoctl.store import db

    assert db.newest_migration() == db.head_revision() != ""


def test_a_typer_parse_error_is_still_one_line_without_the_store(home: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "fpoctl.cli", "finetune", "--iterations", "x"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FPOCTL_HOME": str(home)})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error:")
    assert not home.exists()  # nothing opened the store

"""Task names: suites, single LIBERO tasks, gym:<id>, close-match errors, and `fpoctl tasks`."""

from __future__ import annotations

import json

import pytest

from fpoctl.envs import UnknownTaskError, all_tasks, get_task
from tests.conftest import run_cli


def test_registry_lists_every_backend() -> None:
    names = {t.name for t in all_tasks()}
    assert {"libero-spatial", "libero-object", "libero-goal", "libero-10", "aloha-insertion",
            "aloha-transfer-cube", "fast-goal", "fast-bandit"} <= names
    budgets = {t.name: t.max_steps for t in all_tasks() if t.backend == "libero"}
    assert budgets == {"libero-spatial": 220, "libero-object": 280, "libero-goal": 300, "libero-10": 520}


def test_single_libero_task_resolves_with_its_suites_budget() -> None:
    spec = get_task("libero-goal/7")
    assert spec.backend == "libero" and spec.max_steps == 300 and spec.obs_modes == ("pixels", "state")


@pytest.mark.parametrize(("name", "message"), [
    ("libero-spatail", "did you mean libero-spatial"),
    ("libero-spatail/3", "did you mean libero-spatial/3"),
    ("libero-spatial/12", "libero-spatial has tasks 0-9"),
    ("gym:HalfCheeta-v5", "did you mean gym:HalfCheetah-v5"),
    ("HalfCheetah-v5", "did you mean gym:HalfCheetah-v5"),
    ("aloha-insert", "did you mean aloha-insertion"),
])
def test_unknown_task_names_get_one_line_with_close_matches(name: str, message: str) -> None:
    with pytest.raises(UnknownTaskError, match=message) as err:
        get_task(name)
    assert "\n" not in str(err.value)


def test_tasks_command_lists_tasks_as_json_and_rejects_unknown_names(home) -> None:
    out = run_cli("tasks", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["libero-spatial"]["action_dim"] == 7 and rows["libero-spatial"]["expert"]
    assert rows["aloha-insertion"]["obs_modes"] == ["pixels", "state"] and "gym:<id>" in rows
    bad = run_cli("tasks", "libero-spatail/3")
    assert bad.returncode == 1 and "did you mean libero-spatial/3" in bad.stderr
    assert "Traceback" not in bad.stderr

"""`fpoctl dash` driven by Textual's pilot on a real seeded store: navigate, filter, sort, open a
run, compare runs, run-action keys, and rows written by another process showing up live."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Label, Static

from fpoctl.dash import names as n
from fpoctl.dash.actions import ACTIONS, RunAction
from fpoctl.dash.app import DashApp
from fpoctl.dash.screens.ask import AskScreen
from fpoctl.dash.screens.compare import CompareScreen
from fpoctl.dash.screens.confirm import ConfirmScreen
from fpoctl.dash.screens.help import HelpScreen
from fpoctl.dash.screens.run import RunScreen
from fpoctl.dash.screens.runs import EMPTY, RunsScreen
from fpoctl.settings import Settings
from fpoctl.store import Store
from tests.conftest import run_cli
from tests.dash_pilot import drive, make_app, wait_for
from tests.seed_store import seed_runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def seeded(store: Store) -> dict[str, int]:
    """The five seeded runs, name -> id."""
    return seed_runs(store)


def statuses(app: DashApp) -> dict[int, str]:
    """Run id -> status as the runs table shows it."""
    table = app.screen.table
    col = table.column_keys.index("status")
    return {int(str(key.value)): str(table.get_row(key)[col]) for key in table.rows}


def test_runs_table_shows_every_run_with_lost_and_key_numbers(store, settings, seeded) -> None:
    app = make_app(store, settings)

    async def scenario(pilot: Pilot) -> None:
        assert isinstance(app.screen, RunsScreen)
        assert statuses(app) == {
            seeded["pi0-libero-spatial"]: "running", seeded["mlp-fast-reach"]: "finished",
            seeded["pi0-aloha-insertion"]: "lost", seeded["mlp-pendulum"]: "failed",
            seeded["pi0-libero-goal"]: "queued",
        }
        table = app.screen.table
        row = dict(zip(table.column_keys, table.get_row(str(seeded["pi0-libero-spatial"])), strict=True))
        assert str(row["iter"]) == "120/300" and str(row["env_steps"]) == "245.8k"
        assert str(row["elapsed"]) == "1h00m" and str(row["eta"]) == "1h30m"  # 180 iterations left
        assert str(row["success"]).endswith("%") and str(row["best"]).endswith("%")
        assert "5 runs · 1 running" in app.screen.sub_title

    drive(app, scenario)


def test_narrow_terminal_keeps_the_numbers_that_matter(store, settings, seeded) -> None:
    app = make_app(store, settings)

    async def scenario(pilot: Pilot) -> None:
        keys = app.screen.table.column_keys
        assert "task" not in keys and {"name", "status", "success", "best", "eta"} <= set(keys)

    drive(app, scenario, size=(80, 24))


def test_filter_then_clear(store, settings, seeded) -> None:
    app = make_app(store, settings)

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("slash", *"pi0 lost")
        table = app.screen.table
        assert [r.name for r in table.shown_runs] == ["pi0-aloha-insertion"] and table.row_count == 1
        assert app.screen.sub_title.startswith("1 of 5 runs")
        await pilot.press("enter")  # keep the filter, back to the table
        assert app.focused is table and table.row_count == 1
        await pilot.press("escape")
        assert table.row_count == 5 and table.query_text == ""

    drive(app, scenario)


def test_sort_by_key_and_by_header_click(store, settings, seeded) -> None:
    app = make_app(store, settings)

    async def scenario(pilot: Pilot) -> None:
        table = app.screen.table
        assert [r.id for r in table.shown_runs] == sorted(seeded.values(), reverse=True)
        await pilot.press("o")  # id -> name, ascending
        assert table.shown_runs[0].name == "mlp-fast-reach" and "by name ▲" in app.screen.sub_title
        await pilot.click(offset=(table.region.x + 2 + _column_x(table, "best"), table.region.y))
        assert table.sort_column == "best"
        best = [r.best_success for r in table.shown_runs]
        present = [b for b in best if b is not None]
        assert present == sorted(present, reverse=True) and best[-1] is None  # blanks last

    drive(app, scenario)


def _column_x(table, key: str) -> int:
    """The x offset of a column's header inside the table."""
    x = 0
    for column in table.ordered_columns:
        if column.key.value == key:
            return x
        x += column.get_render_width(table)
    raise KeyError(key)


def test_open_a_run_then_go_back(store, settings, seeded) -> None:
    app = make_app(store, settings)
    rid = seeded["pi0-libero-spatial"]

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("down", "down", "down", "down")  # id descending: run 1 is last
        assert app.screen.table.current_run_id == rid
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.run_id == rid
        await wait_for(pilot, lambda: screen.loaded)
        assert screen.curves[n.ROLLOUT_SUCCESS].count == 120
        assert screen.curves[n.EVAL_SUCCESS].count == 12
        assert screen.curves[n.ENV_STEPS].last == 120 * 2048
        assert {n.Q_MEAN, n.Q_STD, n.Q_MIN, n.RATIO_MAX, "perf/gpu_mem_gb"} <= set(screen.curves)
        header = screen.query_one("#run-header").plain
        assert "pi0-libero-spatial" in header and "iter 120/300" in header
        events = " ".join(strip.text.strip() for strip in screen.query_one("#events").lines)
        for shown in ("+0s status status -> running", "+2m00s checkpoint saved checkpoint at iteration 100",
                      "+4m00s fpo ratio_max 1.31 > 1.25 at iteration 97"):
            assert " ".join(shown.split()) in " ".join(events.split())
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)

    drive(app, scenario)


def test_open_run_directly_like_dash_run_option(store, settings, seeded) -> None:
    app = make_app(store, settings, run_id=seeded["mlp-pendulum"])

    async def scenario(pilot: Pilot) -> None:
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.run_id == seeded["mlp-pendulum"]
        assert "CUDA error: out of memory" in screen.query_one("#run-header").plain
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)

    drive(app, scenario, size=(80, 24))


def test_compare_two_marked_runs(store, settings, seeded) -> None:
    app = make_app(store, settings)
    first, second = seeded["mlp-fast-reach"], seeded["pi0-libero-spatial"]

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("down", "down", "down", "space", "down", "space")  # runs 2 and 1
        assert app.screen.table.marked == {first, second}
        await pilot.press("c")
        screen = app.screen
        assert isinstance(screen, CompareScreen) and screen.run_ids == [first, second]
        await wait_for(pilot, lambda: len(screen.plotted) == 2)
        assert [line.label for line in screen.plotted] == ["2 mlp-fast-reach", "1 pi0-libero-spatial"]
        assert screen.curves[first].count == 20 and all(line.points for line in screen.plotted)
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)

    drive(app, scenario)


def test_stop_asks_first_then_calls_the_jobs_service(store, settings, seeded) -> None:
    app = make_app(store, settings)

    async def scenario(pilot: Pilot) -> None:
        bindings = app.screen.active_bindings
        assert bindings["s"].enabled and bindings["r"].enabled
        await pilot.press("s")  # on the first row: a queued run that no job holds
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = str(app.screen.query_one("#question", Label).content)
        assert question.startswith("Stop run 5 (pi0-libero-goal)?")
        await pilot.press("n")  # no: nothing is asked of the service
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.pause(0.3)
        assert not app._notifications
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(app._notifications))
        message = next(iter(app._notifications)).message
        assert message.startswith("stop failed: run ") and "is not running" in message

    drive(app, scenario)


def test_push_asks_for_the_repo_naming_the_run_and_reports_the_hubs_answer(
        store, settings, seeded) -> None:
    app = make_app(store, settings)

    async def scenario(pilot: Pilot) -> None:
        assert app.screen.active_bindings["p"].enabled is True
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, AskScreen))
        ask = app.screen
        label = ask.query_one("#question", Label)
        assert str(label.content) == "Push the best checkpoint of run 5 (pi0-libero-goal) to the Hub repo:"
        box = ask.query_one("Vertical")
        assert box.region.right <= app.size.width and label.size.width >= 40  # it fits at 80 columns
        await pilot.press("escape")  # cancel: nothing is pushed
        await wait_for(pilot, lambda: not isinstance(app.screen, AskScreen))
        assert not app._notifications
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, AskScreen))
        await pilot.press(*"not a repo", "enter")  # the real push service rejects the id
        await wait_for(pilot, lambda: bool(app._notifications))
        message = next(iter(app._notifications)).message
        assert message.startswith("push failed:") and "not a repo" in message

    drive(app, scenario, size=(80, 24))


def test_help_key_lists_every_key_of_the_screen(store, settings, seeded) -> None:
    app = make_app(store, settings)

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = dict(app.screen.rows)
        assert list(keys)[:4] == ["/", "space", "c", "o"]  # the screen's own keys before generic ones
        for key, what in (("/", "filter"), ("space", "mark"), ("c", "compare"), ("o", "sort"),
                          ("s", "stop"), ("r", "resume"), ("p", "push"), ("q", "quit"), ("?", "keys"),
                          ("enter", "open")):
            assert keys.get(key) == what, (key, keys)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("down", "space", "down", "space", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = dict(app.screen.rows)
        assert {"m": "metric", "x": "x axis", "w": "smooth", "esc": "back"}.items() <= keys.items(), keys

    drive(app, scenario)


def test_empty_home_says_how_to_start(store, settings) -> None:
    app = make_app(store, settings)

    async def scenario(pilot: Pilot) -> None:
        empty = app.screen.query_one("#empty", Static)
        assert empty.display and not app.screen.table.display
        text = str(empty.content)
        assert "No runs in this store yet" in text and "fpoctl demo" in text
        await wait_for(pilot, lambda: empty.region.height > 0)
        lines = Text.from_markup(EMPTY).plain.splitlines()
        assert max(map(len, lines)) <= 76  # fits 80 columns (padding 2 either side)
        await pilot.press("c")  # nothing to compare: a warning, no screen
        assert isinstance(app.screen, RunsScreen)

    drive(app, scenario, size=(80, 24))


def test_q_exits_at_once_while_an_action_still_runs(store, settings, seeded, monkeypatch) -> None:
    """A stand-in for a slow service call (a push uploading gigabytes) that does not return until
    told: `q` must not wait for it."""
    release, started = threading.Event(), threading.Event()

    def slow_resume(settings: Settings, run_id: int) -> str:
        started.set()
        release.wait(30)
        return "resumed"

    monkeypatch.setitem(ACTIONS, "resume", RunAction("resume", slow_resume))
    app = make_app(store, settings)
    exited: list[float] = []

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("r")
        await wait_for(pilot, started.is_set)
        t0 = time.monotonic()
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, timeout=5)
        exited.append(time.monotonic() - t0)

    try:
        drive(app, scenario)
    finally:
        release.set()
    assert exited and exited[0] < 1.0


def test_rows_from_another_process_show_up_live(store, settings, seeded) -> None:
    """A stand-in trainer process appends iterations; the open run screen (1 s refresh, as
    shipped) shows each iteration as it arrives, and no read ever fails while the writer writes
    (how soon: bench/dash_bench.py)."""
    rid = seeded["pi0-libero-spatial"]
    app = DashApp(store, settings, run_id=rid)  # the real interval and clock
    errors: list[str] = []
    app.report_read_error = errors.append  # type: ignore[method-assign]

    async def scenario(pilot: Pilot) -> None:
        screen = app.screen
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.seed_store", "append", "--db", settings.db_url,
            "--run", str(rid), "--start", "120", "--count", "3", "--delay", "1.3",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        for it in range(120, 123):
            word, number, *_ = (await proc.stdout.readline()).decode().split()
            assert (word, int(number)) == ("wrote", it)
            await wait_for(pilot, lambda it=it: screen.curves[n.ROLLOUT_SUCCESS].count >= it + 1)
        await proc.wait()
        assert screen.curves[n.ENV_STEPS].last == 123 * 2048
        assert "iter 123/300" in screen.query_one("#run-header").plain

    drive(app, scenario)
    assert errors == []


def test_cli_dash_with_unknown_run_is_one_line_error(settings: Settings) -> None:
    proc = run_cli("dash", "--run", "999")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["error: no run '999' (see `fpoctl runs list`)"]

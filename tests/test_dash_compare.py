"""The compare screen on a real seeded store, driven by Textual's pilot: nothing marked asks
first; any metric, three x axes, smoothing with the episodes per point; evaluations as points;
the config keys in which the runs differ; a warning when their tasks differ."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from fpoctl.dash import names as n
from fpoctl.dash.screens.compare import CompareScreen
from fpoctl.dash.screens.confirm import ConfirmScreen
from fpoctl.dash.screens.pick import PickScreen
from fpoctl.dash.screens.runs import RunsScreen
from fpoctl.store import Store
from tests.dash_pilot import drive, make_app, wait_for
from tests.seed_store import SECONDS_PER_ITER, seed_kinds, seed_runs


@pytest.fixture
def seeded(store: Store) -> dict[str, int]:
    """The five seeded runs plus an SFT run and a value-critic run, name -> id."""
    return {**seed_runs(store), **seed_kinds(store)}


async def compare(pilot: Pilot, *marks: int) -> CompareScreen:
    """Mark the runs at these rows of the runs table (ids descending), press c, wait for data."""
    for row in marks:
        pilot.app.screen.table.move_cursor(row=row)
        await pilot.press("space")
    await pilot.press("c")
    screen = pilot.app.screen
    assert isinstance(screen, CompareScreen)
    await wait_for(pilot, lambda: screen.loaded)
    return screen


def test_nothing_marked_asks_before_comparing_the_runs_shown(store, settings, seeded) -> None:
    app = make_app(store, settings)

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "No runs are marked" in str(app.screen.query_one("#question", Static).content)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert app.screen.run_ids == sorted(seeded.values(), reverse=True)

    drive(app, scenario)


def test_any_metric_against_any_axis_smoothed(store, settings, seeded) -> None:
    app = make_app(store, settings)
    fast, value = seeded["mlp-fast-reach"], seeded["mlp-value-reach"]

    async def scenario(pilot: Pilot) -> None:
        screen = await compare(pilot, 0, 5)  # rows: 7 mlp-value-reach ... 2 mlp-fast-reach
        assert screen.run_ids == [value, fast]
        assert all(line.points for line in screen.plotted)  # eval success: points
        assert screen.per_point == {value: 50.0, fast: 50.0}  # episodes per evaluation
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, PickScreen))
        choices = [key for key, _ in app.screen.choices]
        assert choices[:3] == [n.EVAL_SUCCESS, n.ROLLOUT_SUCCESS, n.ROLLOUT_RETURN]
        assert {n.APPROX_KL, n.CLIP_FRAC, n.Q_STD, n.CRITIC_LOSS, "critic/explained_variance"} <= set(choices)
        await pilot.press(*["down"] * choices.index(n.APPROX_KL), "enter")
        await wait_for(pilot, lambda: app.screen is screen and screen.loaded)
        assert screen.metric == n.APPROX_KL and not any(line.points for line in screen.plotted)
        assert screen.curves[fast].count == 200 and screen.curves[value].count == 60
        title = screen.query_one("#compare-panel").border_title
        assert title == "approx KL vs env steps"
        await pilot.press("x")  # iteration
        await wait_for(pilot, lambda: screen.loaded)
        assert screen.curves[fast].x[-1] == 199.0
        await pilot.press("x")  # wall time: seconds since the run's first row
        await wait_for(pilot, lambda: screen.loaded)
        assert screen.x_label == "wall time"
        assert screen.curves[fast].x[-1] == pytest.approx(199 * SECONDS_PER_ITER)
        await pilot.press("w")  # a trailing mean over 3 iterations
        await wait_for(pilot, lambda: screen.loaded)
        assert screen.view.window == 3 and screen.per_point == {value: 48.0, fast: 48.0}
        assert screen.query_one("#compare-panel").border_title == "approx KL vs wall time · mean of 3 points"
        raw = screen.feed.series[fast].columns[n.APPROX_KL].values
        assert screen.curves[fast].y[-1] == pytest.approx(raw[-3:].mean())

    drive(app, scenario)


def test_config_differences_and_no_warning_for_one_task(store, settings, seeded) -> None:
    app = make_app(store, settings)

    async def scenario(pilot: Pilot) -> None:
        screen = await compare(pilot, 0, 5)
        assert list(screen.differ) == ["init", "seed", "iterations", "critic", "critic_lr", "gamma"]
        assert screen.differ["critic"] == ["value", "q_ensemble"]
        assert not screen.query_one("#compare-warning").display  # both on fast-reach

    drive(app, scenario)


def test_a_warning_when_the_tasks_differ(store, settings, seeded) -> None:
    app = make_app(store, settings)

    async def scenario(pilot: Pilot) -> None:
        screen = await compare(pilot, 5, 6)  # mlp-fast-reach, pi0-libero-spatial
        warning = screen.query_one("#compare-warning", Static)
        assert warning.display
        assert str(warning.content).startswith("⚠ different tasks: fast-reach, libero-spatial")
        assert screen.differ["task"] == ["fast-reach", "libero-spatial"]

    drive(app, scenario, size=(80, 24))

"""Screenshots of the dashboard on the seeded store with "now" frozen (pytest-textual-snapshot),
at 120x40 and 80x24 for every run view (FPO with the Q-ensemble, value critic, SFT) and compare.
After a deliberate UI change: pytest tests/test_dash_snapshots.py --snapshot-update, then look
at the SVGs under tests/__snapshots__/ before committing them."""

from __future__ import annotations

import time

import pytest
from textual.pilot import Pilot

from fpoctl.dash.app import DashApp
from fpoctl.settings import Settings
from fpoctl.store import Store
from tests.seed_store import FROZEN_NOW, seed_kinds, seed_runs

pytest.importorskip("pytest_textual_snapshot")

SIZES = pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])


@pytest.fixture
def seeded(store: Store) -> dict[str, int]:
    """The five seeded runs, an SFT run and a value-critic run: name -> id."""
    return {**seed_runs(store), **seed_kinds(store)}


def app_for(store: Store, settings: Settings, run_id: int | None = None) -> DashApp:
    """The app with "now" frozen at the seeded times."""
    return DashApp(store, settings, run_id=run_id, interval=0.1, clock=lambda: FROZEN_NOW)


async def settled(pilot: Pilot) -> None:
    """Wait until the current screen has its data, then let rendering finish."""
    deadline = time.monotonic() + 10
    while not getattr(pilot.app.screen, "loaded", False):
        assert time.monotonic() < deadline, "the screen never loaded"
        await pilot.pause(0.02)
    await pilot.pause(0.3)
    await pilot.wait_for_scheduled_animations()
    await pilot.pause(0.1)


def test_runs_screen(snap_compare, store, settings, seeded) -> None:
    assert snap_compare(app_for(store, settings), terminal_size=(120, 30), run_before=settled)


def test_runs_screen_at_80x24(snap_compare, store, settings, seeded) -> None:
    assert snap_compare(app_for(store, settings), terminal_size=(80, 24), run_before=settled)


def test_empty_home_at_80x24(snap_compare, store, settings) -> None:
    assert snap_compare(app_for(store, settings), terminal_size=(80, 24), run_before=settled)


@SIZES
@pytest.mark.parametrize("run", ["pi0-libero-spatial", "mlp-value-reach", "fast-reach-sft"])
def test_run_screen(snap_compare, store, settings, seeded, run, size) -> None:
    app = app_for(store, settings, run_id=seeded[run])
    assert snap_compare(app, terminal_size=size, run_before=settled)


@SIZES
def test_compare_screen(snap_compare, store, settings, seeded, size) -> None:
    """120x40: two runs of one task (the config table, no warning); 80x24: three tasks."""
    keys = ("space", *["down"] * 5, "space", "c") if size[0] == 120 else \
        ("down", "down", "space", "down", "space", "down", "space", "c")

    async def compare(pilot: Pilot) -> None:
        await settled(pilot)
        await pilot.press(*keys)
        await settled(pilot)

    assert snap_compare(app_for(store, settings), terminal_size=size, run_before=compare)


def test_stop_asks_at_80x24(snap_compare, store, settings, seeded) -> None:
    async def ask(pilot: Pilot) -> None:
        await settled(pilot)
        await pilot.press("s")
        await pilot.pause(0.3)
        await pilot.wait_for_scheduled_animations()

    app = app_for(store, settings, run_id=seeded["pi0-libero-spatial"])
    assert snap_compare(app, terminal_size=(80, 24), run_before=ask)

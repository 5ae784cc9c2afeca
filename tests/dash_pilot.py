"""Test helper: drive the dashboard in a headless terminal on a real store with "now" frozen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from textual.pilot import Pilot

from fpoctl.dash.app import DashApp
from fpoctl.settings import Settings
from fpoctl.store import Store
from tests.seed_store import FROZEN_NOW


def make_app(store: Store, settings: Settings, **kwargs) -> DashApp:
    """The app with "now" frozen where the seeded times expect it."""
    kwargs.setdefault("interval", 0.2)
    return DashApp(store, settings, clock=lambda: FROZEN_NOW, **kwargs)


async def wait_for(pilot: Pilot, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until `condition()` holds (failing after `timeout` seconds)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.02)


def drive(app: DashApp, scenario: Callable[[Pilot], Awaitable[None]],
          size: tuple[int, int] = (120, 40)) -> None:
    """Run `scenario` against the app in a headless terminal of `size`."""
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: getattr(app.screen, "loaded", False))
            await scenario(pilot)
    asyncio.run(main())

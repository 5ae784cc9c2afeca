"""The run screen of a resumed run (Textual pilot, fake clock): elapsed counts every attempt, the
ETA runs at this attempt's recent rate, the events before the resume keep their offsets from the
first start, and a rule marks the resume."""

from __future__ import annotations

import asyncio

from fpoctl.dash.app import DashApp
from fpoctl.dash.widgets.events_log import RESUME_RULE
from fpoctl.settings import Settings
from fpoctl.store import Store
from tests.test_dash import wait_for
from tests.test_timing import T0, Clock, iterate


def resumed_run(store: Store, clock: Clock) -> int:
    """263/400 iterations in 6.5 min, stopped, resumed an hour later, 10 more at 1.5 s each."""
    run = store.create_run(name="resumed", task="fast-reach", policy="mlp", total_steps=400)
    store.set_status(run.id, "running")
    iterate(store, clock, run.id, range(1, 251), 1.5)
    store.add_event(run.id, "checkpoint step 250", kind="checkpoint")
    iterate(store, clock, run.id, range(251, 264), (390 - 375) / 13)
    store.add_event(run.id, "stopped at iteration 263 (SIGTERM)", kind="stop")
    store.set_status(run.id, "stopped")
    clock.now += 3600
    store.requeue(run.id)
    store.add_event(run.id, "resume requested", kind="resume")
    store.set_status(run.id, "running")
    clock.now += 20
    store.add_event(run.id, "resumed from step 263 (0 metric rows after it dropped)", kind="resume")
    iterate(store, clock, run.id, range(264, 274), 1.5)
    clock.now += 0.5
    return run.id


def test_a_resumed_runs_screen_keeps_event_offsets_marks_the_resume_and_counts_all_attempts(
        settings: Settings) -> None:
    clock = Clock(T0)
    with Store(settings.db_url, clock=clock) as store:
        rid = resumed_run(store, clock)
        app = DashApp(store, settings, run_id=rid, interval=0.1, clock=clock)

        async def main() -> None:
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_for(pilot, lambda: getattr(app.screen, "loaded", False))
                screen = app.screen
                await pilot.pause(0.3)
                lines = [" ".join(s.text.split()) for s in screen.query_one("#events").lines]
                assert lines[:3] == ["+0s status status -> running",
                                     "+6m15s checkpoint checkpoint step 250",
                                     "+6m30s stop stopped at iteration 263 (SIGTERM)"]
                rule = lines.index(" ".join(RESUME_RULE.split()))
                assert lines[rule + 1:] == ["+1h06m resume resume requested",
                                            "+1h06m status status -> running",
                                            "+1h06m resume resumed from step 263 (0 metric rows after "
                                            "it dropped)"]
                assert lines.count(" ".join(RESUME_RULE.split())) == 1
                header = " ".join(screen.query_one("#run-header").plain.split())
                assert "elapsed 7m05s" in header and "iter 273/400" in header  # 390 + 35.5 s
                assert "ETA 3m10s" in header  # 127 left at this attempt's 1.5 s, 0.5 s into one

        asyncio.run(main())

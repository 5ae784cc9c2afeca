"""Dashboard benchmark: startup and per-tick refresh with 10 runs x 100k metric rows.

While a writer process appends one iteration (17-18 rows) to the open run every 0.25 s, it
measures the reader thread's tick (every feed polled: the runs table and the open run), the
UI thread's handling of each update, each plot redraw, and how soon a written iteration shows on
the run screen at the shipped 1 s refresh. Targets: tick < 50 ms, written -> shown < 2 s.

Run: .venv/bin/python bench/dash_bench.py [--runs 10] [--rows 100000] [--seconds 10]
(numbers, not pass/fail; the seeded store is kept in .bench/ and reused)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the seeding helper lives in tests/

from fpoctl.dash.app import DashApp  # noqa: E402
from fpoctl.dash.screens.run import RunScreen  # noqa: E402
from fpoctl.dash.widgets.metric_plot import MetricPlot  # noqa: E402
from fpoctl.settings import Settings  # noqa: E402
from fpoctl.store import Store  # noqa: E402
from tests.seed_store import iteration_metrics  # noqa: E402

ROWS_PER_ITER = 17.1  # 17 keys every iteration, eval every 10th


def seed(store: Store, runs: int, rows: int) -> list[int]:
    """`runs` finished-looking runs of about `rows` metric rows each (reused when present)."""
    existing = [r.id for r in store.list_runs() if r.name.startswith("bench-")]
    if len(existing) >= runs:
        return sorted(existing)[:runs]
    import random

    ids = []
    iters = int(rows / ROWS_PER_ITER)
    for i in range(runs):
        run = store.create_run(name=f"bench-{i}", task="libero-spatial", policy="pi0",
                               total_steps=iters * 2, config={"n_mc": 8})
        store.set_status(run.id, "running")
        rng = random.Random(i)
        t0 = time.perf_counter()
        with store.metric_writer(run.id, max_rows=20_000) as writer:
            for it in range(iters):
                writer.log(it, iteration_metrics(it, rng=rng, skill=60 / iters * (1 + i / 10)))
        store.heartbeat(run.id, step=iters)
        print(f"  seeded run {run.id}: {iters:,} iterations in {time.perf_counter() - t0:.1f} s",
              flush=True)
        ids.append(run.id)
    return ids


def timed(record: list[float], func: Callable[..., Any]) -> Callable[..., Any]:
    """`func`, appending its wall time (s) to `record` on every call."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            record.append(time.perf_counter() - t0)
    return wrapper


def summary(name: str, seconds: list[float]) -> str:
    """'name: n=.. median .. p95 .. max .. ms'."""
    if not seconds:
        return f"{name}: no samples"
    ms = sorted(1000 * s for s in seconds)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return (f"{name}: n={len(ms)}  median {statistics.median(ms):.1f} ms  p95 {p95:.1f} ms  "
            f"max {ms[-1]:.1f} ms")


async def watch_iterations(pilot: Any, app: DashApp, start_step: int, writer: subprocess.Popen
                           ) -> dict[int, float]:
    """Iteration -> when the open run screen first showed it, until 1.5 s after the writer ends."""
    shown_at: dict[int, float] = {}
    end: float | None = None
    while end is None or time.monotonic() < end:
        for it in range(start_step, app.screen.curves["env/steps_total"].count):
            shown_at.setdefault(it, time.time())
        if end is None and writer.poll() is not None:
            end = time.monotonic() + 1.5
        await pilot.pause(0.02)
    return shown_at


async def measure(store: Store, settings: Settings, run_id: int, seconds: float) -> None:
    """Start the app on `run_id`, then watch it refresh while a writer process appends."""
    handled: list[float] = []
    renders: list[float] = []
    RunScreen.on_run_updated = timed(handled, RunScreen.on_run_updated)  # type: ignore[method-assign]
    MetricPlot.render = timed(renders, MetricPlot.render)  # type: ignore[method-assign]

    t0 = time.perf_counter()
    app = DashApp(store, settings, run_id=run_id)
    async with app.run_test(size=(160, 50)) as pilot:
        runs_screen = app.screen_stack[0]
        while not (app.screen.loaded and runs_screen.loaded):
            await pilot.pause(0.005)
        startup = time.perf_counter() - t0
        await pilot.pause(0.5)
        iters = app.screen.curves["env/steps_total"].count
        print(f"startup: app start -> runs table and run screen ({iters:,} iterations) loaded: "
              f"{startup:.2f} s")
        print(summary("first loads (reader)", list(app.reader.tick_seconds)))
        app.reader.tick_seconds.clear()
        await pilot.pause(3)
        print(summary("idle tick (reader: runs table + open run, nothing new)",
                      list(app.reader.tick_seconds)))
        app.reader.tick_seconds.clear()
        handled.clear()
        renders.clear()
        start_step = app.screen.curves["env/steps_total"].count
        count = int(seconds / 0.25)
        writer = subprocess.Popen(
            [sys.executable, "-m", "tests.seed_store", "append", "--db", store.url, "--run", str(run_id),
             "--start", str(start_step), "--count", str(count), "--delay", "0.25"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        shown_at = await watch_iterations(pilot, app, start_step, writer)
        written = [line.split() for line in writer.communicate()[0].splitlines()]  # "wrote N at T"
        delays = [shown_at[int(w[1])] - float(w[3]) for w in written if int(w[1]) in shown_at]
        print(f"live: writer appended {count} iterations; run screen shows {len(shown_at)}")
        print(summary("live: row written -> shown on the run screen (1 s refresh; target < 2 s)", delays))
        print(summary("tick with new rows (reader thread)", list(app.reader.tick_seconds)))
        print(summary("UI: handle one update (header, tables, events, plot data)", handled))
        print(summary("UI: redraw one plot (plotext)", renders))
    store.delete_metrics_after(run_id, start_step - 1)  # leave the seeded store as it was
    store.heartbeat(run_id, step=start_step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rows", type=int, default=100_000, help="metric rows per run")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the writer appends")
    parser.add_argument("--home", type=Path, default=ROOT / ".bench" / "dash")
    args = parser.parse_args()

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "import fpoctl.dash.app"], cwd=ROOT, check=True)
    print(f"import fpoctl.dash.app in a fresh interpreter: {time.perf_counter() - t0:.2f} s "
          f"(exit {proc.returncode})")
    settings = Settings.resolve(args.home)
    settings.ensure_home()
    with Store(settings.db_url) as store:
        ids = seed(store, args.runs, args.rows)
        print(f"store: {len(ids)} runs, {store.max_metric_id():,} metric rows in total")
        asyncio.run(measure(store, settings, ids[0], args.seconds))


if __name__ == "__main__":
    main()

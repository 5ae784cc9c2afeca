"""Store benchmark: batched metric writes per second, and "rows since N" latency at 1M rows.

Run: .venv/bin/python bench/store_bench.py [--rows 1000000]   (numbers, not pass/fail)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fpoctl.store import Store

KEYS = ["rollout/success_rate", "rollout/return", "fpo/ratio_mean", "fpo/clip_frac",
        "fpo/approx_kl", "critic/q_mean", "critic/q_std", "critic/q_min", "perf/update_s",
        "env/steps_total"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        run = store.create_run(name="bench")
        t0 = time.perf_counter()
        with store.metric_writer(run.id, max_rows=2000) as writer:
            for step in range(args.rows // len(KEYS)):
                writer.log(step, {k: step * 0.001 for k in KEYS})
        write_s = time.perf_counter() - t0
        print(f"writer: {args.rows:,} rows in {write_s:.2f} s = {args.rows / write_s:,.0f} rows/s")

        last_id = store.metrics_since(run.id, 0, limit=1)[0].id + args.rows - 1
        for tail in (0, 10, 1000, 100_000):
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                rows = store.metrics_since(run.id, last_id - tail)
                times.append(time.perf_counter() - t0)
            print(f"reader: rows since N with {len(rows):>7,} new rows: "
                  f"median {1000 * statistics.median(times):.2f} ms")
        t0 = time.perf_counter()
        latest = store.latest_values([run.id], KEYS)
        print(f"latest values of {len(latest[run.id])} keys: "
              f"{1000 * (time.perf_counter() - t0):.1f} ms")
        store.close()


if __name__ == "__main__":
    main()

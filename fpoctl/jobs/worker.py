"""`python -m fpoctl.jobs.worker [RUN_ID]`: one training process of a run (one rank under
torchrun; ranks started without RUN_ID learn it from rank 0). The store and home come from
FPOCTL_DB / FPOCTL_HOME; stdout and stderr are the run's train.log.
"""

from __future__ import annotations

import argparse
import sys

from fpoctl.errors import FpoctlError
from fpoctl.settings import Settings
from fpoctl.train.lifecycle import StopSignals

LOG_KEYS = (("rollout/success_rate", "success", True), ("eval/success_rate", "eval", True),
            ("rollout/return", "return", False), ("fpo/approx_kl", "kl", False),
            ("perf/env_steps_per_s", "env steps/s", False))


def progress_line(it: int, total: int, metrics: dict[str, float]) -> None:
    """One line per iteration in the log (`fpoctl logs ID -f`)."""
    parts = [f"{label} {metrics[k]:.0%}" if pct else f"{label} {metrics[k]:.4g}"
             for k, label, pct in LOG_KEYS if k in metrics]
    print(f"iter {it}/{total}  " + "  ".join(parts), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Join the ranks (under torchrun), train the run, exit 0 when it finished or stopped."""
    with StopSignals() as stop:  # before the heavy imports: a stop while starting stays graceful
        parser = argparse.ArgumentParser(prog="python -m fpoctl.jobs.worker")
        parser.add_argument("run_id", type=int, nargs="?")
        args = parser.parse_args(argv)
        from fpoctl.train import distributed, finetune_job

        ranks = distributed.from_env()
        try:
            run_id = ranks.gather(args.run_id)[0]
            if run_id is None:
                raise FpoctlError("rank 0 was started without a run id")
            result = finetune_job.train_run(Settings.resolve(), run_id, ranks=ranks, stop=stop,
                                      progress=progress_line if ranks.is_main else None)
        except FpoctlError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            ranks.close()
        print(f"[fpoctl] rank {ranks.rank}: run {run_id} {result.status}", flush=True)
        return 0 if result.status in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())

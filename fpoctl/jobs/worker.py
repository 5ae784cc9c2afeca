"""`python -m fpoctl.jobs.worker [RUN_ID]`: one training process of a run (one rank under
torchrun; ranks started without RUN_ID learn it from rank 0). The store and home come from
FPOCTL_DB / FPOCTL_HOME; stdout and stderr are the run's train.log: rank 0 writes a timestamped
line per iteration and per phase (`train.progress.LogLines`).
"""

from __future__ import annotations

import argparse
import sys

from fpoctl.errors import FpoctlError
from fpoctl.settings import Settings
from fpoctl.train.lifecycle import StopSignals
from fpoctl.train.progress import LogLines


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
                                      progress=LogLines("iter") if ranks.is_main else None)
        except FpoctlError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            ranks.close()
        print(f"[fpoctl] rank {ranks.rank}: run {run_id} {result.status}", flush=True)
        return 0 if result.status in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())

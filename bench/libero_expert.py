"""Scripted LIBERO-spatial expert: success rate per task (target >= 90% on each).

Run: .venv/bin/python bench/libero_expert.py [--episodes 50] [--tasks 0,1,...] [--obs-mode state]
     [--demos DIR]   (also saves each task's demonstrations as DIR/libero-spatial-<i>.npz)
Episodes start from the suite's init states drawn by seed (`reset(seed=seed + episode)`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fpoctl.envs import get_task
from fpoctl.envs.demos import collect_demos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--tasks", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--obs-mode", default="state", choices=["state", "pixels"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--demos", type=Path, default=None, help="save demonstrations here")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    results = {}
    for index in (int(t) for t in args.tasks.split(",")):
        task = get_task(f"libero-spatial/{index}")
        started = time.perf_counter()

        def progress(ep: int, success: bool, index: int = index) -> None:
            print(f"  task {index} episode {ep}: {'success' if success else 'FAIL'}", flush=True)

        demos = collect_demos(task, args.episodes, seed=args.seed, obs_mode=args.obs_mode,
                              keep_failures=False, progress=progress)
        elapsed = time.perf_counter() - started
        lengths = demos.ep_length[demos.ep_success]
        results[index] = {"success_rate": demos.success_rate, "episodes": args.episodes,
                          "mean_length_success": float(lengths.mean()) if len(lengths) else None,
                          "seconds": round(elapsed, 1)}
        print(f"task {index}: {demos.success_rate:.0%} of {args.episodes} "
              f"(mean length {results[index]['mean_length_success']}, {elapsed:.0f} s)", flush=True)
        if args.demos:
            demos.save(args.demos / f"libero-spatial-{index}.npz")

    print("\nlibero-spatial scripted expert, obs mode", args.obs_mode)
    for index, r in results.items():
        print(f"  task {index}: {r['success_rate']:6.0%}  ({r['episodes']} episodes, {r['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    sys.exit(0 if all(r["success_rate"] >= 0.9 for r in results.values()) else 1)


if __name__ == "__main__":
    main()

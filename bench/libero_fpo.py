"""LIBERO-spatial, state mode, MLP flow policy: behaviour-cloned prior -> FPO, per task.

For each task: DART demonstrations from the scripted expert -> SFT prior (a run) -> FPO fine-tune
(a run) with the "libero-state" recipe (fpoctl/train/recipes.py); zero-noise success of the prior
(the fine-tune's iteration-0 evaluation) and after FPO, over --episodes episodes each, and the
wall time of every stage. Everything is recorded in the store of --home (`fpoctl --home H dash`).

Run: .venv/bin/python bench/libero_fpo.py [--tasks 0,1,...] [--iterations 30] [--episodes 50]
     [--json bench/results/libero_fpo.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fpoctl.settings import Settings
from fpoctl.train.config import FinetuneConfig, SFTConfig
from fpoctl.train.finetune_job import finetune
from fpoctl.train.recipes import RECIPES
from fpoctl.train.sft_job import sft


def run_task(settings: Settings, index: int, args: argparse.Namespace) -> dict:
    """Prior and fine-tune of one task; returns its numbers."""
    recipe, task = RECIPES["libero-state"], f"libero-spatial/{index}"
    sft_over = {**recipe.sft, "expert_episodes": args.demos, "seed": args.seed}
    fpo_over = {**recipe.finetune, "iterations": args.iterations, "eval_episodes": args.episodes,
                "seed": args.seed}
    started = time.perf_counter()
    prior = sft(settings, SFTConfig(task=task, **sft_over), name=f"{task}-prior")
    sft_s = time.perf_counter() - started

    def progress(it: int, total: int, m: dict[str, float]) -> None:
        evals = f" eval {m['eval/success_rate']:.0%}" if "eval/success_rate" in m else ""
        print(f"  task {index} iteration {it}/{total}: rollout success "
              f"{m.get('rollout/success_rate', float('nan')):.0%}{evals}", flush=True)

    started = time.perf_counter()
    result = finetune(settings, FinetuneConfig(task=task, init=str(prior.run_id), **fpo_over),
                             name=f"{task}-fpo", progress=progress)
    fpo_s = time.perf_counter() - started
    return {"prior_run": prior.run_id, "fpo_run": result.run_id, "status": result.status,
            "prior_success": result.before.get("eval/success_rate"),
            "fpo_success": result.after.get("eval/success_rate"), "episodes": args.episodes,
            "demos": args.demos, "iterations": args.iterations,
            "sft_s": round(sft_s, 1), "fpo_s": round(fpo_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--demos", type=int, default=RECIPES["libero-state"].sft["expert_episodes"])
    parser.add_argument("--iterations", type=int, default=RECIPES["libero-state"].finetune["iterations"])
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes, before and after")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", type=Path, default=Path(".bench/libero_fpo"))
    parser.add_argument("--json", type=Path, default=None, help="write (and update) the results here")
    args = parser.parse_args()

    settings = Settings.resolve(home=args.home)
    results = json.loads(args.json.read_text()) if args.json and args.json.exists() else {}
    for index in (int(t) for t in args.tasks.split(",")):
        results[str(index)] = row = run_task(settings, index, args)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"task {index}: {line(row)}", flush=True)
    print("\nlibero-spatial, state mode, MLP flow policy: zero-noise success over "
          f"{args.episodes} episodes (the task's recorded init states)")
    for index, row in sorted(results.items(), key=lambda kv: int(kv[0])):
        print(f"  task {index}: {line(row)}")


def line(row: dict) -> str:
    """prior -> after (wall time), or the status of a fine-tune that did not finish."""
    pct = lambda v: "n/a" if v is None else f"{v:.0%}"  # noqa: E731
    status = "" if row["status"] == "finished" else f" [{row['status']}]"
    return (f"{pct(row['prior_success']):>4} -> {pct(row['fpo_success']):>4}{status}   "
            f"(SFT {row['sft_s'] / 60:.1f} min, FPO {row['fpo_s'] / 60:.1f} min)")


if __name__ == "__main__":
    main()

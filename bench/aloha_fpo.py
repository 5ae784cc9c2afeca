"""ALOHA sim (transfer-cube, insertion): scripted experts, and behaviour-cloned prior -> FPO.

Three parts, each writing its entry of --json as it finishes:
  expert  the scripted experts' success over --episodes episodes per task (seeds 0..N-1), in
          state mode, with wall time and env steps/s;
  state   per task, state mode, MLP flow policy, the "aloha-state" recipe: DART demonstrations ->
          SFT prior (a run) -> FPO fine-tune (a run); zero-noise success of the prior (the
          fine-tune's iteration-0 evaluation) and after FPO over --episodes episodes, wall times,
          env steps/s of the fine-tune (rollout and evaluation steps over its wall time);
  pixels  the pixel path end to end with pi0-tiny (random weights, a small tokenizer): a couple
          of demonstrations -> SFT -> --pixel-iterations FPO iterations, on small top images.
Everything is recorded in the store of --home (`fpoctl --home H dash`).

Run: .venv/bin/python bench/aloha_fpo.py [--parts expert,state,pixels] [--tasks transfer-cube,insertion]
     [--iterations N] [--episodes 50] [--json bench/results/aloha_fpo.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pi0_bench import train_tokenizer
from fpoctl.envs import get_task
from fpoctl.envs.demos import collect_demos
from fpoctl.settings import Settings
from fpoctl.store import Store
from fpoctl.train.config import FinetuneConfig, SFTConfig
from fpoctl.train.finetune_job import finetune
from fpoctl.train.progress import LogLines
from fpoctl.train.recipes import RECIPES
from fpoctl.train.sft_job import sft

RECIPE = RECIPES["aloha-state"]
PIXELS = {"image_height": 48, "image_width": 64}  # pi0-tiny sees 32 x 32


def expert_row(task: str, episodes: int) -> dict:
    """The scripted expert's success over `episodes` episodes (seeds 0..episodes-1)."""
    started = time.perf_counter()
    demos = collect_demos(get_task(task), episodes, seed=0, obs_mode="state")
    wall = time.perf_counter() - started
    return {"success": demos.success_rate, "episodes": episodes,
            "mean_length": round(float(demos.ep_length.mean()), 1), "wall_s": round(wall, 1),
            "env_steps_per_s": round(float(demos.ep_length.sum()) / wall, 1)}


def env_steps(settings: Settings, run_id: int) -> tuple[float, float]:
    """Env steps the run took (rollouts, env/steps_total, plus its evaluations' episodes), and
    the mean rollout rate (perf/env_steps_per_s)."""
    with Store(settings.db_url) as store:
        rows = store.metrics_since(run_id)
    last = {r.key: r.value for r in rows}
    evals = sum(r.value for r in rows if r.key == "eval/episode_len")
    episodes = [r.value for r in rows if r.key == "eval/episodes"]
    rates = [r.value for r in rows if r.key == "perf/env_steps_per_s"]
    total = last.get("env/steps_total", 0.0) + evals * (episodes[0] if episodes else 0.0)
    return total, sum(rates) / max(len(rates), 1)


def fpo_row(settings: Settings, task: str, sft_over: dict, fpo_over: dict, label: str) -> dict:
    """SFT prior -> FPO fine-tune through fpoctl's own jobs; returns the numbers."""
    started = time.perf_counter()
    prior = sft(settings, SFTConfig(task=task, **sft_over), name=f"{task}-{label}-prior",
                progress=LogLines("step"))
    sft_s = time.perf_counter() - started
    started = time.perf_counter()
    result = finetune(settings, FinetuneConfig(task=task, init=str(prior.run_id), **fpo_over),
                      name=f"{task}-{label}-fpo", progress=LogLines("iter"))
    fpo_s = time.perf_counter() - started
    steps, rollout_rate = env_steps(settings, result.run_id)
    return {"prior_run": prior.run_id, "fpo_run": result.run_id, "status": result.status,
            "prior_success": result.before.get("eval/success_rate"),
            "fpo_success": result.after.get("eval/success_rate"),
            "episodes": int(result.after.get("eval/episodes", 0)),
            "demos": sft_over["expert_episodes"], "iterations": fpo_over["iterations"],
            "sft_s": round(sft_s, 1), "fpo_s": round(fpo_s, 1),
            "fpo_env_steps_per_s": round(steps / fpo_s, 1), "rollout_env_steps_per_s": round(rollout_rate, 1)}


def state_row(settings: Settings, task: str, args: argparse.Namespace) -> dict:
    """The recipe in state mode on the CPU."""
    sft_over = {**RECIPE.sft, "seed": args.seed, **({"expert_episodes": args.demos} if args.demos else {})}
    fpo_over = {**RECIPE.finetune, "eval_episodes": args.episodes, "seed": args.seed,
                **({"iterations": args.iterations} if args.iterations else {})}
    return fpo_row(settings, task, sft_over, fpo_over, "state")


def pixels_row(settings: Settings, task: str, args: argparse.Namespace) -> dict:
    """pi0-tiny on top images: shows the pixel path runs end to end (the numbers are not a result)."""
    tokenizer = str(train_tokenizer(settings.ensure_home()))
    common = {"policy": "pi0-tiny", "obs_mode": "pixels", "env_kwargs": PIXELS, "tokenizer": tokenizer,
              "horizon": 8, "exec_steps": 8, "seed": args.seed}
    sft_over = {**common, "expert_episodes": 2, "expert_noise": 0.02, "steps": 30, "batch_size": 8,
                "num_envs": 1, "eval_episodes": 1}
    fpo_over = {**common, "iterations": args.pixel_iterations, "num_envs": 2, "rollout_chunks": 4,
                "n_mc": 2, "minibatch_size": 8, "update_epochs": 1, "eval_every": args.pixel_iterations,
                "eval_episodes": 2, "checkpoint_every": args.pixel_iterations, "loss_reduction": "sum"}
    return fpo_row(settings, task, sft_over, fpo_over, "pixels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="expert,state,pixels")
    parser.add_argument("--tasks", default="transfer-cube,insertion")
    parser.add_argument("--demos", type=int, default=None, help="SFT demonstrations (default: the recipe's)")
    parser.add_argument("--iterations", type=int, default=None, help="FPO iterations (default: the recipe's)")
    parser.add_argument("--pixel-iterations", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=50,
                        help="expert episodes; evaluations before and after")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", type=Path, default=Path(".bench/aloha_fpo"))
    parser.add_argument("--json", type=Path, default=None, help="write (and update) the results here")
    args = parser.parse_args()

    settings = Settings.resolve(home=args.home)
    results = json.loads(args.json.read_text()) if args.json and args.json.exists() else {}
    parts = {"expert": lambda task: expert_row(task, args.episodes),
             "state": lambda task: state_row(settings, task, args),
             "pixels": lambda task: pixels_row(settings, task, args)}
    for part in args.parts.split(","):
        for name in args.tasks.split(","):
            task = f"aloha-{name}"
            results.setdefault(part, {})[task] = row = parts[part](task)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2) + "\n")
            print(f"{part} {task}: {json.dumps(row)}", flush=True)


if __name__ == "__main__":
    main()

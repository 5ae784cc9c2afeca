"""FPO ablations on the sparse goal task, from the same weak behaviour-cloned prior:
ratio estimator (per-sample vs averaged), Q-ensemble size (M=1 vs 5), exploration (off vs on),
value critic vs Q-ensemble. Reports zero-noise eval success over iterations, mean over seeds.

Run: .venv/bin/python bench/fpo_ablations.py [--iterations 60] [--seeds 3]   (numbers, not pass/fail)
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from fpoctl.envs import get_task
from fpoctl.envs.demos import collect_demos
from fpoctl.train.config import FinetuneConfig, SFTConfig
from fpoctl.train.sft import train_sft
from fpoctl.train.trainer import FPOTrainer
from policies.mlp import MLPFlowConfig, MLPFlowPolicy

VARIANTS = {
    "baseline (per-sample, value, explore 1.0)": {},
    "averaged ratio": {"ratio": "averaged"},
    "exploration off": {"explore_scale": 0.0},
    "exploration 0.5": {"explore_scale": 0.5},
    "Q-ensemble M=5": {"critic": "q_ensemble", "q_ensemble_size": 5},
    "Q-ensemble M=1": {"critic": "q_ensemble", "q_ensemble_size": 1},
}


def prior_policy(seed: int) -> MLPFlowPolicy:
    """The weak BC prior every variant starts from (10 expert episodes, 150 steps)."""
    torch.manual_seed(seed)
    policy = MLPFlowPolicy(MLPFlowConfig(obs_dim=4, action_dim=2, horizon=4, hidden=256))
    demos = collect_demos(get_task("fast-goal"), 10, seed=seed)
    train_sft(policy, demos, SFTConfig(steps=150, batch_size=128, lr=1e-3, seed=seed), torch.device("cpu"))
    return policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eval-every", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = get_task("fast-goal")
    priors = {s: prior_policy(s) for s in range(args.seeds)}
    results = {}
    for name, over in VARIANTS.items():
        curves, secs = [], []
        for seed, prior in priors.items():
            torch.manual_seed(seed)
            cfg = FinetuneConfig(task="fast-goal", seed=seed, eval_episodes=64,
                                 **{"explore_scale": 1.0, **over})
            trainer = FPOTrainer(cfg, copy.deepcopy(prior), task, torch.device("cpu"))
            curve = [trainer.evaluate()["eval/success_rate"]]
            t0 = time.perf_counter()
            for it in range(1, args.iterations + 1):
                trainer.train_iteration()
                if it % args.eval_every == 0:
                    curve.append(trainer.evaluate()["eval/success_rate"])
            secs.append(time.perf_counter() - t0)
            curves.append(curve)
        mean = np.mean(curves, axis=0)
        results[name] = {"curve_mean": mean.round(3).tolist(), "curves": curves,
                         "seconds_mean": float(np.mean(secs))}
        steps = " ".join(f"{v:.2f}" for v in mean)
        print(f"{name:45s} success at it 0,{args.eval_every},..: {steps}   ({np.mean(secs):.0f} s/run)",
              flush=True)
    out = Path(__file__).with_name("results") / "fpo_ablations.json"
    out.write_text(json.dumps({"iterations": args.iterations, "seeds": args.seeds, **results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

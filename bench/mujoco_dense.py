"""Dense-reward MuJoCo: FPO (flow policy, value critic) vs Gaussian PPO, run by the same trainer
with the same critic, GAE, minibatches and env budget. Prints the return curve of each.

Run: .venv/bin/python bench/mujoco_dense.py [--task gym:InvertedPendulum-v5] [--iterations 40]
(numbers, not pass/fail)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from fpoctl.envs import get_task
from fpoctl.train.config import FinetuneConfig
from fpoctl.train.trainer import FPOTrainer
from policies.gaussian import GaussianConfig, GaussianPolicy
from policies.mlp import MLPFlowConfig, MLPFlowPolicy

SHARED = {"horizon": 1, "exec_steps": 1, "num_envs": 8, "rollout_chunks": 128, "update_epochs": 10,
          "minibatch_size": 256, "actor_lr": 3e-4, "critic_lr": 1e-3, "gamma": 0.99,
          "gae_lambda": 0.95, "critic": "value", "critic_epochs": 10}
VARIANTS = {
    "FPO averaged (N_mc 8, clip 0.2)": ("flow", {"n_mc": 8, "ratio": "averaged", "clip_eps": 0.2,
                                                 "explore_scale": 0.0}),
    "FPO per-sample (N_mc 8, clip 0.2)": ("flow", {"n_mc": 8, "ratio": "per_sample", "clip_eps": 0.2,
                                                   "explore_scale": 0.0}),
    "Gaussian PPO (clip 0.2)": ("gaussian", {"n_mc": 1, "ratio": "averaged", "clip_eps": 0.2,
                                             "loss_reduction": "sum"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="gym:InvertedPendulum-v5")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = get_task(args.task)
    env = task.make_env(seed=0)
    obs_dim, act_dim = env.observation_space["state"].shape[0], env.action_space.shape[0]
    env.close()
    results = {}
    for name, (kind, over) in VARIANTS.items():
        torch.manual_seed(args.seed)
        if kind == "flow":
            policy = MLPFlowPolicy(MLPFlowConfig(obs_dim=obs_dim, action_dim=act_dim, horizon=1))
        else:
            policy = GaussianPolicy(GaussianConfig(obs_dim=obs_dim, action_dim=act_dim, horizon=1))
        cfg = FinetuneConfig(task=args.task, seed=args.seed, **SHARED, **over)
        trainer = FPOTrainer(cfg, policy, task, torch.device("cpu"))
        curve, t0 = [], time.perf_counter()
        for it in range(1, args.iterations + 1):
            m = trainer.train_iteration()
            if "rollout/return" in m:
                curve.append((int(m["env/steps_total"]), round(m["rollout/return"], 1)))
            if it % 5 == 0:
                print(f"  {name}: it {it} env steps {int(m['env/steps_total'])} return "
                      f"{m.get('rollout/return', float('nan')):.1f}", flush=True)
        final_eval = trainer.evaluate(16)
        results[name] = {"curve": curve, "eval_return": final_eval["eval/return"],
                         "seconds": time.perf_counter() - t0}
        last = np.mean([r for _, r in curve[-3:]]) if curve else float("nan")  # episodes that ended
        print(f"{name:32s} return (last 3 iterations) {last:.1f}, zero-noise eval "
              f"{final_eval['eval/return']:.1f}, {time.perf_counter() - t0:.0f} s", flush=True)
    out = Path(__file__).with_name("results") / f"mujoco_dense_{args.task.split(':')[-1]}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Flow policy + FPO vs Gaussian policy + PPO on the bimodal bandit, both behaviour-cloned from
the same bimodal demonstrations and fine-tuned by the same trainer. Reports the fraction of sampled
actions at each of the two modes and the success rate before and after.

Run: .venv/bin/python bench/bandit_modes.py [--iterations 30]   (numbers, not pass/fail)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fpoctl.envs import get_task
from fpoctl.envs.demos import collect_demos
from fpoctl.train.config import FinetuneConfig, SFTConfig
from fpoctl.train.sft import train_sft
from fpoctl.train.trainer import FPOTrainer
from policies.gaussian import GaussianConfig, GaussianPolicy
from policies.mlp import MLPFlowConfig, MLPFlowPolicy


def modes(policy, n: int = 4000) -> tuple[float, float]:
    """Fractions of sampled actions that succeed at mode (+.5, +.5) and at (-.5, -.5)."""
    with torch.no_grad():
        a = policy.sample({"state": torch.tensor([[1.0, 0.0]]).repeat(n, 1)},
                          generator=torch.Generator().manual_seed(0)).reshape(n, -1).numpy()
    a = np.clip(a, -1, 1)
    return tuple(float(np.mean(np.linalg.norm(a - m, axis=-1) < 0.177)) for m in ([.5, .5], [-.5, -.5]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = get_task("fast-bandit")
    demos = collect_demos(task, 200, seed=args.seed)
    rows = {}
    for name, policy, extra in (
        ("flow + FPO", MLPFlowPolicy(MLPFlowConfig(obs_dim=2, action_dim=2, horizon=1)), {}),
        ("Gaussian + PPO", GaussianPolicy(GaussianConfig(obs_dim=2, action_dim=2, horizon=1)),
         {"n_mc": 1, "ratio": "averaged", "clip_eps": 0.2}),
    ):
        torch.manual_seed(args.seed)
        train_sft(policy, demos, SFTConfig(steps=800, batch_size=128, lr=3e-3), torch.device("cpu"))
        before = modes(policy)
        trainer = FPOTrainer(FinetuneConfig(task="fast-bandit", horizon=1, seed=args.seed, **extra),
                             policy, task, torch.device("cpu"))
        for _ in range(args.iterations):
            trainer.train_iteration()
        after = modes(policy)
        rows[name] = {"before": before, "after": after}
        print(f"{name:16s} modes before {before[0]:.2f}/{before[1]:.2f} (success {sum(before):.2f})"
              f" -> after {after[0]:.2f}/{after[1]:.2f} (success {sum(after):.2f})", flush=True)
    out = Path(__file__).with_name("results") / "bandit_modes.json"
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

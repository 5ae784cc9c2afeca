"""Learning tests on the fast NumPy tasks: FPO must improve the policy, not only run.

Each number asserted here fails when learning is broken (e.g. with the advantage's sign flipped,
the goal task's success falls instead of rising)."""

from __future__ import annotations

import numpy as np
import torch

from fpoctl.envs import get_task
from fpoctl.envs.demos import collect_demos
from fpoctl.train.config import FinetuneConfig, SFTConfig
from fpoctl.train.sft import train_sft
from fpoctl.train.trainer import FPOTrainer
from policies.mlp import MLPFlowConfig, MLPFlowPolicy

CPU = torch.device("cpu")


def mode_fractions(policy: MLPFlowPolicy, n: int = 2000) -> list[float]:
    """Fractions of sampled bandit actions that earn success at each of the two modes."""
    with torch.no_grad():
        a = policy.sample({"state": torch.tensor([[1.0, 0.0]]).repeat(n, 1)},
                          generator=torch.Generator().manual_seed(0)).squeeze(1).numpy()
    return [float(np.mean(np.linalg.norm(a - m, axis=-1) < 0.177)) for m in ([0.5, 0.5], [-0.5, -0.5])]


def test_fpo_on_the_bimodal_bandit_keeps_both_modes_and_sharpens_them() -> None:
    torch.manual_seed(0)
    task = get_task("fast-bandit")
    policy = MLPFlowPolicy(MLPFlowConfig(obs_dim=2, action_dim=2, horizon=1, hidden=256))
    train_sft(policy, collect_demos(task, 200, seed=0), SFTConfig(steps=800, batch_size=128, lr=3e-3),
              CPU)
    prior = mode_fractions(policy)
    assert min(prior) > 0.3, f"the behaviour-cloned prior should be bimodal: {prior}"
    trainer = FPOTrainer(FinetuneConfig(task="fast-bandit", horizon=1), policy, task, CPU)
    success = [trainer.train_iteration()["rollout/success_rate"] for _ in range(20)]
    after = mode_fractions(policy)
    assert np.mean(success[-5:]) > np.mean(success[:5]) + 0.05, success  # learning
    assert sum(after) > sum(prior) + 0.03, (prior, after)  # sharper modes
    assert min(after) > 0.3, f"a mode was dropped: {after}"  # a Gaussian would pick one


def test_fpo_lifts_a_weak_bc_prior_on_the_sparse_goal_task_above_90_percent() -> None:
    torch.manual_seed(0)
    task = get_task("fast-goal")
    policy = MLPFlowPolicy(MLPFlowConfig(obs_dim=4, action_dim=2, horizon=4, hidden=256))
    train_sft(policy, collect_demos(task, 10, seed=0), SFTConfig(steps=150, batch_size=128, lr=1e-3),
              CPU)
    cfg = FinetuneConfig(task="fast-goal", explore_scale=1.0, eval_episodes=64)
    trainer = FPOTrainer(cfg, policy, task, CPU)
    prior = trainer.evaluate()["eval/success_rate"]
    assert prior <= 0.4, f"the prior should be weak: {prior:.0%}"
    curve = []
    for it in range(1, 81):
        trainer.train_iteration()
        if it % 10 == 0:
            curve.append(trainer.evaluate()["eval/success_rate"])
            if curve[-1] >= 0.95:
                break
    assert max(curve) >= 0.9, f"FPO did not lift the prior ({prior:.0%}): {curve}"

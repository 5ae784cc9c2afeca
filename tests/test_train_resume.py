"""Resume restores everything that shapes the next iteration: weights, optimisers, critic, RNG
and counters, so a resumed trainer repeats the original's next iteration bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fpoctl.envs import get_task
from fpoctl.train import checkpoint as ckpt
from fpoctl.train.config import FinetuneConfig
from fpoctl.train.trainer import FPOTrainer
from policies.mlp import MLPFlowConfig, MLPFlowPolicy
from policies.registry import load_policy

CPU = torch.device("cpu")


def same(a: object, b: object) -> bool:
    """Nested dicts / lists / tensors equal exactly."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)  # type: ignore[union-attr]
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)  # type: ignore[arg-type]
    return a == b


@pytest.mark.parametrize("critic", ["value", "q_ensemble"])
def test_a_resumed_trainer_repeats_the_next_iteration_exactly(tmp_path: Path, critic: str) -> None:
    cfg = FinetuneConfig(task="fast-goal", num_envs=4, rollout_chunks=4, n_mc=4, minibatch_size=8,
                         critic=critic, q_ensemble_size=2, critic_hidden=32)
    task = get_task(cfg.task)
    torch.manual_seed(0)
    original = FPOTrainer(cfg, MLPFlowPolicy(MLPFlowConfig(obs_dim=4, action_dim=2, hidden=32)), task, CPU)
    for _ in range(2):
        original.train_iteration()
    ckpt.save_checkpoint(tmp_path / "c", original.policy, original.state_dict(), {"step": 2})

    torch.manual_seed(123)  # a different fresh critic and optimiser state before loading
    resumed = FPOTrainer(cfg, load_policy(tmp_path / "c" / "policy"), task, CPU)
    resumed.load_state_dict(ckpt.load_trainer_state(tmp_path / "c"))
    assert same(resumed.state_dict(), original.state_dict())
    assert (resumed.iteration, resumed.env_steps) == (2, original.env_steps)

    original.obs = None  # a resumed trainer starts fresh episodes; let the original do the same
    after_original, after_resumed = original.train_iteration(), resumed.train_iteration()
    timing = {"perf/env_steps_per_s", "perf/update_s", "perf/rollout_s"}
    assert {k: v for k, v in after_original.items() if k not in timing} == \
        {k: v for k, v in after_resumed.items() if k not in timing}
    assert same(resumed.policy.state_dict(), original.policy.state_dict())
    assert same(resumed.state_dict(), original.state_dict())  # critic, optimisers, RNG, counters

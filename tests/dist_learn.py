"""Two-rank learning for tests/test_distributed.py: each rank collects its own rollout, takes one
learning step (critic fit + FPO update with averaged gradients) and saves its parameters.
`run_ranks` forks the ranks from the test process (gloo on 127.0.0.1), so they import nothing."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp

from fpoctl.envs import get_task
from fpoctl.train import distributed
from fpoctl.train.config import FinetuneConfig
from fpoctl.train.distributed import Ranks
from fpoctl.train.rollout import Rollout
from fpoctl.train.trainer import FPOTrainer
from policies.mlp import MLPFlowConfig, MLPFlowPolicy

# Full-batch minibatches: the union's one minibatch is the ranks' minibatches together.
CFG = FinetuneConfig(task="fast-goal", num_envs=4, rollout_chunks=4, n_mc=4, minibatch_size=10**6,
                     update_epochs=2, critic_epochs=2, critic_hidden=32)


def make_trainer(ranks: Ranks) -> FPOTrainer:
    """The same initial weights on every rank (seed 0); envs and samplers seeded by rank."""
    torch.manual_seed(0)
    policy = MLPFlowPolicy(MLPFlowConfig(obs_dim=4, action_dim=2, horizon=4, hidden=32))
    return FPOTrainer(CFG, policy, get_task(CFG.task), torch.device("cpu"), ranks=ranks)


def params(trainer: FPOTrainer) -> dict[str, torch.Tensor]:
    """Policy and critic weights by name."""
    return {**{f"policy.{k}": v.clone() for k, v in trainer.policy.state_dict().items()},
            **{f"critic.{k}": v.clone() for k, v in trainer.critic.state_dict().items()}}


def union(a: Rollout, b: Rollout) -> Rollout:
    """Two ranks' rollouts as one, side by side on the env axis (flat rows are T-major)."""
    steps = a.rewards.shape[0]

    def cat(x: Any, y: Any) -> Any:
        lib = np if isinstance(x, np.ndarray) else torch
        xs, ys = x.reshape(steps, -1, *x.shape[1:]), y.reshape(steps, -1, *y.shape[1:])
        both = lib.concatenate([xs, ys], 1) if lib is np else torch.cat([xs, ys], 1)
        return both.reshape(-1, *x.shape[1:])

    return Rollout(
        obs={k: cat(a.obs[k], b.obs[k]) for k in a.obs},
        next_obs={k: cat(a.next_obs[k], b.next_obs[k]) for k in a.next_obs},
        actions=cat(a.actions, b.actions), mask=cat(a.mask, b.mask), t=cat(a.t, b.t),
        noise=cat(a.noise, b.noise), rewards=torch.cat([a.rewards, b.rewards], 1),
        discounts=torch.cat([a.discounts, b.discounts], 1),
        terminated=torch.cat([a.terminated, b.terminated], 1), ended=torch.cat([a.ended, b.ended], 1),
        episodes=a.episodes + b.episodes, env_steps=a.env_steps + b.env_steps)


def rank_main(rank: int, world: int, port: int, out: Path) -> None:
    """One rank: join the group, one learning step on its own rollout, save its parameters."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    ranks = distributed.from_env()
    trainer = make_trainer(ranks)
    trainer.learn(trainer.collect())
    torch.save(params(trainer), out / f"rank{rank}.pt")
    ranks.close()


def run_ranks(world: int, out: Path) -> None:
    """Fork `world` ranks of `rank_main` and wait for them."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(lambda i: rank_main(i, world, port, out), nprocs=world, start_method="fork")

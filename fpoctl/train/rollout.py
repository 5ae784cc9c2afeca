"""Rollout: the policy samples action chunks with multi-step latent exploration, the envs execute
the first k steps of each, and each chunk is stored with its N_mc (t, noise) pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fpoctl.envs.chunks import index_obs, stack_obs
from policies import flow
from policies.base import FlowPolicy


def flatten_obs(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-step stacked obs dicts [n, ...] (T of them) -> one dict of [T * n, ...] (T-major)."""
    out: dict[str, Any] = {}
    for key, first in steps[0].items():
        if isinstance(first, list):
            out[key] = [v for step in steps for v in step[key]]
        else:
            out[key] = np.concatenate([step[key] for step in steps])
    return out


def take(obs: dict[str, Any], idx: np.ndarray | Tensor) -> dict[str, Any]:
    """Rows `idx` of a flat obs dict."""
    idx = np.asarray(idx)
    return {k: [v[i] for i in idx] if isinstance(v, list) else v[idx] for k, v in obs.items()}


@dataclass
class Rollout:
    """One iteration's experience. Flat tensors are [T * n, ...] (T-major); [T, n] are per step."""

    obs: dict[str, Any]
    next_obs: dict[str, Any]  # s_{t+1}, or the final observation where the episode ended
    actions: Tensor  # [T*n, H, D] model-space chunks
    mask: Tensor  # [T*n, H, D] True for executed steps x used action dims
    t: Tensor  # [T*n, N]
    noise: Tensor  # [T*n, N, H, D]
    rewards: Tensor  # [T, n] summed over the executed steps
    discounts: Tensor  # [T, n] gamma^(executed steps)
    terminated: Tensor  # [T, n]
    ended: Tensor  # [T, n] terminated or truncated
    episodes: list[dict[str, Any]] = field(default_factory=list)
    env_steps: int = 0

    @property
    def size(self) -> int:
        """Number of chunks."""
        return self.actions.shape[0]


@torch.no_grad()
def collect_rollout(policy: FlowPolicy, venv: Any, obs: dict[str, Any], *, chunks: int, exec_steps: int,
                    d_env: int, n_mc: int, gamma: float, flow_steps: int, explore_scale: float,
                    explore_steps: list[int] | None, generator: torch.Generator,
                    device: torch.device) -> tuple[Rollout, dict[str, Any]]:
    """Run `chunks` chunk-steps in every env; returns the rollout and the envs' current obs."""
    n, h, d = venv.num_envs, policy.horizon, policy.action_dim
    obs_steps, next_steps = [], []
    acts, masks, ts, noises = [], [], [], []
    rewards, discounts, terms, ends = [], [], [], []
    episodes: list[dict[str, Any]] = []
    env_steps = 0
    for _ in range(chunks):
        batch = policy.prepare(obs, device)
        a = policy.sample(batch, steps=flow_steps, explore_scale=explore_scale,
                          explore_steps=explore_steps, generator=generator)
        env_actions = policy.to_env_actions(a, d_env)[:, :exec_steps]
        next_obs, rew, term, trunc, infos = venv.step(env_actions)
        executed = torch.tensor([info["executed"] for info in infos])
        mask = torch.zeros(n, h, d, dtype=torch.bool)
        for i, k in enumerate(executed.tolist()):
            mask[i, :k, :d_env] = True
        t, e = flow.sample_noise_and_time(a, n_mc, generator=generator)
        ended = np.logical_or(term, trunc)
        finals = [infos[i]["final_obs"] if ended[i] else index_obs(next_obs, i) for i in range(n)]
        episodes += [info["episode"] for info in infos if "episode" in info]
        env_steps += int(executed.sum())
        obs_steps.append(obs)
        next_steps.append(stack_obs(finals))
        acts.append(a.cpu())
        masks.append(mask)
        ts.append(t.cpu())
        noises.append(e.cpu())
        rewards.append(torch.as_tensor(rew, dtype=torch.float32))
        discounts.append(gamma ** executed.float())
        terms.append(torch.as_tensor(term))
        ends.append(torch.as_tensor(ended))
        obs = next_obs
    rollout = Rollout(
        obs=flatten_obs(obs_steps), next_obs=flatten_obs(next_steps),
        actions=torch.cat(acts), mask=torch.cat(masks), t=torch.cat(ts), noise=torch.cat(noises),
        rewards=torch.stack(rewards), discounts=torch.stack(discounts),
        terminated=torch.stack(terms), ended=torch.stack(ends), episodes=episodes,
        env_steps=env_steps,
    )
    return rollout, obs

"""Episodes of a policy on one vector env, by default with zero-noise sampling (the ODE starts
from e = 0; FPO++ found this raises success sharply): exactly N, spread over its envs. The
protocol over a task or a suite is `protocol.py`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fpoctl import metric_names as m
from fpoctl.errors import FpoctlError
from policies.base import FlowPolicy


def check_policy_fits(policy: FlowPolicy, obs: dict[str, Any], d_env: int,
                      device: torch.device | str) -> None:
    """A clear error (not a tensor-shape traceback) when a policy does not fit a task's envs,
    e.g. a policy trained on `state` observations evaluated on `pixels`."""
    if policy.action_dim < d_env:
        raise FpoctlError(f"the policy acts in {policy.action_dim} dims but the task needs {d_env}")
    try:
        with torch.no_grad():
            policy.critic_features(policy.prepare(obs, device))
    except (RuntimeError, ValueError, KeyError) as exc:
        shapes = {k: list(np.shape(v)[1:]) for k, v in obs.items() if not isinstance(v, list)}
        raise FpoctlError(f"the policy does not fit this task's observations {shapes} "
                          f"(another obs_mode?): {str(exc).splitlines()[0]}") from None


@torch.no_grad()
def run_episodes(policy: FlowPolicy, venv: Any, episodes: int, *, exec_steps: int, flow_steps: int = 10,
                 seed: int = 0, device: torch.device | str = "cpu", zero_noise: bool = True,
                 max_chunks: int = 100_000, all_done: Callable[[bool], bool] | None = None,
                 on_episode: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """`episodes` episodes' statistics (the first ones each env finishes, up to its quota, so short
    episodes are not over-counted), in sweep order: every env's first episode, then every env's
    second, ... `all_done(done)`: whether every rank is done (a sharded policy needs all ranks in
    each sampling call). `on_episode(n)`: n episodes are done. Episodes a crashed simulator ended
    count as failures ("crashed"); the env rebuilt after a crash starts a new sweep of initial
    states, so that evaluation may repeat some starts."""
    n = venv.num_envs
    quota = np.full(n, episodes // n)
    quota[: episodes % n] += 1
    done_eps: list[list[dict]] = [[] for _ in range(n)]
    d_env = venv.single_action_space.shape[0]
    gen = torch.Generator(device).manual_seed(seed)
    obs = venv.reset(seed=seed)
    check_policy_fits(policy, obs, d_env, device)
    for _ in range(max_chunks):
        done = all(len(done_eps[i]) >= quota[i] for i in range(n))
        if all_done(done) if all_done else done:
            break
        batch = policy.prepare(obs, device)
        b = len(next(iter(obs.values())))
        noise = torch.zeros(b, policy.horizon, policy.action_dim, device=device) if zero_noise \
            else None
        a = policy.sample(batch, noise=noise, steps=flow_steps, generator=gen)
        obs, _, _, _, infos = venv.step(policy.to_env_actions(a, d_env)[:, :exec_steps])
        finished = 0
        for i, info in enumerate(infos):
            if "episode" in info and len(done_eps[i]) < quota[i]:
                done_eps[i].append(info["episode"])
                finished += 1
        if finished and on_episode:
            on_episode(sum(map(len, done_eps)))
    return [per_env[k] for k in range(int(quota.max(initial=0))) for per_env in done_eps
            if k < len(per_env)]


def summarize(eps: list[dict[str, Any]]) -> dict[str, float]:
    """Success rate, mean return and length, episodes (and crashed episodes, when any)."""
    if not eps:
        return {m.EVAL_SUCCESS: 0.0, m.EVAL_RETURN: 0.0, m.EVAL_EPISODE_LEN: 0.0,
                m.EVAL_EPISODES: 0.0}
    out = {
        m.EVAL_SUCCESS: float(np.mean([e["success"] for e in eps])),
        m.EVAL_RETURN: float(np.mean([e["return"] for e in eps])),
        m.EVAL_EPISODE_LEN: float(np.mean([e["length"] for e in eps])),
        m.EVAL_EPISODES: float(len(eps)),
    }
    crashed = sum(bool(e.get("crashed")) for e in eps)
    if crashed:
        out[m.EVAL_CRASHED] = float(crashed)
    return out


def evaluate(policy: FlowPolicy, venv: Any, episodes: int, **kwargs: Any) -> dict[str, float]:
    """`summarize(run_episodes(...))`: the metrics of `episodes` episodes on one vector env."""
    return summarize(run_episodes(policy, venv, episodes, **kwargs))

"""Batches of envs that step whole action chunks, with automatic reset and episode statistics.

API shared by every vector env (in-process or in worker processes):
  reset(seed) -> obs                       obs: dict of stacked arrays ("prompt": list[str])
  step(actions [n, k, d]) -> obs, reward [n], terminated [n], truncated [n], infos (list of dict)
Each env executes up to k steps of its chunk and stops early when its episode ends; `reward` is
the sum over executed steps; infos[i]["executed"] says how many ran. When an episode ends the env
resets in the same call: obs[i] is the new episode's first observation, infos[i]["final_obs"]
the last one and infos[i]["episode"] = {"return", "length", "success"}.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from fpoctl.envs.base import TaskSpec

if TYPE_CHECKING:
    from fpoctl.envs.workers import WorkerVectorEnv


def stack_obs(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack per-env observation dicts: arrays along a new axis 0, strings into a list."""
    out: dict[str, Any] = {}
    for key, first in items[0].items():
        values = [item[key] for item in items]
        out[key] = list(values) if isinstance(first, str) else np.stack(values)
    return out


def index_obs(obs: dict[str, Any], i: int) -> dict[str, Any]:
    """The observation of env i from a stacked batch."""
    return {k: v[i] for k, v in obs.items()}


@dataclass
class EpisodeTracker:
    """Running return / length / success of one env's current episode."""

    ret: float = 0.0
    length: int = 0
    success: bool = False

    def summary(self, crashed: bool = False) -> dict[str, Any]:
        """The finished episode's statistics."""
        out = {"return": self.ret, "length": self.length, "success": self.success}
        if crashed:
            out["crashed"] = True
        return out


def run_chunk(env: gym.Env, actions: np.ndarray, tracker: EpisodeTracker, max_steps: int
              ) -> tuple[dict, float, bool, bool, dict[str, Any]]:
    """Execute up to len(actions) steps, stopping when the episode ends or hits `max_steps`."""
    total, terminated, truncated, executed = 0.0, False, False, 0
    obs: dict = {}
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        executed += 1
        total += float(reward)
        tracker.ret += float(reward)
        tracker.length += 1
        tracker.success = tracker.success or bool(info.get("success", False))
        if tracker.length >= max_steps and not terminated:
            truncated = True
        if terminated or truncated:
            break
    return obs, total, terminated, truncated, {"executed": executed, "success": tracker.success}


class SyncVectorEnv:
    """n envs stepped one after another in this process (fast NumPy tasks, tests, experts)."""

    def __init__(self, make_env: Callable[[int], gym.Env], num_envs: int, max_steps: int) -> None:
        self.num_envs, self.max_steps = num_envs, max_steps
        self.envs = [make_env(i) for i in range(num_envs)]
        self.trackers = [EpisodeTracker() for _ in range(num_envs)]
        self.single_action_space = self.envs[0].action_space
        self.single_observation_space = self.envs[0].observation_space

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        """Reset every env; env i gets seed `seed + i`."""
        self.trackers = [EpisodeTracker() for _ in range(self.num_envs)]
        items = [env.reset(seed=None if seed is None else seed + i)[0]
                 for i, env in enumerate(self.envs)]
        return stack_obs(items)

    def step(self, actions: np.ndarray):
        """Execute one chunk per env (see the module docstring)."""
        n = self.num_envs
        obs_list, infos = [], []
        rewards = np.zeros(n, np.float32)
        terms, truncs = np.zeros(n, bool), np.zeros(n, bool)
        for i, env in enumerate(self.envs):
            obs, rewards[i], terms[i], truncs[i], info = run_chunk(
                env, actions[i], self.trackers[i], self.max_steps)
            if terms[i] or truncs[i]:
                info["final_obs"], info["episode"] = obs, self.trackers[i].summary()
                self.trackers[i] = EpisodeTracker()
                obs, _ = env.reset()
            obs_list.append(obs)
            infos.append(info)
        return stack_obs(obs_list), rewards, terms, truncs, infos

    def close(self) -> None:
        """Close every env."""
        for env in self.envs:
            env.close()


def make_vector_env(task: TaskSpec, num_envs: int, *, obs_mode: str | None = None,
                    seed: int = 0, workers: bool = False, **env_kwargs: Any
                    ) -> SyncVectorEnv | WorkerVectorEnv:
    """A vector env of `task`. `workers=True` runs each env in its own process (see workers.py)."""
    def make(i: int) -> gym.Env:
        return task.make_env(obs_mode, seed=seed + i, **env_kwargs)

    if workers:
        from fpoctl.envs.workers import TaskEnvFactory, WorkerVectorEnv

        factory = TaskEnvFactory(task.name, obs_mode, dict(env_kwargs))
        return WorkerVectorEnv(factory, num_envs, task.max_steps, seed=seed)
    return SyncVectorEnv(make, num_envs, task.max_steps)


def make_eval_vector_env(task: TaskSpec, num_envs: int, *, obs_mode: str | None = None, seed: int = 0,
                         workers: bool = False, env_kwargs: dict[str, Any] | None = None
                         ) -> SyncVectorEnv | WorkerVectorEnv:
    """A vector env for evaluations: `make_vector_env` plus the task's sweep of its recorded
    initial states (`TaskSpec.eval_env_kwargs`), so evaluations compare policies on the same starts."""
    kwargs = {**(env_kwargs or {}), **task.eval_env_kwargs(num_envs)}
    return make_vector_env(task, num_envs, obs_mode=obs_mode, seed=seed, workers=workers, **kwargs)

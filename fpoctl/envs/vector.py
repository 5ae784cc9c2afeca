"""Batches of envs that step whole action chunks, with automatic reset and episode statistics.

API shared by every vector env (in-process or in worker processes):
  reset(seed) -> obs                       obs: dict of stacked arrays ("prompt": list[str])
  step(actions [n, k, d]) -> obs, reward [n], terminated [n], truncated [n], infos (list of dict)
Each env executes up to k steps of its chunk and stops early when its episode ends; `reward` is
the sum over executed steps; infos[i]["executed"] says how many ran. When an episode ends the env
resets in the same call: obs[i] is the new episode's first observation, infos[i]["final_obs"]
the last one and infos[i]["episode"] = {"return", "length", "success"} plus what the env's reset
info said of the episode's start (`START_KEYS`: LIBERO's "task_id" and "init_state").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from fpoctl.envs.base import TaskSpec

if TYPE_CHECKING:
    from fpoctl.envs.workers import WorkerVectorEnv

START_KEYS = ("task_id", "init_state")  # reset-info keys an episode's statistics keep


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
    start: dict[str, Any] = field(default_factory=dict)  # START_KEYS of the reset info

    @classmethod
    def starting(cls, reset_info: dict[str, Any]) -> EpisodeTracker:
        """A tracker for the episode that a reset with this info began."""
        return cls(start={k: reset_info[k] for k in START_KEYS if k in reset_info})

    def summary(self, crashed: bool = False) -> dict[str, Any]:
        """The finished episode's statistics."""
        out = {"return": self.ret, "length": self.length, "success": self.success, **self.start}
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
        items = [env.reset(seed=None if seed is None else seed + i) for i, env in enumerate(self.envs)]
        self.trackers = [EpisodeTracker.starting(info) for _, info in items]
        return stack_obs([obs for obs, _ in items])

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
                obs, reset_info = env.reset()
                self.trackers[i] = EpisodeTracker.starting(reset_info)
            obs_list.append(obs)
            infos.append(info)
        return stack_obs(obs_list), rewards, terms, truncs, infos

    def close(self) -> None:
        """Close every env."""
        for env in self.envs:
            env.close()


def make_vector_env(task: TaskSpec, num_envs: int, *, obs_mode: str | None = None,
                    seed: int = 0, workers: bool = False, budget: int | None = None,
                    **env_kwargs: Any) -> SyncVectorEnv | WorkerVectorEnv:
    """A vector env of `task`. `workers=True` runs each env in its own process (see workers.py).
    `budget` replaces the task's episode budget in env steps, also inside envs that keep their
    own (`TaskSpec.budget_kwarg`: LIBERO's max_steps, which env_kwargs may set too); other envs'
    own time limits still end their episodes."""
    if task.budget_kwarg:
        if budget is not None:
            env_kwargs[task.budget_kwarg] = budget
        budget = env_kwargs.get(task.budget_kwarg)
    budget = budget or task.max_steps

    def make(i: int) -> gym.Env:
        return task.make_env(obs_mode, seed=seed + i, **env_kwargs)

    if workers:
        from fpoctl.envs.workers import TaskEnvFactory, WorkerVectorEnv

        factory = TaskEnvFactory(task.name, obs_mode, dict(env_kwargs))
        return WorkerVectorEnv(factory, num_envs, budget, seed=seed)
    return SyncVectorEnv(make, num_envs, budget)


def make_eval_vector_env(task: TaskSpec, num_envs: int, *, obs_mode: str | None = None, seed: int = 0,
                         workers: bool = False, env_kwargs: dict[str, Any] | None = None,
                         subtask: int | None = None, budget: int | None = None
                         ) -> SyncVectorEnv | WorkerVectorEnv:
    """A vector env for evaluations: `make_vector_env` plus the task's sweep of its recorded
    initial states from state 0 (`TaskSpec.eval_env_kwargs`), so evaluations compare policies on
    the same starts; a suite's `subtask` pins its envs to that task."""
    kwargs = {**(env_kwargs or {}), **task.eval_env_kwargs(num_envs, seed, subtask)}
    return make_vector_env(task, num_envs, obs_mode=obs_mode, seed=seed, workers=workers,
                           budget=budget, **kwargs)

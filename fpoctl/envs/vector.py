"""Batches of envs that step whole action chunks, with automatic reset and episode statistics.

API shared by every vector env (in-process or in worker processes):
  reset(seed) -> obs                       obs: dict of stacked arrays ("prompt": list[str])
  step(actions [n, k, d]) -> obs, reward [n], terminated [n], truncated [n], infos (list of dict)
Each env executes up to k steps of its chunk and stops early when its episode ends; `reward` is
the sum over executed steps; infos[i]["executed"] says how many ran. When an episode ends the env
resets in the same call: obs[i] is the new episode's first observation, infos[i]["final_obs"]
the last one and infos[i]["episode"] = {"return", "length", "success"} plus what the env's reset
info said of the episode's start (`chunks.START_KEYS`: LIBERO's "task_id" and "init_state").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from fpoctl.envs.base import TaskSpec
from fpoctl.envs.chunks import EpisodeTracker, run_chunk, stack_obs
from fpoctl.envs.recording import EpisodeRecorder, Recording
from fpoctl.envs.workers import TaskEnvFactory, WorkerVectorEnv


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
                    record: Recording | None = None, **env_kwargs: Any
                    ) -> SyncVectorEnv | WorkerVectorEnv:
    """A vector env of `task`. `workers=True` runs each env in its own process (see workers.py).
    `budget` replaces the task's episode budget in env steps, also inside envs that keep their
    own (`TaskSpec.budget_kwarg`: LIBERO's max_steps, which env_kwargs may set too); other envs'
    own time limits still end their episodes. `record`: write each env's episodes as videos."""
    if task.budget_kwarg:
        if budget is not None:
            env_kwargs[task.budget_kwarg] = budget
        budget = env_kwargs.get(task.budget_kwarg)
    budget = budget or task.max_steps

    def make(i: int) -> gym.Env:
        env = task.make_env(obs_mode, seed=seed + i, **env_kwargs)
        return EpisodeRecorder(env, record, i) if record else env

    if workers:
        factory = TaskEnvFactory(task.name, obs_mode, dict(env_kwargs), record)
        return WorkerVectorEnv(factory, num_envs, budget, seed=seed)
    return SyncVectorEnv(make, num_envs, budget)


def make_eval_vector_env(task: TaskSpec, num_envs: int, *, obs_mode: str | None = None, seed: int = 0,
                         workers: bool = False, env_kwargs: dict[str, Any] | None = None,
                         subtask: int | None = None, budget: int | None = None,
                         record: Recording | None = None) -> SyncVectorEnv | WorkerVectorEnv:
    """A vector env for evaluations: `make_vector_env` plus the task's sweep of its recorded
    initial states from state 0 (`TaskSpec.eval_env_kwargs`), so evaluations compare policies on
    the same starts; a suite's `subtask` pins its envs to that task."""
    kwargs = {**(env_kwargs or {}), **task.eval_env_kwargs(num_envs, seed, subtask)}
    return make_vector_env(task, num_envs, obs_mode=obs_mode, seed=seed, workers=workers,
                           budget=budget, record=record, **kwargs)

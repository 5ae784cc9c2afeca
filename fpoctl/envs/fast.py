"""Fast test tasks in pure NumPy (thousands of steps per second) for the trainer's learning tests.

- `fast-bandit`: one step; two equally good action modes at (+0.5, +0.5) and (-0.5, -0.5).
  A policy that keeps both modes is optimal; a unimodal Gaussian must pick one (or the middle).
- `fast-goal`: a point in the plane must reach a goal (one of four, shown in the observation)
  within 40 steps; reward 1 only on arrival (sparse), which ends the episode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fpoctl.envs.base import Expert, TaskSpec, check_env_options, register

BANDIT_MODES = np.array([[0.5, 0.5], [-0.5, -0.5]], dtype=np.float32)
BANDIT_WIDTH = 0.15


class BimodalBandit(gym.Env):
    """One-step bandit: reward exp(-d^2 / 2w^2) with d the distance to the nearest mode."""

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, obs_mode: str = "state", seed: int | None = None) -> None:
        self.observation_space = spaces.Dict(
            {"state": spaces.Box(-1.0, 1.0, (2,), np.float32)})
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._state = np.array([1.0, 0.0], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return {"state": self._state.copy()}, {"success": False}

    def step(self, action):
        d2 = np.min(np.sum((BANDIT_MODES - np.asarray(action, np.float32)) ** 2, axis=1))
        reward = float(np.exp(-d2 / (2 * BANDIT_WIDTH**2)))
        success = reward > 0.5
        return {"state": self._state.copy()}, reward, True, False, {"success": success}


class GoalReach(gym.Env):
    """Point mass in [-1, 1]^2: pos += 0.1 * action; success within 0.1 of the goal."""

    metadata: ClassVar[dict] = {"render_modes": []}
    GOALS = np.array([[0.7, 0.7], [-0.7, 0.7], [-0.7, -0.7], [0.7, -0.7]], dtype=np.float32)
    SPEED, RADIUS, MAX_STEPS = 0.1, 0.1, 40

    def __init__(self, obs_mode: str = "state", seed: int | None = None) -> None:
        self.observation_space = spaces.Dict(
            {"state": spaces.Box(-2.0, 2.0, (4,), np.float32)})
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.pos = np.zeros(2, np.float32)
        self.goal = self.GOALS[0]
        self.t = 0

    def _obs(self) -> dict:
        return {"state": np.concatenate([self.pos, self.goal - self.pos]).astype(np.float32)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-0.2, 0.2, 2).astype(np.float32)
        self.goal = self.GOALS[self.np_random.integers(len(self.GOALS))]
        self.t = 0
        return self._obs(), {"success": False}

    def step(self, action):
        a = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        self.pos = np.clip(self.pos + self.SPEED * a, -1.0, 1.0).astype(np.float32)
        self.t += 1
        success = bool(np.linalg.norm(self.pos - self.goal) < self.RADIUS)
        truncated = self.t >= self.MAX_STEPS and not success
        return self._obs(), float(success), success, truncated, {"success": success}


class BanditExpert(Expert):
    """Alternates between the two modes (so demonstrations are bimodal and balanced), with
    Gaussian noise of std `noise` (a blurry prior that RL can sharpen)."""

    def __init__(self, noise: float = 0.1) -> None:
        self.noise, self.calls = noise, 0

    def act(self, env: gym.Env, obs: dict) -> np.ndarray:
        self.calls += 1
        mode = BANDIT_MODES[self.calls % 2]
        return np.clip(mode + self.noise * env.unwrapped.np_random.standard_normal(2), -1, 1
                       ).astype(np.float32)


class GoalExpert(Expert):
    """Heads for the goal at full speed, with a little noise."""

    def __init__(self, noise: float = 0.1) -> None:
        self.noise = noise

    def act(self, env: gym.Env, obs: dict) -> np.ndarray:
        e = env.unwrapped
        direction = (e.goal - e.pos) / max(float(np.linalg.norm(e.goal - e.pos)), 1e-6)
        step = np.minimum(1.0, np.linalg.norm(e.goal - e.pos) / e.SPEED)
        a = direction * step + self.noise * e.np_random.standard_normal(2)
        return np.clip(a, -1.0, 1.0).astype(np.float32)


def _options(name: str, env: type[gym.Env]) -> Callable[[str, dict[str, Any]], None]:
    """The pre-flight of a fast task: its env takes no options beyond the observation mode and seed."""
    return lambda mode, kwargs: check_env_options(name, env, kwargs, obs_mode=mode, seed=0)


register(TaskSpec(
    name="fast-bandit", backend="fast", max_steps=1,
    description="one-step bandit with two equally good action modes (NumPy)",
    make=lambda obs_mode="state", seed=None: BimodalBandit(obs_mode, seed),
    expert=BanditExpert, dense_reward=True, tags=("test",), action_dim=2, observation="2-d constant",
    validate=_options("fast-bandit", BimodalBandit),
))
register(TaskSpec(
    name="fast-goal", backend="fast", max_steps=GoalReach.MAX_STEPS,
    description="sparse-reward 2-D goal reaching, four goals, 40 steps (NumPy)",
    make=lambda obs_mode="state", seed=None: GoalReach(obs_mode, seed),
    expert=GoalExpert, tags=("test",), action_dim=2, observation="4-d position and goal offset",
    validate=_options("fast-goal", GoalReach),
))

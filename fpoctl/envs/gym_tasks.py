"""`gym:<id>`: any installed Gymnasium env with a Box action space (e.g. gym:HalfCheetah-v5).

Observations are flattened into {"state": float32}; actions in [-1, 1] are rescaled to the env's
bounds; rewards are the env's own (dense); success is info["is_success"] when the env reports it.
"""

from __future__ import annotations

import difflib
from functools import cache
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fpoctl.envs.base import TaskSpec, TaskUnavailableError, UnknownTaskError, register_resolver
from fpoctl.envs.headless import use_headless_gl
from fpoctl.errors import FpoctlError

PREFIX = "gym:"
DEFAULT_MAX_STEPS = 1000


class GymTask(gym.Env):
    """A Gymnasium env under the fpoctl contract: dict observation, actions in [-1, 1]."""

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, env_id: str, seed: int | None = None, **kwargs: Any) -> None:
        use_headless_gl()
        try:
            self.env = gym.make(env_id, **kwargs)
        except gym.error.DependencyNotInstalled as exc:
            raise TaskUnavailableError(f"task {PREFIX}{env_id} needs a missing package: {exc}") from None
        inner = self.env.action_space
        if not isinstance(inner, spaces.Box):
            self.env.close()
            raise FpoctlError(f"task {PREFIX}{env_id} has a {type(inner).__name__} action space; "
                              "fpoctl needs a continuous Box")
        self._low, self._high = inner.low.astype(np.float64), inner.high.astype(np.float64)
        if not (np.all(np.isfinite(self._low)) and np.all(np.isfinite(self._high))):
            raise FpoctlError(f"task {PREFIX}{env_id} has unbounded actions; cannot rescale from [-1, 1]")
        self._inner_obs = self.env.observation_space
        dim = spaces.flatdim(self._inner_obs)
        self.observation_space = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (dim,), np.float32)})
        self.action_space = spaces.Box(-1.0, 1.0, inner.shape, np.float32)
        self._first_seed = seed

    def _obs(self, raw: Any) -> dict[str, np.ndarray]:
        return {"state": np.asarray(spaces.flatten(self._inner_obs, raw), np.float32)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._first_seed is not None:
            seed = self._first_seed
        self._first_seed = None
        super().reset(seed=seed)
        raw, info = self.env.reset(seed=seed, options=options)
        return self._obs(raw), {"success": bool(info.get("is_success", False))}

    def step(self, action):
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        scaled = self._low + (a + 1.0) * 0.5 * (self._high - self._low)
        raw, reward, terminated, truncated, info = self.env.step(scaled.astype(self.env.action_space.dtype))
        return self._obs(raw), float(reward), bool(terminated), bool(truncated), {
            "success": bool(info.get("is_success", False))}

    def close(self) -> None:
        self.env.close()


@cache
def _spec(env_id: str) -> TaskSpec:
    registered = gym.registry[env_id]
    max_steps = registered.max_episode_steps or DEFAULT_MAX_STEPS

    def make(obs_mode: str = "state", seed: int | None = None, **kwargs: Any) -> gym.Env:
        return GymTask(env_id, seed=seed, **kwargs)

    return TaskSpec(
        name=f"{PREFIX}{env_id}", backend="gymnasium", description=f"Gymnasium {env_id}",
        max_steps=max_steps, make=make, obs_modes=("state",), dense_reward=True,
        observation="flattened env observation", validate=lambda mode, kwargs: _try_env(env_id, kwargs))


def _try_env(env_id: str, kwargs: dict[str, Any]) -> None:
    """The pre-flight of a Gymnasium task: build its env once (cheap, no episode), which checks
    the package, the env options and a bounded Box action space."""
    try:
        GymTask(env_id, **kwargs).close()
    except TypeError as exc:
        raise FpoctlError(f"env_kwargs {sorted(kwargs)} do not fit task {PREFIX}{env_id}: {exc}") from None


def resolve(name: str) -> TaskSpec | None:
    """`gym:<id>` for a registered Gymnasium id; a bare id suggests its `gym:` form."""
    if not name.startswith(PREFIX):
        if name in gym.registry:
            raise UnknownTaskError(f"unknown task {name!r}; did you mean {PREFIX}{name}?")
        return None
    env_id = name[len(PREFIX):]
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""
        raise UnknownTaskError(f"unknown Gymnasium id {env_id!r}{hint}")
    return _spec(env_id)


register_resolver(resolve)

"""Scripted demonstrations: collect them with a task's expert, save and load them.

File format (`.npz`, NumPy's zip of arrays; no pickles):
  obs/<key>     [T, ...]  per-step observations (`obs/state`, `obs/image/agentview`, `obs/prompt` as str)
  actions       [T, d]    the expert's env actions
  episode       [T]       episode index of each step
  ep_success    [E]       whether episode e succeeded;  ep_return [E];  ep_length [E]
  meta          str       JSON: task, obs_mode, seed, expert success rate
Only successful episodes are kept for training unless `keep_failures=True`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fpoctl.envs.base import TaskSpec
from fpoctl.errors import FpoctlError


@dataclass
class DemoSet:
    """Demonstrations of one task, flattened over steps."""

    obs: dict[str, np.ndarray]
    actions: np.ndarray
    episode: np.ndarray
    ep_success: np.ndarray
    ep_return: np.ndarray
    ep_length: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        """Fraction of collected episodes the expert solved."""
        return float(self.ep_success.mean()) if len(self.ep_success) else 0.0

    def save(self, path: str | Path) -> Path:
        """Write the documented .npz format."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"obs/{k}": v for k, v in self.obs.items()}
        np.savez_compressed(path, **arrays, actions=self.actions, episode=self.episode,
                            ep_success=self.ep_success, ep_return=self.ep_return,
                            ep_length=self.ep_length, meta=np.array(json.dumps(self.meta)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> DemoSet:
        """Read a file written by `save` (never unpickles)."""
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                obs = {k[4:]: z[k] for k in z.files if k.startswith("obs/")}
                return cls(obs=obs, actions=z["actions"], episode=z["episode"],
                           ep_success=z["ep_success"], ep_return=z["ep_return"],
                           ep_length=z["ep_length"], meta=json.loads(str(z["meta"])))
        except (OSError, KeyError, ValueError) as exc:
            raise FpoctlError(f"cannot read demonstrations {path}: {exc}") from None


def collect_demos(task: TaskSpec, episodes: int, *, seed: int = 0, obs_mode: str | None = None,
                  keep_failures: bool = False, action_noise: float = 0.0,
                  progress: Callable[[int, bool], None] | None = None, **env_kwargs: Any) -> DemoSet:
    """Run the task's scripted expert for `episodes` episodes in one in-process env.

    With `action_noise` > 0 the env executes the expert's action plus Gaussian noise while the
    clean action is recorded (DART): the closed-loop expert then demonstrates how to recover
    from the small errors a cloned policy makes."""
    rng = np.random.default_rng(seed)
    if task.expert is None:
        raise FpoctlError(f"task {task.name} has no scripted expert")
    env = task.make_env(obs_mode, seed=seed, **env_kwargs)
    expert = task.expert()
    steps: dict[str, list] = {"actions": [], "episode": []}
    obs_steps: dict[str, list] = {}
    ep_success, ep_return, ep_length = [], [], []
    kept = 0
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            expert.reset(env)
            ep_obs, ep_act, ret, success = [], [], 0.0, False
            for _ in range(task.max_steps):
                action = np.asarray(expert.act(env, obs), np.float32)
                ep_obs.append(obs)
                ep_act.append(action)
                executed = action + action_noise * rng.standard_normal(action.shape).astype(np.float32)
                obs, reward, terminated, truncated, info = env.step(np.clip(executed, -1.0, 1.0))
                ret += float(reward)
                success = success or bool(info.get("success", False))
                if terminated or truncated:
                    break
            ep_success.append(success)
            ep_return.append(ret)
            ep_length.append(len(ep_act))
            if success or keep_failures:
                for o in ep_obs:
                    for k, v in o.items():
                        obs_steps.setdefault(k, []).append(v)
                steps["actions"] += ep_act
                steps["episode"] += [kept] * len(ep_act)
                kept += 1
            if progress:
                progress(ep, success)
    finally:
        env.close()
    return DemoSet(
        obs={k: np.asarray(v) for k, v in obs_steps.items()},
        actions=np.asarray(steps["actions"], np.float32).reshape(-1, env.action_space.shape[0]),
        episode=np.asarray(steps["episode"], np.int64),
        ep_success=np.asarray(ep_success, bool), ep_return=np.asarray(ep_return, np.float32),
        ep_length=np.asarray(ep_length, np.int64),
        meta={"task": task.name, "obs_mode": obs_mode or task.default_obs_mode, "seed": seed,
              "episodes": episodes, "action_noise": action_noise,
              "expert_success_rate": float(np.mean(ep_success))},
    )

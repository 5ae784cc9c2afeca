"""What every vector env shares: one env executing one action chunk while it keeps its episode's
statistics (`run_chunk`, `EpisodeTracker`), and per-env observations stacked into a batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

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

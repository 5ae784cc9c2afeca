"""Episode videos of pixel tasks: a wrapper that keeps one camera's frames and writes an MP4 (or a
GIF) per episode, named after the env, the episode and its outcome.

The wrapper sits on each single env (in this process or in a worker), so it sees every step; an
episode that the vector env ends on its budget is written at the next reset (or at close).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from fpoctl.errors import FpoctlError

VIDEO_SUFFIXES = (".mp4", ".gif")


@dataclass(frozen=True)
class Recording:
    """What to record: into `folder`, the first `episodes` episodes over `num_envs` envs in an
    evaluation's sweep order (env i's k-th episode is episode k * num_envs + i; None: every
    episode), from `camera` (an `image/<name>` key; None: the first one), as `fmt`."""

    folder: str
    prefix: str = ""
    episodes: int | None = None
    num_envs: int = 1
    camera: str | None = None
    fps: int = 20
    fmt: str = "mp4"  # "mp4" (H.264 through imageio-ffmpeg) or "gif"

    def quota(self, index: int) -> int | None:
        """How many episodes env `index` records (None: all)."""
        if self.episodes is None:
            return None
        return self.episodes // self.num_envs + (index < self.episodes % self.num_envs)


def cameras(observation_space: gym.spaces.Space) -> list[str]:
    """The image keys of an observation space (`image/<name>`)."""
    keys = getattr(observation_space, "spaces", {})
    return [k for k in keys if k.startswith("image/")]


def check_recordable(observation_space: gym.spaces.Space, task: str, obs_mode: str,
                     camera: str | None = None) -> str:
    """The camera key to record, or a one-line error when the observations carry no images."""
    keys = cameras(observation_space)
    if not keys:
        raise FpoctlError(f"task {task} in obs_mode {obs_mode} has no camera images to record "
                          f"(--record needs a pixels task)")
    if camera is not None and camera not in keys:
        raise FpoctlError(f"no camera {camera!r} in task {task}; it has {', '.join(keys)}")
    return camera or keys[0]


def recorded_videos(folder: str | Path) -> list[Path]:
    """The videos in a recording folder, sorted by name."""
    path = Path(folder)
    return sorted(p for p in path.glob("*") if p.suffix in VIDEO_SUFFIXES) if path.is_dir() else []


class EpisodeRecorder(gym.Wrapper):
    """Keeps the frames of the current episode and writes them when the episode ends."""

    def __init__(self, env: gym.Env, recording: Recording, index: int = 0) -> None:
        super().__init__(env)
        self.recording, self.index = recording, index
        self.camera = recording.camera or cameras(env.observation_space)[0]
        self.frames: list[np.ndarray] = []
        self.success, self.written = False, 0
        Path(recording.folder).mkdir(parents=True, exist_ok=True)

    def _wanted(self) -> bool:
        limit = self.recording.quota(self.index)
        return limit is None or self.written < limit

    def _keep(self, obs: dict[str, Any]) -> None:
        if self._wanted():
            self.frames.append(np.asarray(obs[self.camera], np.uint8))

    def _next_path(self, outcome: str) -> Path:
        rec, folder = self.recording, Path(self.recording.folder)

        def stem(k: int) -> str:
            return f"{rec.prefix}ep{k * rec.num_envs + self.index:03d}"

        while any(folder.glob(f"{stem(self.written)}_*")):  # an env rebuilt after a crash counts on
            self.written += 1
        return folder / f"{stem(self.written)}_{outcome}.{rec.fmt}"

    def _flush(self) -> None:
        if not self.frames:
            return
        import imageio.v2 as imageio

        rec = self.recording
        path = self._next_path("success" if self.success else "failure")
        if rec.fmt == "gif":
            imageio.mimsave(path, self.frames, duration=1000 / rec.fps, loop=0)
        else:
            imageio.mimsave(path, self.frames, fps=rec.fps, macro_block_size=1)
        self.frames, self.success = [], False
        self.written += 1

    def reset(self, **kwargs: Any):
        self._flush()
        obs, info = self.env.reset(**kwargs)
        self._keep(obs)
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.success = self.success or bool(info.get("success", False))
        self._keep(obs)
        if terminated or truncated:
            self._flush()
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self._flush()
        super().close()

"""Episode videos: one file per episode with its outcome in the name, frames as observed."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
from gymnasium import spaces

from fpoctl.envs.base import TaskSpec
from fpoctl.envs.recording import EpisodeRecorder, Recording, check_recordable, recorded_videos
from fpoctl.envs.vector import make_vector_env
from fpoctl.errors import FpoctlError


class Blink(gym.Env):
    """A pixel env whose frame brightness is the step count; succeeds at step 3 when `win`."""

    def __init__(self, win: bool = True) -> None:
        self.observation_space = spaces.Dict({"image/top": spaces.Box(0, 255, (16, 24, 3), np.uint8),
                                              "state": spaces.Box(-1, 1, (1,), np.float32)})
        self.action_space = spaces.Box(-1, 1, (1,), np.float32)
        self.win, self.t = win, 0

    def _obs(self) -> dict:
        return {"image/top": np.full((16, 24, 3), 40 * self.t, np.uint8), "state": np.zeros(1, np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        done = self.win and self.t == 3
        return self._obs(), 1.0, done, False, {"success": done}


def test_each_episode_is_one_video_with_its_frames_and_outcome(tmp_path) -> None:
    env = EpisodeRecorder(Blink(), Recording(str(tmp_path), prefix="t0_", fmt="gif"))
    for _ in range(2):
        env.reset()
        done = False
        while not done:
            _, _, done, _, _ = env.step(np.zeros(1))
    env.close()
    videos = recorded_videos(tmp_path)
    assert [v.name for v in videos] == ["t0_ep000_success.gif", "t0_ep001_success.gif"]
    frames = imageio.mimread(videos[0])
    assert len(frames) == 4  # the reset frame and three steps
    assert [int(f[..., :3].mean()) for f in frames] == [0, 40, 80, 120]


def test_a_vector_env_writes_budget_ended_episodes_up_to_the_quota(tmp_path) -> None:
    task = TaskSpec(name="blink", backend="fast", description="", max_steps=5,
                    make=lambda obs_mode="pixels", seed=None: Blink(win=False), obs_modes=("pixels",))
    venv = make_vector_env(task, 2, record=Recording(str(tmp_path), episodes=3, num_envs=2))
    venv.reset(seed=0)
    for _ in range(6):  # 6 chunks of 3 steps: three budget-ended episodes per env
        venv.step(np.zeros((2, 3, 1), np.float32))
    venv.close()
    names = [v.name for v in recorded_videos(tmp_path)]  # env 0: episodes 0, 2; env 1: episode 1
    assert names == ["ep000_failure.mp4", "ep001_failure.mp4", "ep002_failure.mp4"]
    assert len(imageio.mimread(tmp_path / names[0])) == 6  # reset + 5 steps: the budget


def test_a_state_task_has_nothing_to_record() -> None:
    state_only = spaces.Dict({"state": spaces.Box(-1, 1, (3,), np.float32)})
    with pytest.raises(FpoctlError, match="no camera images to record"):
        check_recordable(state_only, "fast-goal", "state")
    assert check_recordable(Blink().observation_space, "blink", "pixels") == "image/top"
    with pytest.raises(FpoctlError, match="no camera 'image/wrist'"):
        check_recordable(Blink().observation_space, "blink", "pixels", "image/wrist")


@pytest.mark.sim
def test_eval_record_writes_a_video_per_episode_and_lists_them(home, tmp_path, tokenizer) -> None:
    """`fpoctl eval FOLDER --task libero-spatial/0 --record DIR`: one MP4 per episode, of the
    policy's own camera frames, named by episode and outcome, listed in the stored evaluation."""
    from fpoctl.store import Store
    from tests.conftest import require, run_cli
    from tests.pi0_helpers import tiny_policy

    require("libero")
    folder = tmp_path / "policy"
    tiny_policy(tokenizer).save_pretrained(folder)
    out = tmp_path / "videos"
    proc = run_cli("eval", str(folder), "--task", "libero-spatial/0", "--episodes", "3",
                   "--num-envs", "2", "--max-steps", "6", "--exec-steps", "3", "--obs-mode", "pixels",
                   "--record", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr
    names = [v.name for v in recorded_videos(out)]
    assert names == ["ep000_failure.mp4", "ep001_failure.mp4", "ep002_failure.mp4"]
    frames = imageio.mimread(out / names[0])
    assert len(frames) == 7 and frames[0].shape == (224, 224, 3)  # the reset frame + 6 steps
    assert "3 videos in" in proc.stdout
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as store:
        details = store.evaluations()[-1].details
    assert [Path(p).name for p in details["videos"]] == names


"""ALOHA sim (gym-aloha): aloha-insertion and aloha-transfer-cube, rendering only the top camera.

Stock gym-aloha renders three 640x480 cameras per step and returns one; here the task renders
only the camera it returns, at the requested size (~3x faster). Observation: image/top uint8,
state = agent_pos (14 joints, grippers normalised), prompt. Actions: 14 absolute joint targets
(gym-aloha declares Box(-1, 1) and passes them through unclipped; so do we). Reward: the stage
0..4 gym-aloha reports each step; success (`is_success`, stage 4) ends the episode.
"""

from __future__ import annotations

import collections
import string
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fpoctl.envs.base import TaskSpec, check_env_options, register
from fpoctl.envs.headless import use_headless_gl

ALOHA_TASKS = {
    "aloha-insertion": ("insertion", "insert the peg into the socket"),
    "aloha-transfer-cube": ("transfer_cube",
                            "pick up the cube with the right arm and hand it to the left arm"),
}
EPISODE_STEPS = 300
INSTALL_HINT = "make sim, or: pip install gym-aloha==0.1.5 'mujoco>=3,<3.9'"


def _top_camera_task(base: type, height: int, width: int) -> Any:
    """A gym-aloha task whose observation renders the top camera only."""

    class TopCameraTask(base):
        def get_observation(self, physics):
            obs = collections.OrderedDict()
            obs["qpos"] = self.get_qpos(physics)
            obs["qvel"] = self.get_qvel(physics)
            obs["env_state"] = self.get_env_state(physics)
            obs["images"] = {"top": physics.render(height=height, width=width, camera_id="top")}
            return obs

    return TopCameraTask()


class AlohaEnv(gym.Env):
    """One ALOHA sim task with the fpoctl observation contract."""

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, task: str, obs_mode: str = "pixels", seed: int | None = None,
                 image_height: int = 480, image_width: int = 640) -> None:
        use_headless_gl()
        from dm_control import mujoco as dm_mujoco
        from dm_control.rl import control
        from gym_aloha.constants import ASSETS_DIR, DT
        from gym_aloha.tasks.sim import InsertionTask, TransferCubeTask

        self.task_name, self.prompt = ALOHA_TASKS[task]
        xml, base = {"insertion": ("bimanual_viperx_insertion.xml", InsertionTask),
                     "transfer_cube": ("bimanual_viperx_transfer_cube.xml", TransferCubeTask)}[self.task_name]
        physics = dm_mujoco.Physics.from_xml_path(str(ASSETS_DIR / xml))
        self._env = control.Environment(physics, _top_camera_task(base, image_height, image_width),
                                        time_limit=float("inf"), control_timestep=DT,
                                        flat_observation=False)
        self.observation_space = spaces.Dict({
            "image/top": spaces.Box(0, 255, (image_height, image_width, 3), np.uint8),
            "state": spaces.Box(-np.inf, np.inf, (14,), np.float32),
            "prompt": spaces.Text(256, charset=string.printable),
        })
        self.action_space = spaces.Box(-1.0, 1.0, (14,), np.float32)
        self._first_seed = seed
        self._t = 0

    def _obs(self, raw: dict) -> dict[str, Any]:
        return {"image/top": raw["images"]["top"], "state": np.asarray(raw["qpos"], np.float32),
                "prompt": self.prompt}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        from gym_aloha.tasks.sim import BOX_POSE
        from gym_aloha.utils import sample_box_pose, sample_insertion_pose

        if seed is None and self._first_seed is not None:
            seed = self._first_seed
        self._first_seed = None
        super().reset(seed=seed)
        # gym-aloha draws object poses from its own RNG seeded per episode (unseeded: OS entropy);
        # derive that seed from ours so a seeded env replays the same episodes.
        episode_seed = int(self.np_random.integers(2**31))
        if self.task_name == "transfer_cube":
            BOX_POSE[0] = sample_box_pose(episode_seed)
        else:
            BOX_POSE[0] = np.concatenate(sample_insertion_pose(episode_seed))
        self._t = 0
        return self._obs(self._env.reset().observation), {"success": False}

    def step(self, action):
        ts = self._env.step(np.asarray(action, np.float64))
        self._t += 1
        success = bool(ts.reward == 4)
        truncated = self._t >= EPISODE_STEPS and not success
        return self._obs(ts.observation), float(ts.reward), success, truncated, {
            "success": success, "is_success": success}

    def close(self) -> None:
        self._env.close()


def _spec(name: str) -> TaskSpec:
    def make(obs_mode: str = "pixels", seed: int | None = None, **kwargs: Any) -> gym.Env:
        return AlohaEnv(name, obs_mode=obs_mode, seed=seed, **kwargs)

    return TaskSpec(
        name=name, backend="aloha", description=f"ALOHA sim: {ALOHA_TASKS[name][1]}",
        max_steps=EPISODE_STEPS, make=make, obs_modes=("pixels",),
        requires=("gym_aloha", "dm_control", "mujoco"), install_hint=INSTALL_HINT, dense_reward=True,
        action_dim=14, observation="top RGB 480x640, 14-d joints, prompt", tags=("pixels",),
        validate=lambda mode, kwargs: check_env_options(name, AlohaEnv, kwargs, task=name, obs_mode=mode,
                                                        seed=0))


for _name in ALOHA_TASKS:
    register(_spec(_name))

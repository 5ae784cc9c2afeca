"""ALOHA sim (gym-aloha): aloha-insertion and aloha-transfer-cube, in two observation modes.

pixels (default, pi0's input): image/top uint8, state = agent_pos (14 joints, grippers
normalised), prompt. Stock gym-aloha renders three 640x480 cameras per step and returns one;
here the task renders only the top camera, at the requested size (~3x faster).
state (no camera, no renderer): state = joint positions (14) + joint velocities (14) + the
objects' poses (env_state: cube 7, or peg 7 + socket 7).
Actions: pixels mode takes gym-aloha's own actions, 14 absolute joint targets (grippers 0..1),
exactly what a LeRobot ALOHA checkpoint outputs (gym-aloha declares Box(-1, 1) but passes them
through unclipped: the elbow bends to 1.6). State mode scales them into fpoctl's [-1, 1] box,
joints = c + h * a over the part of each joint's range the task uses (`joint_box`), so the MLP
policy's clip to the box fits the task.
Reward: the stage 0..4 gym-aloha reports each step (also in info["stage"]); success (stage 4)
ends the episode. With credit_success=True the success step is credited stage 4 for each step
left in the budget (RL: otherwise stalling at stage 2 outscores finishing). The episode budget is
ALOHA's own (400 steps at 50 Hz), which its scripted experts need.
"""

from __future__ import annotations

import collections
import string
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fpoctl.envs.base import Expert, TaskSpec, check_env_options, register
from fpoctl.envs.headless import use_headless_gl
from fpoctl.errors import FpoctlError

ALOHA_TASKS = {
    "aloha-insertion": ("insertion", "insert the peg into the socket"),
    "aloha-transfer-cube": ("transfer_cube",
                            "pick up the cube with the right arm and hand it to the left arm"),
}
EPISODE_STEPS = 400
# The joint targets each task's scripted expert commands (left arm, then right: waist, shoulder,
# elbow, forearm roll, wrist angle, wrist rotate, gripper opening 0..1), measured over 30 / 20
# episodes; the action box is this range plus ACTION_MARGIN each side. Tight boxes keep a cloned
# policy precise: an action error of 0.05 is 0.16 rad over a +-pi box. Insertion's wrists turn
# forearm roll against wrist rotate through the whole +-pi.
JOINT_RANGES = {
    "transfer_cube": ([-0.01, -0.98, 0.68, -0.02, -0.97, 0.0, 0.0,
                       -0.29, -0.98, -0.54, -0.31, -0.29, -0.31, 0.0],
                      [0.01, -0.01, 1.2, 0.07, -0.27, 1.59, 1.0, 0.27, 0.38, 1.17, 0.28, 1.9, 0.33, 1.0]),
    "insertion": ([-0.28, -0.98, 0.66, -3.14, -0.56, -3.14, 0.0,
                   -0.29, -0.98, 0.16, -3.14, -0.65, -3.14, 0.0],
                  [0.31, 0.01, 1.23, 3.14, 0.57, 3.14, 1.0, 0.28, 0.13, 1.28, 3.14, 0.66, 3.14, 1.0]),
}
ACTION_MARGIN = 0.15


def joint_box(task_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(centre, half range) of the joint targets a task's actions span: joints = c + h * a."""
    low, high = (np.array(v) for v in JOINT_RANGES[task_name])
    return (low + high) / 2, (high - low) / 2 + ACTION_MARGIN
OBS_MODES = ("pixels", "state")
OBJECT_DIMS = {"transfer_cube": 7, "insertion": 14}  # env_state: free-joint poses (xyz + quat)
INSTALL_HINT = "make sim, or: pip install gym-aloha==0.1.5 'mujoco>=3,<3.9'"


def _observed_task(base: type, height: int, width: int, render: bool) -> Any:
    """A gym-aloha task whose observation renders the top camera only, or no camera."""

    class TopCameraTask(base):
        def get_observation(self, physics):
            obs = collections.OrderedDict()
            obs["qpos"] = self.get_qpos(physics)
            obs["qvel"] = self.get_qvel(physics)
            obs["env_state"] = self.get_env_state(physics)
            if render:
                obs["images"] = {"top": physics.render(height=height, width=width, camera_id="top")}
            return obs

    return TopCameraTask()


class AlohaEnv(gym.Env):
    """One ALOHA sim task with the fpoctl observation contract."""

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, task: str, obs_mode: str = "pixels", seed: int | None = None,
                 image_height: int = 480, image_width: int = 640, credit_success: bool = False) -> None:
        if obs_mode not in OBS_MODES:
            raise FpoctlError(f"ALOHA has observation modes {' and '.join(OBS_MODES)}, not {obs_mode!r}")
        self.obs_mode, self.credit_success = obs_mode, credit_success
        use_headless_gl()  # even in state mode: dm_control picks its GL backend once, at import
        from dm_control import mujoco as dm_mujoco
        from dm_control.rl import control
        from gym_aloha.constants import ASSETS_DIR, DT
        from gym_aloha.tasks.sim import InsertionTask, TransferCubeTask

        self.task_name, self.prompt = ALOHA_TASKS[task]
        xml, base = {"insertion": ("bimanual_viperx_insertion.xml", InsertionTask),
                     "transfer_cube": ("bimanual_viperx_transfer_cube.xml", TransferCubeTask)}[self.task_name]
        physics = dm_mujoco.Physics.from_xml_path(str(ASSETS_DIR / xml))
        task_obj = _observed_task(base, image_height, image_width, render=obs_mode == "pixels")
        self._env = control.Environment(physics, task_obj, time_limit=float("inf"), control_timestep=DT,
                                        flat_observation=False)
        self.max_steps = EPISODE_STEPS
        # pixels: gym-aloha's own actions, absolute joint targets (what a LeRobot ALOHA checkpoint
        # outputs after unnormalising); state: fpoctl's scaled box (for the MLP policy's clip)
        self.joint_center, self.joint_half = joint_box(self.task_name) if obs_mode == "state" \
            else (np.zeros(14), np.ones(14))
        if obs_mode == "pixels":
            self.observation_space = spaces.Dict({
                "image/top": spaces.Box(0, 255, (image_height, image_width, 3), np.uint8),
                "state": spaces.Box(-np.inf, np.inf, (14,), np.float32),
                "prompt": spaces.Text(256, charset=string.printable),
            })
        else:
            dim = 28 + OBJECT_DIMS[self.task_name]
            self.observation_space = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (dim,), np.float32)})
        self.action_space = spaces.Box(-1.0, 1.0, (14,), np.float32)
        self.object_pose = np.zeros(OBJECT_DIMS[self.task_name])  # the episode's initial env_state
        self._first_seed = seed
        self._t = 0

    def action_from_joints(self, joints: np.ndarray) -> np.ndarray:
        """The env action that commands these 14 joint targets."""
        return ((np.asarray(joints, np.float64) - self.joint_center) / self.joint_half).astype(np.float32)

    def joints_from_action(self, action: np.ndarray) -> np.ndarray:
        """The 14 joint targets an env action commands."""
        return self.joint_center + self.joint_half * np.asarray(action, np.float64)

    def _obs(self, raw: dict) -> dict[str, Any]:
        if self.obs_mode == "state":
            return {"state": np.concatenate([raw["qpos"], raw["qvel"], raw["env_state"]]).astype(np.float32)}
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
        self.object_pose = np.array(BOX_POSE[0], np.float64)
        self._t = 0
        return self._obs(self._env.reset().observation), {"success": False}

    def step(self, action):
        ts = self._env.step(self.joints_from_action(action))
        self._t += 1
        stage = float(ts.reward)
        success = stage == 4
        truncated = self._t >= EPISODE_STEPS and not success
        # credit_success: the success step also earns stage 4 for the budget's remaining steps, as
        # if the episode ran on (ending it would otherwise forfeit them: holding the cube at stage
        # 2 would be worth more than handing it over).
        reward = stage * (EPISODE_STEPS - self._t + 1) if success and self.credit_success else stage
        return self._obs(ts.observation), reward, success, truncated, {
            "success": success, "is_success": success, "stage": stage}

    def close(self) -> None:
        self._env.close()


def _replay_expert() -> Expert:
    from fpoctl.envs.aloha_expert import AlohaReplayExpert

    return AlohaReplayExpert()


def _spec(name: str) -> TaskSpec:
    def make(obs_mode: str = "pixels", seed: int | None = None, **kwargs: Any) -> gym.Env:
        return AlohaEnv(name, obs_mode=obs_mode, seed=seed, **kwargs)

    return TaskSpec(
        name=name, backend="aloha", description=f"ALOHA sim: {ALOHA_TASKS[name][1]}",
        max_steps=EPISODE_STEPS, make=make, obs_modes=OBS_MODES,
        requires=("gym_aloha", "dm_control", "mujoco"), install_hint=INSTALL_HINT, dense_reward=True,
        expert=_replay_expert, action_dim=14, tags=("pixels",),
        observation="top RGB 480x640, 14-d joints, prompt | state: joints, velocities, object poses",
        validate=lambda mode, kwargs: check_env_options(name, AlohaEnv, kwargs, task=name, obs_mode=mode,
                                                        seed=0))


for _name in ALOHA_TASKS:
    register(_spec(_name))

"""ALOHA sim without a camera: the state observation mode, the scripted experts (mocap plan ->
joint replay) and their demonstrations."""

from __future__ import annotations

import numpy as np
import pytest

from fpoctl.envs import get_task
from fpoctl.envs.aloha import JOINT_RANGES, joint_box
from fpoctl.envs.aloha_expert import AlohaReplayExpert, Waypoint, mocap_rollout, pose_at, quat_rotate, slerp
from fpoctl.envs.demos import collect_demos
from fpoctl.errors import FpoctlError
from tests.conftest import require

pytestmark = pytest.mark.sim


@pytest.mark.parametrize(("name", "objects"), [("aloha-transfer-cube", 7), ("aloha-insertion", 14)])
def test_state_mode_observes_joints_velocities_and_object_poses_without_a_camera(name: str,
                                                                                 objects: int) -> None:
    require("gym_aloha")
    task = get_task(name)
    assert task.obs_modes == ("pixels", "state") and task.default_obs_mode == "pixels"
    assert task.expert is not None and task.max_steps == 400
    env = task.make_env("state", seed=0)
    try:
        obs, info = env.reset(seed=3)
        assert set(obs) == {"state"} and obs["state"].shape == (28 + objects,) and info["success"] is False
        assert env.observation_space.contains(obs) and env.action_space.shape == (14,)
        np.testing.assert_allclose(obs["state"][28:], env.unwrapped.object_pose, atol=1e-6)
        obs, reward, term, trunc, info = env.step(np.zeros(14, np.float32))
        assert reward == 0.0 and not term and not trunc and obs["state"].dtype == np.float32
    finally:
        env.close()


def test_actions_scale_joint_targets_into_the_task_s_action_box() -> None:
    require("gym_aloha")
    env = get_task("aloha-transfer-cube").make_env("state", seed=0)
    low, high = (np.array(v) for v in JOINT_RANGES["transfer_cube"])
    for joints in (low, high, (low + high) / 2):
        action = env.unwrapped.action_from_joints(joints)
        assert np.all(np.abs(action) < 1.0)  # the experts' range, with a margin
        np.testing.assert_allclose(env.unwrapped.joints_from_action(action), joints, atol=1e-6)
    centre, half = joint_box("transfer_cube")
    np.testing.assert_allclose(env.unwrapped.joints_from_action(np.ones(14)), centre + half)
    env.close()


def test_pixels_mode_takes_absolute_joint_targets_as_gym_aloha_and_lerobot() -> None:
    require("gym_aloha")
    env = get_task("aloha-transfer-cube").make_env("pixels", seed=0, image_height=48, image_width=64)
    joints = np.array(JOINT_RANGES["transfer_cube"][1])
    np.testing.assert_array_equal(env.unwrapped.action_from_joints(joints), joints.astype(np.float32))
    env.close()


def test_an_unknown_observation_mode_is_a_one_line_error() -> None:
    require("gym_aloha")
    with pytest.raises(FpoctlError, match="no observation mode 'depth'"):
        get_task("aloha-insertion").make_env("depth", seed=0)


def test_waypoints_interpolate_position_and_opening_and_hold_after_the_last() -> None:
    a = Waypoint(0, np.zeros(3), np.array([1.0, 0, 0, 0]), 0.0)
    b = Waypoint(10, np.array([1.0, 0, 0]), np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]), 1.0)
    mid = pose_at([a, b], 5)
    np.testing.assert_allclose(mid[:3], [0.5, 0, 0])
    np.testing.assert_allclose(mid[7], 0.5)
    half_turn = [np.cos(np.pi / 4), np.sin(np.pi / 4), 0]  # a quarter turn about z, half done
    np.testing.assert_allclose(quat_rotate(mid[3:7], np.array([1.0, 0, 0])), half_turn, atol=1e-9)
    np.testing.assert_allclose(pose_at([a, b], 50), np.concatenate([b.xyz, b.quat, [1.0]]))
    np.testing.assert_allclose(slerp(b.quat, -b.quat, 0.3), b.quat, atol=1e-9)  # q and -q: no turn


@pytest.mark.parametrize(("name", "seeds"), [("aloha-transfer-cube", (1, 2)), ("aloha-insertion", (0, 2))])
def test_the_experts_succeed_and_the_success_ends_the_episode(name: str, seeds: tuple[int, ...]) -> None:
    require("gym_aloha")
    task = get_task(name)
    env = task.make_env("state", seed=0)
    expert = AlohaReplayExpert()
    try:
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            expert.reset(env)
            rewards = []
            for _ in range(task.max_steps):
                obs, reward, term, trunc, info = env.step(expert.act(env, obs))
                rewards.append(reward)
                if term or trunc:
                    break
            assert term and info["success"] and rewards[-1] == 4.0 and max(rewards[:-1]) < 4.0
            assert 2.0 in rewards  # lifted (transfer: by the right arm; insertion: both objects)
            assert info["stage"] == 4.0
    finally:
        env.close()


def test_credit_success_credits_stage_4_for_the_rest_of_the_budget() -> None:
    require("gym_aloha")
    task = get_task("aloha-transfer-cube")
    returns = {}
    for credit in (False, True):
        env, expert = task.make_env("state", seed=0, credit_success=credit), AlohaReplayExpert()
        obs, _ = env.reset(seed=1)
        expert.reset(env)
        rewards = []
        while len(rewards) < task.max_steps:
            obs, reward, term, _trunc, info = env.step(expert.act(env, obs))
            rewards.append(reward)
            if term:
                break
        env.close()
        assert info["success"] and info["stage"] == 4.0
        returns[credit] = rewards
    plain, credited = returns[False], returns[True]
    steps = len(plain)
    assert plain[:-1] == credited[:-1] and plain[-1] == 4.0
    assert credited[-1] == 4.0 * (task.max_steps - steps + 1)


def test_the_expert_acts_the_same_in_pixels_mode() -> None:
    """The expert reads the simulator, not the observation: both modes get the same joint targets
    (pixels mode: as absolute joints, gym-aloha's actions; state mode: scaled into the box) (and
    rendering costs ~0.1 s a step here, so only the first steps are compared)."""
    require("gym_aloha")
    task = get_task("aloha-transfer-cube")
    actions = {}
    for mode, kwargs in (("state", {}), ("pixels", {"image_height": 48, "image_width": 64})):
        env, expert = task.make_env(mode, seed=0, **kwargs), AlohaReplayExpert()
        obs, _ = env.reset(seed=1)
        expert.reset(env)
        actions[mode] = []
        for _ in range(20):
            action = expert.act(env, obs)
            actions[mode].append(env.unwrapped.joints_from_action(action))
            obs, *_ = env.step(action)
        env.close()
    np.testing.assert_allclose(actions["state"], actions["pixels"], atol=1e-5)
    assert np.abs(np.diff(actions["state"], axis=0)).max() > 0  # a moving arm


def test_the_joint_replay_reproduces_the_mocap_rollout_object_pose() -> None:
    require("gym_aloha")
    env = get_task("aloha-transfer-cube").make_env("state", seed=0)
    try:
        obs, _ = env.reset(seed=2)
        aloha = env.unwrapped
        rollout = mocap_rollout(aloha.task_name, aloha.object_pose, aloha.max_steps)
        cube = []
        for joints in rollout.joints:  # stepping on past the success: the whole recorded plan
            obs, *_ = env.step(aloha.action_from_joints(joints))
            cube.append(obs["state"][28:31])
        lifted = 155  # the right arm holds the cube at the meeting point, before the handover
        assert rollout.env_states[lifted, 2] > 0.15
        np.testing.assert_allclose(cube[lifted], rollout.env_states[lifted, :3], atol=0.02)
        np.testing.assert_allclose(cube[-1], rollout.env_states[-1, :3], atol=0.02)
    finally:
        env.close()


def test_expert_demonstrations_in_state_mode_keep_the_successful_episodes() -> None:
    require("gym_aloha")
    demos = collect_demos(get_task("aloha-transfer-cube"), 2, seed=1, obs_mode="state")
    assert demos.ep_success.all() and demos.obs["state"].shape[1] == 35
    assert demos.actions.shape == (int(demos.ep_length.sum()), 14) and np.abs(demos.actions).max() <= 1.0


@pytest.mark.parametrize("name", ["aloha-transfer-cube", "aloha-insertion"])
def test_aloha_tasks_share_the_aloha_state_recipe_and_its_configs_validate(name: str) -> None:
    from fpoctl.train.config import FinetuneConfig, SFTConfig
    from fpoctl.train.recipes import RECIPES, recipe_for

    recipe = recipe_for(name)
    assert recipe is RECIPES["aloha-state"]
    sft_cfg, ft_cfg = SFTConfig(task=name, **recipe.sft), FinetuneConfig(task=name, **recipe.finetune)
    assert sft_cfg.obs_mode == ft_cfg.obs_mode == "state" and ft_cfg.exec_steps <= sft_cfg.horizon
    get_task(name).check(ft_cfg.obs_mode, ft_cfg.env_kwargs)  # the env takes the recipe's env_kwargs

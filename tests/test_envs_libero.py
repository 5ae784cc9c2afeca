"""LIBERO (one libero-spatial task; building an env costs 6-10 s and ~2 GB, so envs are shared)."""

from __future__ import annotations

import numpy as np
import pytest

from fpoctl.envs import get_task
from fpoctl.envs.demos import collect_demos
from fpoctl.envs.libero import LiberoEnv, quat_to_axis_angle
from fpoctl.envs.libero_expert import BowlOnPlateExpert
from tests.conftest import require

pytestmark = pytest.mark.sim
TASK = "libero-spatial/0"


@pytest.fixture(scope="module")
def state_env():
    require("libero")
    env = get_task(TASK).make_env("state", seed=0)
    yield env
    env.close()


def run_expert(env: LiberoEnv, seed: int) -> tuple[list[float], bool, bool, int]:
    """One episode of the scripted expert: rewards, terminated, truncated, steps."""
    obs, _ = env.reset(seed=seed)
    expert = BowlOnPlateExpert()
    expert.reset(env)
    rewards = []
    for _ in range(env.max_steps):
        obs, reward, term, trunc, info = env.step(expert.act(env, obs))
        rewards.append(reward)
        assert info["success"] == term
        if term or trunc:
            break
    return rewards, term, trunc, len(rewards)


def test_state_mode_observes_proprio_and_objects_without_cameras(state_env) -> None:
    obs, info = state_env.reset(seed=0)
    assert set(obs) == {"state", "prompt"} and obs["state"].shape == (39 + 70,)
    assert state_env.observation_space.contains(obs) and state_env.action_space.shape == (7,)
    assert obs["prompt"] == ("pick up the black bowl between the plate and the ramekin and place it "
                             "on the plate")
    assert info["success"] is False and 0 <= info["init_state"] < 50
    assert not state_env.sim_env.env.has_offscreen_renderer


def test_random_actions_do_not_succeed_and_the_budget_truncates(state_env) -> None:
    state_env.reset(seed=1)
    rng = np.random.default_rng(0)
    steps, trunc = 0, False
    while not trunc and steps < 300:
        _, reward, term, trunc, info = state_env.step(rng.uniform(-1, 1, 7))
        steps += 1
        assert reward == 0.0 and not term and not info["success"]
    assert steps == 220 and trunc  # libero-spatial's budget, counted after the 10 settle steps


def test_the_expert_succeeds_and_the_sparse_reward_marks_it(state_env) -> None:
    rewards, term, trunc, steps = run_expert(state_env, seed=2)
    assert term and not trunc and steps < 220
    assert rewards[-1] == 1.0 and sum(rewards) == 1.0


def test_soft_reset_replays_the_hard_reset_bit_for_bit(state_env) -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, (15, 7))
    state_env.reset(seed=0)  # the simulator exists from the first reset on
    for init_state in (3, 41):
        runs = []
        for hard in (True, False):
            state_env.sim_env.env.hard_reset = hard  # robosuite's XML reload, or our soft reset
            state_env.reset(seed=7, options={"init_state": init_state})
            traj = [state_env.step(a)[0]["state"] for a in actions]
            runs.append(np.array(traj))
        np.testing.assert_array_equal(runs[0], runs[1])
    state_env.sim_env.env.hard_reset = False


def test_suites_add_a_task_one_hot_in_state_mode() -> None:
    require("libero")
    env = get_task("libero-spatial").make_env("state", seed=0)  # no simulator until reset
    assert env.observation_space["state"].shape == (39 + 70 + 10,)
    assert get_task("libero-10").make_env("state").observation_space["state"].shape == (39 + 8 * 14 + 10,)


def test_pixel_mode_returns_flipped_images_the_8d_state_and_the_prompt() -> None:
    require("libero")
    env = get_task(TASK).make_env("pixels", seed=0, image_size=64)
    try:
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        assert obs["image/agentview"].shape == (64, 64, 3) and obs["image/wrist"].dtype == np.uint8
        raw = env.sim_env.env._get_observations()
        np.testing.assert_array_equal(obs["image/agentview"], raw["agentview_image"][::-1, ::-1])
        np.testing.assert_array_equal(obs["image/wrist"], raw["robot0_eye_in_hand_image"][::-1, ::-1])
        expected = np.concatenate([raw["robot0_eef_pos"], quat_to_axis_angle(raw["robot0_eef_quat"]),
                                   raw["robot0_gripper_qpos"]])
        np.testing.assert_allclose(obs["state"], expected, rtol=1e-6)
        obs, reward, _term, _trunc, info = env.step(np.zeros(7, np.float32))
        assert env.observation_space.contains(obs) and not info["success"] and reward == 0.0
        assert obs["image/agentview"].std() > 5
    finally:
        env.close()


@pytest.mark.slow
def test_the_expert_succeeds_in_pixel_mode_and_demos_keep_images(tmp_path) -> None:
    require("libero")
    demos = collect_demos(get_task(TASK), 2, seed=0, obs_mode="pixels", image_size=64)
    assert demos.success_rate == 1.0
    assert demos.obs["image/agentview"].shape[1:] == (64, 64, 3)
    assert len(demos.actions) == demos.ep_length.sum()


def test_quat_to_axis_angle_matches_a_known_rotation() -> None:
    half = np.pi / 4  # 90 degrees about z, (x, y, z, w) order
    np.testing.assert_allclose(quat_to_axis_angle(np.array([0, 0, np.sin(half), np.cos(half)])),
                               [0, 0, np.pi / 2], atol=1e-6)


def test_evaluation_envs_sweep_the_recorded_init_states_from_state_0(state_env) -> None:
    """n evaluation envs seeded s..s+n-1 with stride n visit init states 0, 1, 2, ... once each
    (LIBERO's protocol: every recorded start once, from the first), not a random draw with repeats."""
    kwargs = get_task("libero-spatial/0").eval_env_kwargs(3, seed=45)
    assert kwargs == {"init_state_stride": 3, "init_state_origin": 45}
    env = state_env.unwrapped
    env.init_state_stride, env.init_state_origin = 3, 45
    try:
        seen = [env.reset(seed=46)[1]["init_state"]] + [env.reset()[1]["init_state"] for _ in range(3)]
        assert seen == [1, 4, 7, 10]  # the second of three envs
        assert env.reset(seed=48, options={"init_state": 5})[1]["init_state"] == 5  # named wins
    finally:
        env.init_state_stride, env.init_state_origin, env._sweep = 0, 0, None
    assert get_task("fast-goal").eval_env_kwargs(3) == {}


def test_a_suite_is_evaluated_one_pinned_task_at_a_time_with_the_suite_observations() -> None:
    require("libero")
    suite = get_task("libero-spatial")
    assert suite.is_suite and len(suite.subtasks()) == 10 and suite.eval_env_kwargs(2) == {}
    env = suite.make_env("state", **suite.eval_env_kwargs(2, seed=5, subtask=3))
    try:
        obs, info = env.reset(seed=5)
        assert (info["task_id"], info["init_state"]) == (3, 0)
        assert obs["state"].shape == (39 + 70 + 10,) and obs["state"][-10:].argmax() == 3
        assert obs["prompt"] == suite.subtasks()[3]
        assert [env.reset()[1]["init_state"] for _ in range(2)] == [2, 4]
    finally:
        env.close()

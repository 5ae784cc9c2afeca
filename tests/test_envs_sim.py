"""Simulator tasks that are cheap to build: gym:<id> (MuJoCo suite) and ALOHA sim."""

from __future__ import annotations

import numpy as np
import pytest

from fpoctl.envs import get_task, make_vector_env
from tests.conftest import require

pytestmark = pytest.mark.sim


def test_gym_id_wraps_observations_and_rescales_actions() -> None:
    require("mujoco")
    env = get_task("gym:InvertedPendulum-v5").make_env(seed=0)
    try:
        obs, info = env.reset(seed=0)
        assert obs["state"].dtype == np.float32 and obs["state"].shape == (4,)
        assert env.observation_space.contains(obs) and info == {"success": False}
        low, high = env.env.action_space.low, env.env.action_space.high  # [-3, 3]
        env.step(np.ones(1, np.float32))
        np.testing.assert_allclose(env.env.unwrapped.data.ctrl, high)
        env.step(-np.ones(1, np.float32))
        np.testing.assert_allclose(env.env.unwrapped.data.ctrl, low)
        _, reward, _, _, info = env.step(np.zeros(1, np.float32))
        assert reward == 1.0 and info["success"] is False
    finally:
        env.close()


def test_gym_id_runs_in_a_vector_env_with_dense_returns() -> None:
    require("mujoco")
    task = get_task("gym:InvertedPendulum-v5")
    assert task.dense_reward and task.max_steps == 1000
    venv = make_vector_env(task, 2, seed=0)
    venv.reset(seed=0)
    ended = []
    for _ in range(40):
        *_, infos = venv.step(np.random.default_rng(0).uniform(-1, 1, (2, 5, 1)).astype(np.float32))
        ended += [i["episode"] for i in infos if "episode" in i]
    venv.close()
    # +1 for every step the pole stays up (v5 gives 0 on the step it falls)
    assert ended and all(e["return"] == e["length"] - 1 for e in ended)


@pytest.mark.parametrize("name", ["aloha-insertion", "aloha-transfer-cube"])
def test_aloha_tasks_reset_and_step_with_the_top_camera_only(name: str) -> None:
    require("gym_aloha")
    task = get_task(name)
    env = task.make_env(seed=0)
    try:
        obs, info = env.reset(seed=0)
        assert set(obs) == {"image/top", "state", "prompt"} and info["success"] is False
        assert obs["image/top"].shape == (480, 640, 3) and obs["image/top"].dtype == np.uint8
        assert obs["image/top"].std() > 10  # a rendered scene, not a blank frame
        assert obs["state"].shape == (14,) and env.action_space.shape == (14,)
        assert env.observation_space.contains(obs)
        rng = np.random.default_rng(0)
        successes = []
        for _ in range(10):  # random joint targets never finish the task
            obs, _reward, _term, _trunc, info = env.step(rng.uniform(-1, 1, 14).astype(np.float32))
            successes.append(info["success"])
        assert not any(successes) and set(obs) == {"image/top", "state", "prompt"}
        poses = []
        for seed in (5, 5, 6):  # object poses follow the seed
            env.reset(seed=seed)
            poses.append(env._env.physics.data.qpos[16:].copy())
        np.testing.assert_array_equal(poses[0], poses[1])
        assert not np.allclose(poses[0], poses[2])
    finally:
        env.close()


def test_aloha_image_size_is_configurable() -> None:
    require("gym_aloha")
    env = get_task("aloha-transfer-cube").make_env(seed=0, image_height=240, image_width=320)
    obs, _ = env.reset(seed=1)
    assert obs["image/top"].shape == (240, 320, 3)
    env.close()

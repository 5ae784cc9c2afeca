"""Fast NumPy tasks, the registry, chunked vector stepping and demonstrations."""

from __future__ import annotations

import numpy as np
import pytest

from fpoctl.envs import UnknownTaskError, get_task, make_vector_env
from fpoctl.envs.demos import DemoSet, collect_demos


def test_unknown_task_lists_close_matches() -> None:
    with pytest.raises(UnknownTaskError, match="did you mean fast-goal"):
        get_task("fast-gaol")


def test_bandit_rewards_both_modes_equally_and_the_middle_poorly() -> None:
    env = get_task("fast-bandit").make_env(seed=0)
    env.reset(seed=0)
    rewards = [env.step(np.array(a, np.float32))[1] for a in ([0.5, 0.5], [-0.5, -0.5], [0, 0])]
    assert rewards[0] == rewards[1] == 1.0 and rewards[2] < 0.01


def test_goal_task_is_sparse_and_deterministic_under_a_seed() -> None:
    task = get_task("fast-goal")
    trajs = []
    for _ in range(2):
        env = task.make_env(seed=0)
        obs, _ = env.reset(seed=3)
        rs = [env.step(np.zeros(2, np.float32))[1] for _ in range(5)]
        trajs.append(obs["state"])
        assert rs == [0.0] * 5
    np.testing.assert_array_equal(*trajs)


def test_vector_env_executes_chunks_and_resets_in_the_same_step() -> None:
    task = get_task("fast-goal")
    venv = make_vector_env(task, 3, seed=0)
    venv.reset(seed=0)
    steps = 0
    ended = []
    for _ in range(30):
        *_, infos = venv.step(np.zeros((3, 4, 2), np.float32))
        steps += infos[0]["executed"]
        ended += [i["episode"] for i in infos if "episode" in i]
    assert ended and all(e["length"] == task.max_steps and not e["success"] for e in ended)
    assert all("final_obs" in i for i in infos if "episode" in i)
    assert steps == 30 * 4  # 40-step episodes end exactly on chunk boundaries here


def test_experts_solve_fast_tasks_and_demos_round_trip(tmp_path) -> None:
    demos = collect_demos(get_task("fast-goal"), 30, seed=0)
    assert demos.success_rate >= 0.95
    back = DemoSet.load(demos.save(tmp_path / "d.npz"))
    np.testing.assert_array_equal(back.actions, demos.actions)
    assert back.meta["task"] == "fast-goal" and back.obs["state"].shape[1] == 4
    bandit = collect_demos(get_task("fast-bandit"), 40, seed=0)
    signs = np.sign(bandit.actions[:, 0])
    assert (signs > 0).sum() >= 10 and (signs < 0).sum() >= 10  # bimodal demonstrations

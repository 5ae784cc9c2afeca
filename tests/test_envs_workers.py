"""Worker-process vector envs: same results as in-process, autoreset, crash and exception recovery."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import numpy as np
import pytest

from fpoctl.envs import get_task, make_vector_env
from fpoctl.envs.fast import GoalReach
from fpoctl.envs.workers import WorkerVectorEnv
from fpoctl.errors import FpoctlError


class PoisonedGoalReach(GoalReach):
    """fast-goal whose 'simulator' raises on an action with x > 0.99 (a stand-in for a MuJoCo error)."""

    def step(self, action):
        if action[0] > 0.99:
            raise RuntimeError("simulated physics blow-up")
        return super().step(action)


@dataclass(frozen=True)
class PoisonedFactory:
    """Picklable factory: the worker imports this module to build its env."""

    def __call__(self, index: int, seed: int) -> GoalReach:
        return PoisonedGoalReach(seed=seed)


@dataclass(frozen=True)
class BrokenFactory:
    """An env that cannot be built at all."""

    def __call__(self, index: int, seed: int) -> GoalReach:
        raise ValueError("no such simulator")


def test_worker_env_steps_exactly_like_the_in_process_env() -> None:
    task = get_task("fast-goal")
    rng = np.random.default_rng(0)
    chunks = rng.uniform(-1, 1, (25, 2, 4, 2)).astype(np.float32)
    results = []
    for workers in (False, True):
        venv = make_vector_env(task, 2, seed=3, workers=workers)
        try:
            obs = [venv.reset(seed=3)["state"]]
            ends = []
            for chunk in chunks:
                o, _r, _term, _trunc, infos = venv.step(chunk)
                obs.append(o["state"])
                ends += [(i, info["episode"]["length"]) for i, info in enumerate(infos) if "episode" in info]
            results.append((np.stack(obs), ends))
        finally:
            venv.close()
    np.testing.assert_allclose(results[0][0], results[1][0])
    assert results[0][1] == results[1][1] and results[0][1]  # episodes ended, autoreset the same way


def test_a_killed_worker_is_replaced_and_the_vector_env_keeps_stepping() -> None:
    venv = make_vector_env(get_task("fast-goal"), 2, seed=0, workers=True)
    try:
        venv.reset(seed=0)
        venv.step(np.zeros((2, 3, 2), np.float32))
        victim = venv.pids[1]
        os.kill(victim, signal.SIGKILL)
        obs, _rewards, _term, trunc, infos = venv.step(np.zeros((2, 3, 2), np.float32))
        assert infos[1]["episode"] == {"return": 0.0, "length": 3, "success": False, "crashed": True}
        assert "died" in infos[1]["error"] and trunc[1] and infos[1]["executed"] == 0
        assert infos[0]["executed"] == 3 and "episode" not in infos[0]
        assert venv.pids[1] != victim and venv.crashes[-1]["env"] == 1
        for _ in range(15):  # both envs go on, through their next episodes
            obs, *_, infos = venv.step(np.ones((2, 4, 2), np.float32) * 0.5)
        assert obs["state"].shape == (2, 4)
    finally:
        venv.close()
    assert not any(p.is_alive() for p in venv.procs)


def test_a_simulator_exception_fails_the_episode_and_the_env_is_rebuilt() -> None:
    venv = WorkerVectorEnv(PoisonedFactory(), 2, max_steps=40, seed=0)
    try:
        venv.reset(seed=0)
        actions = np.zeros((2, 4, 2), np.float32)
        actions[0, 2, 0] = 1.0  # env 0 raises on its third step
        _obs, _rewards, term, trunc, infos = venv.step(actions)
        assert infos[0]["executed"] == 2 and infos[0]["episode"]["crashed"]
        assert infos[0]["episode"]["success"] is False and infos[0]["episode"]["length"] == 2
        assert "simulated physics blow-up" in infos[0]["error"] and trunc[0] and not term[0]
        assert "final_obs" in infos[0] and infos[1]["executed"] == 4 and "error" not in infos[1]
        assert venv.crashes and venv.crashes[-1]["env"] == 0
        _, _, _, _, infos = venv.step(np.zeros((2, 4, 2), np.float32))
        assert all(i["executed"] == 4 and "error" not in i for i in infos)
    finally:
        venv.close()


def test_an_env_that_cannot_be_built_is_a_clear_error() -> None:
    with pytest.raises(FpoctlError, match="could not build its env: ValueError: no such simulator"):
        WorkerVectorEnv(BrokenFactory(), 1, max_steps=10)

"""The evaluation protocol (openpi's and LeRobot's for LIBERO): N episodes of a task start from its
recorded init states 0..N-1 in order; a suite runs that for each of its tasks and its number is
the mean over tasks (10 tasks x 50 = 500 episodes). Sampling starts from zero noise by default
(FPO++); `noise="random"` samples as openpi and LeRobot do.

Metrics: `eval/success_rate`, `eval/return`, `eval/episode_len` (a suite: means over its tasks),
`eval/episodes` (all episodes), and for a suite the same per task as `eval/task_<i>/<name>`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fpoctl import metric_names as m
from fpoctl.envs import TaskSpec
from fpoctl.envs.recording import Recording, check_recordable, recorded_videos
from fpoctl.envs.vector import make_eval_vector_env
from fpoctl.errors import FpoctlError
from fpoctl.train.evaluate import run_episodes, summarize
from policies.base import FlowPolicy

NOISES = ("zero", "random")
"""Evaluation sampling: from zero noise (FPO's default) or from Gaussian noise (openpi, LeRobot)."""

# progress(task name, task number (1-based), tasks, episodes done, episodes of this task)
EvalProgress = Callable[[str, int, int, int, int], None]


@dataclass
class TaskResult:
    """One task's evaluation: metrics, and each episode's start and outcome in sweep order."""

    name: str
    index: int | None  # the task's index in its suite (None: the task is not a suite's)
    prompt: str
    metrics: dict[str, float]
    episodes: list[dict[str, Any]]

    def record(self) -> dict[str, Any]:
        """JSON for the store: the task's numbers, init states and successes per episode."""
        return {"task": self.name, "index": self.index, "prompt": self.prompt,
                "episodes": int(self.metrics[m.EVAL_EPISODES]),
                "success_rate": self.metrics[m.EVAL_SUCCESS],
                "return": self.metrics[m.EVAL_RETURN], "episode_len": self.metrics[m.EVAL_EPISODE_LEN],
                "init_states": [e.get("init_state") for e in self.episodes],
                "successes": [int(bool(e["success"])) for e in self.episodes]}


@dataclass
class EvalResult:
    """An evaluation of one task or a suite: the metrics to log, and each task's result."""

    metrics: dict[str, float]
    tasks: list[TaskResult]
    videos: list[str] = field(default_factory=list)  # files written by `record`, if any

    @property
    def is_suite(self) -> bool:
        """Whether the result covers the tasks of a suite."""
        return any(t.index is not None for t in self.tasks)


def suite_metrics(tasks: list[TaskResult]) -> dict[str, float]:
    """A suite's metrics: means over its tasks (episodes and crashes summed), plus each task's."""
    out: dict[str, float] = {}
    for key in (m.EVAL_SUCCESS, m.EVAL_RETURN, m.EVAL_EPISODE_LEN):
        out[key] = sum(t.metrics[key] for t in tasks) / max(len(tasks), 1)
    for key in (m.EVAL_EPISODES, m.EVAL_CRASHED):
        total = sum(t.metrics.get(key, 0.0) for t in tasks)
        if total or key == m.EVAL_EPISODES:
            out[key] = total
    for t in tasks:
        if t.index is not None:
            out.update({m.eval_task_key(t.index, k): v for k, v in t.metrics.items()})
    return out


def check_eval_input(episodes: int, *, max_steps: int | None = None, exec_steps: int | None = None,
                     num_envs: int = 1, noise: str = "zero", seed: int = 0, flow_steps: int = 1) -> None:
    """One-line errors for counts below 1, a negative seed and unknown noise, before anything runs."""
    for name, value in (("episodes", episodes), ("max-steps", max_steps), ("exec-steps", exec_steps),
                        ("num-envs", num_envs), ("flow-steps", flow_steps)):
        if value is not None and value < 1:
            raise FpoctlError(f"--{name} must be at least 1, got {value}")
    if seed < 0:
        raise FpoctlError(f"--seed must be 0 or more, got {seed}")
    if noise not in NOISES:
        raise FpoctlError(f"--noise must be one of {', '.join(NOISES)}, got {noise!r}")


class Evaluator:
    """Runs the protocol on a task (its vector env is kept between runs) or on a suite (one
    vector env per task, closed after it: ten simulators at once would be too many)."""

    def __init__(self, task: TaskSpec, *, num_envs: int, obs_mode: str | None = None, seed: int = 0,
                 workers: bool = False, env_kwargs: dict[str, Any] | None = None,
                 max_steps: int | None = None) -> None:
        self.task, self.num_envs, self.obs_mode, self.seed = task, num_envs, obs_mode, seed
        self.workers, self.env_kwargs, self.max_steps = workers, env_kwargs, max_steps
        self._venv: Any = None

    def _make_venv(self, episodes: int, subtask: int | None = None, record: str | Path | None = None,
                   record_episodes: int | None = None) -> Any:
        n = min(self.num_envs, episodes)
        recording = None if record is None else Recording(
            str(record), prefix="" if subtask is None else f"task{subtask}_",
            episodes=min(episodes, record_episodes or episodes), num_envs=n)
        venv = make_eval_vector_env(self.task, n, obs_mode=self.obs_mode, seed=self.seed,
                                    workers=self.workers, env_kwargs=self.env_kwargs, subtask=subtask,
                                    budget=self.max_steps, record=recording)
        if record is not None:
            try:
                check_recordable(venv.single_observation_space, self.task.name,
                                 self.obs_mode or self.task.default_obs_mode)
            except FpoctlError:
                venv.close()
                raise
        return venv

    def run(self, policy: FlowPolicy, episodes: int, *, exec_steps: int, flow_steps: int = 10,
            device: torch.device | str = "cpu", noise: str = "zero",
            all_done: Callable[[bool], bool] | None = None,
            progress: EvalProgress | None = None, record: str | Path | None = None,
            record_episodes: int | None = None) -> EvalResult:
        """`episodes` episodes of the task, or of each task of a suite (see the module docstring).
        `record`: a folder for a video of each episode (or of the first `record_episodes` of each
        task; pixel tasks; the envs that record are not kept)."""
        check_eval_input(episodes, noise=noise)
        kwargs = dict(exec_steps=exec_steps, flow_steps=flow_steps, seed=self.seed, device=device,
                      zero_noise=noise == "zero", all_done=all_done)
        if not self.task.is_suite:
            if progress:
                progress(self.task.name, 1, 1, 0, episodes)  # "0/N episodes" before the first ends
            if record is not None:
                venv = self._make_venv(episodes, record=record, record_episodes=record_episodes)
            else:
                self._venv = self._venv or self._make_venv(episodes)
                venv = self._venv
            try:
                eps = run_episodes(policy, venv, episodes, **kwargs,
                                   on_episode=_report(progress, self.task.name, 1, 1, episodes))
            finally:
                if venv is not self._venv:
                    venv.close()  # closing flushes the videos
            result = TaskResult(self.task.name, None, "", summarize(eps), eps)
            return EvalResult(result.metrics, [result], _videos(record))
        prompts = self.task.subtasks() if self.task.subtasks else ()
        results = []
        for i, prompt in enumerate(prompts):
            name = f"{self.task.name}/{i}"
            if progress:
                progress(name, i + 1, len(prompts), 0, episodes)
            venv = self._make_venv(episodes, subtask=i, record=record,
                                   record_episodes=record_episodes)
            try:
                eps = run_episodes(policy, venv, episodes, **kwargs,
                                   on_episode=_report(progress, name, i + 1, len(prompts), episodes))
            finally:
                venv.close()
            results.append(TaskResult(name, i, prompt, summarize(eps), eps))
        return EvalResult(suite_metrics(results), results, _videos(record))

    def close(self) -> None:
        """Close the kept vector env."""
        if self._venv is not None:
            self._venv.close()
            self._venv = None


def _videos(record: str | Path | None) -> list[str]:
    return [] if record is None else [str(p) for p in recorded_videos(record)]


def _report(progress: EvalProgress | None, name: str, number: int, tasks: int, episodes: int
            ) -> Callable[[int], None] | None:
    if progress is None:
        return None
    return lambda done: progress(name, number, tasks, done, episodes)

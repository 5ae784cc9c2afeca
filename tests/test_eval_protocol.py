"""The evaluation protocol: `fpoctl eval` on a LIBERO suite runs every task on init states 0..N-1
in order and records each task; the trainer's suite evaluations use the same protocol; bad input
is refused before anything is written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from fpoctl.envs import get_task
from fpoctl.settings import Settings
from fpoctl.store import Store
from fpoctl.train.build import build_policy
from fpoctl.train.config import FinetuneConfig
from fpoctl.train.eval_job import resolve_exec_steps
from fpoctl.train.trainer import FPOTrainer
from tests.conftest import require, run_cli
from tests.test_cli_foundation import assert_one_line_error

SUITE = "libero-spatial"
N = 3  # episodes per task: 2 envs, so env 0 plays states 0 and 2, env 1 state 1


def save_mlp(task: str, folder: Path, obs_mode: str | None = None) -> Path:
    """A small untrained MLP flow policy for `task`, saved to `folder`."""
    torch.manual_seed(0)
    policy = build_policy("mlp", get_task(task), obs_mode, horizon=4, hidden=16, device=torch.device("cpu"))
    policy.save_pretrained(folder)
    return folder


def register_run(home: Path, task: str, policy_folder: Path) -> int:
    """A finished run whose one checkpoint holds `policy_folder` (as `fpoctl eval RUN` finds it)."""
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as store:
        run = store.create_run(name="prior", kind="sft", task=task, policy="mlp", status="finished")
        store.add_checkpoint(run.id, 1, str(policy_folder.parent), "-", is_best=True)
        return run.id


def test_bad_eval_input_is_refused_in_one_line_before_anything_is_written(home: Path) -> None:
    for args, words in ((["--episodes", "0"], "--episodes must be at least 1"),
                        (["--episodes", "-3"], "--episodes must be at least 1"),
                        (["--max-steps", "0"], "--max-steps must be at least 1"),
                        (["--noise", "gaussian"], "--noise must be one of zero, random")):
        assert_one_line_error(run_cli("eval", "nothing", "--task", "fast-goal", *args), words)
    assert not home.exists()  # no store, no folder


def test_executed_steps_come_from_the_flag_then_training_then_the_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"type": "pi0", "n_action_steps": 10}))
    assert resolve_exec_steps(None, tmp_path, {}) == (10, "the checkpoint's n_action_steps")
    assert resolve_exec_steps(None, tmp_path, {"exec_steps": 8}) == (8, "as trained")
    assert resolve_exec_steps(5, tmp_path, {"exec_steps": 8}) == (5, "--exec-steps")
    (tmp_path / "config.json").write_text(json.dumps({"type": "mlp_flow"}))
    assert resolve_exec_steps(None, tmp_path, {}) == (4, "default")


def test_eval_records_the_noise_and_the_budget(home: Path, tmp_path: Path) -> None:
    folder = save_mlp("fast-goal", tmp_path / "policy")
    out = run_cli("eval", str(folder), "--task", "fast-goal", "--episodes", "6", "--noise", "random",
                  "--max-steps", "5", "--device", "cpu", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["eval/episodes"] == 6 and result["eval/episode_len"] <= 5
    assert result["setup"]["noise"] == "random" and result["setup"]["max_steps"] == 5
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as store:
        (rec,) = store.evaluations()
        assert rec.details["noise"] == "random" and rec.details["exec_steps"] == 4
        assert rec.details["exec_steps_from"] == "default" and not rec.details["suite"]


@pytest.mark.sim
def test_suite_eval_runs_every_task_on_init_states_in_order_and_records_each(
        home: Path, settings: Settings, tmp_path: Path) -> None:
    require("libero")
    folder = save_mlp(SUITE, tmp_path / "ckpt" / "policy", obs_mode="state")
    run_id = register_run(home, SUITE, folder)
    out = run_cli("eval", str(run_id), "--task", SUITE, "--obs-mode", "state", "--episodes", str(N),
                  "--num-envs", "2", "--max-steps", "6", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    assert "executing 4 steps per chunk (default), zero noise, at most 6 steps per episode" in out.stdout
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["task", "prompt"])
    rows = [line.split() for line in lines[header + 1:header + 11]]
    assert [r[0] for r in rows] == [str(i) for i in range(10)]
    assert all(r[-1] == f"0-{N - 1}" for r in rows)  # each task's init states 0..N-1
    assert lines[header + 11].split()[:2] == ["mean", str(10 * N)]
    assert f"on {SUITE}: success" in out.stdout and f"mean over 10 tasks, {10 * N} episodes" in out.stdout
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as store:
        (rec,) = store.evaluations()
    assert rec.run_id == run_id and rec.episodes == 10 * N and rec.details["suite"]
    tasks = rec.details["tasks"]
    assert [t["task"] for t in tasks] == [f"{SUITE}/{i}" for i in range(10)]
    for t in tasks:
        assert t["episodes"] == N and t["init_states"] == list(range(N))  # sweep order, as played
        assert len(t["successes"]) == N and t["episode_len"] <= 6
    assert rec.success_rate == pytest.approx(sum(t["success_rate"] for t in tasks) / 10)
    assert rec.details["eval/task_9/episodes"] == N
    shown = run_cli("runs", "show", str(run_id))
    assert shown.returncode == 0, shown.stderr
    assert "eval" in shown.stdout and f"on {SUITE}" in shown.stdout
    assert "pick up the black bowl" in shown.stdout and "mean" in shown.stdout
    shown_json = json.loads(run_cli("runs", "show", str(run_id), "--json").stdout)
    assert len(shown_json["evaluations"][0]["tasks"]) == 10


@pytest.mark.sim
def test_the_trainer_evaluates_a_suite_task_by_task(home: Path, store: Store) -> None:
    require("libero")
    cfg = FinetuneConfig(task=SUITE, obs_mode="state", num_envs=1, eval_episodes=2, horizon=4,
                         hidden=16, env_kwargs={"max_steps": 4}, device="cpu")
    task = get_task(SUITE)
    policy = build_policy("mlp", task, "state", horizon=4, hidden=16, device=torch.device("cpu"))
    trainer = FPOTrainer(cfg, policy, task, torch.device("cpu"))
    try:
        metrics = trainer.evaluate()
    finally:
        trainer.close()
    per_task = [metrics[f"eval/task_{i}/success_rate"] for i in range(10)]
    assert metrics["eval/episodes"] == 20 and metrics["eval/success_rate"] == pytest.approx(
        sum(per_task) / 10)
    assert all(metrics[f"eval/task_{i}/episodes"] == 2 for i in range(10))
    assert metrics["eval/episode_len"] <= 4
    run = store.create_run(name="ft", task=SUITE, policy="mlp")
    with store.metric_writer(run.id) as writer:
        writer.log(0, metrics)
    shown = run_cli("runs", "show", str(run.id))
    assert shown.returncode == 0, shown.stderr
    assert "eval/success_rate" in shown.stdout
    assert all(f"eval/task_{i}/success_rate" in shown.stdout for i in range(10))


def test_eval_off_a_terminal_prints_timestamped_episode_lines(home: Path, tmp_path: Path) -> None:
    folder = save_mlp("fast-goal", tmp_path / "policy")
    proc = run_cli("eval", str(folder), "--task", "fast-goal", "--episodes", "6")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "episodes" in line and " eval " in line]
    assert lines[0].endswith("eval fast-goal: 0/6 episodes") and lines[-1].endswith(": 6/6 episodes")
    assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in lines)

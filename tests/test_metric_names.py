"""The metric-name contract: every name the trainer, the evaluator and SFT log is a known one (a
typo fails here, not as a blank dashboard panel), and the names module stays on the ground floor."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest
import torch

import fpoctl.metric_names as m
from fpoctl.dash import names as dash_names
from fpoctl.envs import get_task
from fpoctl.envs.demos import collect_demos
from fpoctl.train.config import FinetuneConfig, SFTConfig
from fpoctl.train.distributed import SUMMED, combine_metrics
from fpoctl.train.evaluate import summarize
from fpoctl.train.protocol import TaskResult, suite_metrics
from fpoctl.train.sft import train_sft
from fpoctl.train.trainer import FPOTrainer
from policies.mlp import MLPFlowConfig, MLPFlowPolicy

DESIGN_NAMES = (  # shared/DESIGN.md "Metrics per iteration", spelled as it spells them
    "rollout/success_rate", "rollout/return", "rollout/episode_len", "eval/success_rate",
    "fpo/ratio_mean", "fpo/ratio_max", "fpo/clip_frac", "fpo/approx_kl", "fpo/cfm_loss",
    "fpo/policy_loss", "critic/loss", "critic/q_mean", "critic/q_std", "critic/q_min",
    "perf/env_steps_per_s", "perf/update_s", "perf/gpu_mem_gb", "env/steps_total",
)


def unknown(names: Iterable[str]) -> list[str]:
    """The names that `is_known` does not know."""
    return sorted(name for name in names if not m.is_known(name))


def test_the_names_design_fixes_are_known() -> None:
    assert unknown(DESIGN_NAMES) == []


@pytest.mark.parametrize("critic", ["value", "q_ensemble"])
def test_every_name_a_trainer_iteration_and_its_evaluation_log_is_known(critic: str) -> None:
    # 10 chunks x 4 steps = 40 steps: every episode ends in the rollout, so rollout/* appear too.
    cfg = FinetuneConfig(task="fast-goal", num_envs=2, rollout_chunks=10, minibatch_size=8, n_mc=2,
                         critic=critic, q_ensemble_size=2, critic_hidden=16, critic_warmup=1,
                         eval_episodes=2)
    policy = MLPFlowPolicy(MLPFlowConfig(obs_dim=4, action_dim=2, horizon=4, hidden=16))
    trainer = FPOTrainer(cfg, policy, get_task("fast-goal"), torch.device("cpu"))
    try:
        warmup, update = trainer.train_iteration(), trainer.train_iteration()
        evaluation = trainer.evaluate()
    finally:
        trainer.close()
    logged = {*warmup, *update, *evaluation}
    assert {m.ROLLOUT_SUCCESS, m.CRITIC_LOSS, m.RATIO_MEAN, m.EVAL_SUCCESS} <= logged
    assert (m.EXPLAINED_VARIANCE in logged) == (critic == "value")
    assert unknown(logged) == []
    assert unknown(combine_metrics([update, update])) == [] and unknown(SUMMED) == []


def test_a_suites_per_task_names_are_known() -> None:
    episodes = [{"success": True, "return": 1.0, "length": 5, "crashed": True}]
    tasks = [TaskResult(f"suite/{i}", i, "", summarize(episodes), episodes) for i in range(2)]
    logged = suite_metrics(tasks)
    assert "eval/task_1/success_rate" in logged and "eval/task_0/crashed_episodes" in logged
    assert unknown(logged) == []


def test_every_name_sft_logs_is_known() -> None:
    logged: set[str] = set()
    policy = MLPFlowPolicy(MLPFlowConfig(obs_dim=4, action_dim=2, horizon=4, hidden=16))
    train_sft(policy, collect_demos(get_task("fast-goal"), 2), SFTConfig(steps=2, batch_size=8, log_every=1),
              torch.device("cpu"), log=lambda step, metrics: logged.update(metrics))
    assert logged and unknown(logged) == []


def test_every_name_the_dashboard_shows_is_known() -> None:
    shown = {*dash_names.FPO_TABLE, *dash_names.PERF_TABLE, *dash_names.SUMMARY_KEYS,
             *dash_names.BEST_KEYS, *dash_names.COMPARE_KEYS, *dash_names.LABELS}
    assert unknown(shown) == []


def test_typos_and_foreign_families_are_unknown() -> None:
    for name in ("rollout/sucess_rate", "critic/q-std", "eval/task_1/sucess_rate",
                 "eval/task_x/success_rate", "eval/task_1/task_2/success_rate", "fpo/ratio"):
        assert not m.is_known(name), name
    assert m.is_known(m.eval_task_key(3, m.EVAL_SUCCESS))


def test_the_names_module_imports_nothing_of_fpoctl() -> None:
    tree = ast.parse(Path(m.__file__).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] == "fpoctl"]

"""The metric names, on the ground floor: the trainer, evaluator and SFT log them, the dashboard and
CLI read them (shared/DESIGN.md fixes the core ones). Imports nothing of fpoctl: every floor may use it.

Constants are named after what they measure (`Q_STD`, `CLIP_FRAC`), with the family in front where
the measure alone would be ambiguous (`ROLLOUT_SUCCESS`, `EVAL_SUCCESS`, `CRITIC_LOSS`). `is_known`
says whether a name is one of them or of a family (`eval/task_<i>/<metric>`); a test runs the
trainer, the evaluator and SFT and checks every name they log.
"""

from __future__ import annotations

import re

# -- rollout: the training episodes of one iteration -------------------------------------------
ROLLOUT_SUCCESS = "rollout/success_rate"
ROLLOUT_RETURN = "rollout/return"
ROLLOUT_EPISODE_LEN = "rollout/episode_len"
ROLLOUT_EPISODES = "rollout/episodes"
ROLLOUT_CRASHED = "rollout/crashed_episodes"
ROLLOUT_CHUNK_REWARD = "rollout/chunk_reward"

# -- eval: the evaluation protocol (a suite: means over its tasks) -----------------------------
EVAL_SUCCESS = "eval/success_rate"
EVAL_RETURN = "eval/return"
EVAL_EPISODE_LEN = "eval/episode_len"
EVAL_EPISODES = "eval/episodes"
EVAL_CRASHED = "eval/crashed_episodes"
EVAL_METRICS = (EVAL_SUCCESS, EVAL_RETURN, EVAL_EPISODE_LEN, EVAL_EPISODES, EVAL_CRASHED)
"""What an evaluation of one task logs; a suite logs each also per task (`eval_task_key`)."""

# -- fpo: the actor update ---------------------------------------------------------------------
RATIO_MEAN = "fpo/ratio_mean"
RATIO_MAX = "fpo/ratio_max"
CLIP_FRAC = "fpo/clip_frac"
APPROX_KL = "fpo/approx_kl"
CFM_LOSS = "fpo/cfm_loss"
POLICY_LOSS = "fpo/policy_loss"
FPO_UPDATES = "fpo/updates"

# -- critic ------------------------------------------------------------------------------------
CRITIC_LOSS = "critic/loss"
Q_MEAN = "critic/q_mean"
Q_STD = "critic/q_std"
Q_MIN = "critic/q_min"
EXPLAINED_VARIANCE = "critic/explained_variance"

# -- perf and env ------------------------------------------------------------------------------
PERF_ENV_STEPS_PER_S = "perf/env_steps_per_s"
PERF_UPDATE_S = "perf/update_s"
PERF_ROLLOUT_S = "perf/rollout_s"
PERF_GPU_MEM_GB = "perf/gpu_mem_gb"
ENV_STEPS = "env/steps_total"

# -- sft: behaviour cloning --------------------------------------------------------------------
SFT_LOSS = "sft/loss"
SFT_LR = "sft/lr"

KNOWN = frozenset(v for k, v in globals().items() if k.isupper() and isinstance(v, str))
"""Every name above."""

_EVAL_TASK = re.compile(r"eval/task_\d+/(?P<metric>[a-z_]+)")


def eval_task_key(index: int, metric: str) -> str:
    """`eval/success_rate` of a suite's task 3 -> `eval/task_3/success_rate`."""
    return metric.replace("eval/", f"eval/task_{index}/", 1)


def is_eval(name: str) -> bool:
    """Whether `name` is an evaluation metric (of the whole task or suite, or of a suite's task)."""
    return name in EVAL_METRICS or _EVAL_TASK.fullmatch(name) is not None


def is_known(name: str) -> bool:
    """Whether `name` is one of the names above, or an eval metric of a suite's task."""
    task = _EVAL_TASK.fullmatch(name)
    return name in KNOWN or (task is not None and f"eval/{task['metric']}" in EVAL_METRICS)

"""The dashboard's panels: which metrics (named in `fpoctl.metric_names`) each shows, and labels."""

from __future__ import annotations

from fpoctl.metric_names import (
    APPROX_KL,
    CFM_LOSS,
    CLIP_FRAC,
    CRITIC_LOSS,
    ENV_STEPS,
    EVAL_EPISODE_LEN,
    EVAL_EPISODES,
    EVAL_RETURN,
    EVAL_SUCCESS,
    EXPLAINED_VARIANCE,
    PERF_ENV_STEPS_PER_S,
    PERF_GPU_MEM_GB,
    PERF_ROLLOUT_S,
    PERF_UPDATE_S,
    POLICY_LOSS,
    Q_MEAN,
    Q_MIN,
    Q_STD,
    RATIO_MAX,
    RATIO_MEAN,
    ROLLOUT_EPISODE_LEN,
    ROLLOUT_EPISODES,
    ROLLOUT_RETURN,
    ROLLOUT_SUCCESS,
    SFT_LOSS,
    SFT_LR,
)

FPO_TABLE = (RATIO_MEAN, RATIO_MAX, CLIP_FRAC, APPROX_KL, CFM_LOSS, POLICY_LOSS, CRITIC_LOSS)
PERF_TABLE = (PERF_ENV_STEPS_PER_S, PERF_UPDATE_S, PERF_GPU_MEM_GB, ROLLOUT_EPISODE_LEN)
SFT_TABLE = (SFT_LOSS, SFT_LR, EVAL_SUCCESS, EVAL_RETURN, EVAL_EPISODE_LEN, EVAL_EPISODES)

# What the runs table needs: newest value of each, and the best success.
SUMMARY_KEYS = (ENV_STEPS, ROLLOUT_SUCCESS, EVAL_SUCCESS, ROLLOUT_RETURN)
BEST_KEYS = (EVAL_SUCCESS, ROLLOUT_SUCCESS)

# What the compare screen offers first (any other key the runs log follows, by name).
COMPARE_KEYS = (EVAL_SUCCESS, ROLLOUT_SUCCESS, ROLLOUT_RETURN, APPROX_KL, CLIP_FRAC, RATIO_MEAN,
                RATIO_MAX, Q_MEAN, Q_STD, CRITIC_LOSS, SFT_LOSS, PERF_ENV_STEPS_PER_S, EVAL_RETURN)
RATES = frozenset((EVAL_SUCCESS, ROLLOUT_SUCCESS))
"""Metrics in [0, 1], plotted on a 0..1 axis and printed as percentages."""

LABELS = {
    ROLLOUT_SUCCESS: "rollout success", EVAL_SUCCESS: "eval success", ROLLOUT_RETURN: "return",
    ROLLOUT_EPISODE_LEN: "episode len", ROLLOUT_EPISODES: "episodes", Q_MEAN: "Q mean",
    Q_STD: "Q std (disagreement)", Q_MIN: "Q min",
    RATIO_MEAN: "ratio mean", RATIO_MAX: "ratio max", CLIP_FRAC: "clip frac", APPROX_KL: "approx KL",
    CFM_LOSS: "CFM loss", POLICY_LOSS: "policy loss", CRITIC_LOSS: "critic loss",
    EXPLAINED_VARIANCE: "explained var", PERF_ENV_STEPS_PER_S: "env steps/s",
    PERF_UPDATE_S: "update s", PERF_ROLLOUT_S: "rollout s", PERF_GPU_MEM_GB: "GPU mem GB",
    SFT_LOSS: "SFT loss", SFT_LR: "learning rate", EVAL_RETURN: "eval return",
    EVAL_EPISODE_LEN: "eval episode len", EVAL_EPISODES: "eval episodes", ENV_STEPS: "env steps",
}


def label(key: str) -> str:
    """How the dashboard names a metric (its stored name when it has no label)."""
    return LABELS.get(key, key)

"""The dashboard's panels: which metrics (named in `fpoctl.metric_names`) each shows, and labels."""

from __future__ import annotations

from fpoctl.metric_names import (
    APPROX_KL,
    CFM_LOSS,
    CLIP_FRAC,
    CRITIC_LOSS,
    ENV_STEPS,
    EVAL_SUCCESS,
    PERF_ENV_STEPS_PER_S,
    PERF_GPU_MEM_GB,
    PERF_UPDATE_S,
    POLICY_LOSS,
    Q_MEAN,
    Q_MIN,
    Q_STD,
    RATIO_MAX,
    RATIO_MEAN,
    ROLLOUT_EPISODE_LEN,
    ROLLOUT_RETURN,
    ROLLOUT_SUCCESS,
)

FPO_TABLE = (RATIO_MEAN, RATIO_MAX, CLIP_FRAC, APPROX_KL, CFM_LOSS, POLICY_LOSS, CRITIC_LOSS)
PERF_TABLE = (PERF_ENV_STEPS_PER_S, PERF_UPDATE_S, PERF_GPU_MEM_GB, ROLLOUT_EPISODE_LEN)

# What the runs table needs: newest value of each, and the best success.
SUMMARY_KEYS = (ENV_STEPS, ROLLOUT_SUCCESS, EVAL_SUCCESS, ROLLOUT_RETURN)
BEST_KEYS = (EVAL_SUCCESS, ROLLOUT_SUCCESS)

# What the compare screen can overlay (cycled with `m`).
COMPARE_KEYS = (EVAL_SUCCESS, ROLLOUT_SUCCESS, ROLLOUT_RETURN)

LABELS = {
    ROLLOUT_SUCCESS: "rollout success", EVAL_SUCCESS: "eval success", ROLLOUT_RETURN: "return",
    ROLLOUT_EPISODE_LEN: "episode len", Q_MEAN: "Q mean", Q_STD: "Q std (disagreement)", Q_MIN: "Q min",
    RATIO_MEAN: "ratio mean", RATIO_MAX: "ratio max", CLIP_FRAC: "clip frac", APPROX_KL: "approx KL",
    CFM_LOSS: "CFM loss", POLICY_LOSS: "policy loss", CRITIC_LOSS: "critic loss",
    PERF_ENV_STEPS_PER_S: "env steps/s", PERF_UPDATE_S: "update s", PERF_GPU_MEM_GB: "GPU mem GB",
}

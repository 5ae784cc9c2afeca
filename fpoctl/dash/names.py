"""The metric names the dashboard shows (fixed in shared/DESIGN.md), grouped by panel."""

from __future__ import annotations

ENV_STEPS = "env/steps_total"
ROLLOUT_SUCCESS = "rollout/success_rate"
EVAL_SUCCESS = "eval/success_rate"
ROLLOUT_RETURN = "rollout/return"
EPISODE_LEN = "rollout/episode_len"

Q_MEAN, Q_STD, Q_MIN = "critic/q_mean", "critic/q_std", "critic/q_min"
RATIO_MEAN, RATIO_MAX = "fpo/ratio_mean", "fpo/ratio_max"
FPO_TABLE = (RATIO_MEAN, RATIO_MAX, "fpo/clip_frac", "fpo/approx_kl", "fpo/cfm_loss", "fpo/policy_loss",
             "critic/loss")
PERF_TABLE = ("perf/env_steps_per_s", "perf/update_s", "perf/gpu_mem_gb", EPISODE_LEN)

# What the runs table needs: newest value of each, and the best success.
SUMMARY_KEYS = (ENV_STEPS, ROLLOUT_SUCCESS, EVAL_SUCCESS, ROLLOUT_RETURN)
BEST_KEYS = (EVAL_SUCCESS, ROLLOUT_SUCCESS)

# What the compare screen can overlay (cycled with `m`).
COMPARE_KEYS = (EVAL_SUCCESS, ROLLOUT_SUCCESS, ROLLOUT_RETURN)

LABELS = {
    ROLLOUT_SUCCESS: "rollout success", EVAL_SUCCESS: "eval success", ROLLOUT_RETURN: "return",
    EPISODE_LEN: "episode len", Q_MEAN: "Q mean", Q_STD: "Q std (disagreement)", Q_MIN: "Q min",
    RATIO_MEAN: "ratio mean", RATIO_MAX: "ratio max", "fpo/clip_frac": "clip frac",
    "fpo/approx_kl": "approx KL", "fpo/cfm_loss": "CFM loss", "fpo/policy_loss": "policy loss",
    "critic/loss": "critic loss", "perf/env_steps_per_s": "env steps/s",
    "perf/update_s": "update s", "perf/gpu_mem_gb": "GPU mem GB",
}

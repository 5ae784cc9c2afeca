"""Tested starting points per task family: how to make the behaviour-cloned prior (SFT) and how to
fine-tune it with FPO. `fpoctl demo` and bench/libero_fpo.py run these; they are config
overrides, so `fpoctl sft/finetune --set k=v` reproduce any of them by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Recipe:
    """Config overrides for the SFT prior and the FPO fine-tune of one task family."""

    sft: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=dict)
    note: str = ""


RECIPES = {
    # A point mass, four goals, sparse success: a 10-demo prior (~40%) -> ~100% in 60 iterations.
    "fast-goal": Recipe(
        sft={"expert_episodes": 10, "steps": 150, "batch_size": 128, "lr": 1e-3},
        finetune={"iterations": 60, "explore_scale": 1.0, "eval_every": 10, "eval_episodes": 64,
                  "checkpoint_every": 20},
        note="10 scripted demos, 150 SFT steps; FPO 60 x 1024 env steps"),
    # LIBERO in state mode with the MLP flow policy, on 2 CPU cores (~60 env steps/s).
    # Prior: DART demonstrations (the scripted expert executes noisy actions and records the clean
    # ones, so the clone sees recoveries); 8-step chunks executed whole (a clone that replans
    # every 2-4 steps never finishes the grasp). FPO: the chunk's CFM loss is SUMMED over its
    # 8 x 7 elements (FPO++): with the mean the ratio hardly moves (approx KL 1e-5) while the
    # zero-noise actions drift by 0.1, so the clip never binds and a good prior is unlearned in
    # five iterations. The critic warms up first; lr 5e-5. Measured on libero-spatial/0: a 36%
    # prior (50 episodes) -> 42, 44, 60, 56, 62, 60% at iterations 20..120 (48 min); the gain
    # comes by iteration 60.
    "libero-state": Recipe(
        sft={"obs_mode": "state", "expert_episodes": 30, "expert_noise": 0.3, "horizon": 8,
             "exec_steps": 8, "steps": 3000, "batch_size": 256, "lr": 1e-3, "workers": True,
             "num_envs": 4, "eval_episodes": 8},
        finetune={"obs_mode": "state", "exec_steps": 8, "workers": True, "num_envs": 8,
                  "rollout_chunks": 28, "loss_reduction": "sum", "actor_lr": 5e-5,
                  "critic_warmup": 2, "explore_scale": 0.0, "gamma": 0.99, "iterations": 60,
                  "eval_every": 30, "eval_episodes": 50, "checkpoint_every": 10},
        note="30 DART demos (noise 0.3), 8-step chunks; FPO 60 x ~1800 env steps, 8 env workers"),
    # ALOHA sim in state mode (joints, velocities, object poses; no camera) with the MLP flow
    # policy, on 2 CPU cores. Prior: 20 DART demonstrations (noise 0.02: the expert replays an
    # open-loop plan, 90% at 0.03, 0% at 0.1), 4-step chunks, hidden 512, 8000 steps: FPO's
    # rollouts sample from random noise, and a smaller or shorter-trained flow leaves ~0.1 of it
    # in every action (8-step chunks, hidden 256: 50% from zero noise but 0% from random noise;
    # this prior: 60% and 35%). credit_success (fpoctl/envs/aloha.py): gym-aloha's stage reward
    # with the success step credited for the rest of the episode, else holding the cube at
    # stage 2 outscores handing it over. FPO: small steps (actor lr 1e-5, 2 epochs of 256-chunk
    # minibatches over 16 envs x 64 chunks), the critic warms up first. Measured on transfer-cube
    # (30 episodes): a 40% prior -> 33, 57, 43, 77% at iterations 25..100 (~7 min), then the
    # rollouts' own success fell from ~60% to 0 by iteration 150 while their CFM loss grew: stop
    # at 100.
    "aloha-state": Recipe(
        sft={"obs_mode": "state", "env_kwargs": {"credit_success": True}, "expert_episodes": 20,
             "expert_noise": 0.02, "horizon": 4, "exec_steps": 4, "hidden": 512, "steps": 8000,
             "batch_size": 256, "lr": 1e-3, "workers": True, "num_envs": 4, "eval_episodes": 8},
        finetune={"obs_mode": "state", "env_kwargs": {"credit_success": True}, "exec_steps": 4,
                  "workers": True, "num_envs": 16, "rollout_chunks": 64, "minibatch_size": 256,
                  "update_epochs": 2, "loss_reduction": "sum", "actor_lr": 1e-5,
                  "critic_warmup": 8, "explore_scale": 0.0, "gamma": 0.99, "iterations": 100,
                  "eval_every": 25, "eval_episodes": 50, "checkpoint_every": 25},
        note="20 DART demos (noise 0.02), 4-step chunks; FPO 100 x ~4100 env steps, 16 env workers"),
}


def recipe_for(task: str) -> Recipe | None:
    """The recipe of a task (LIBERO tasks share "libero-state", ALOHA tasks "aloha-state"); None
    when there is none."""
    if task.startswith("libero-"):
        return RECIPES["libero-state"]
    return RECIPES["aloha-state"] if task.startswith("aloha-") else RECIPES.get(task)

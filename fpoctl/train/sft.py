"""Behaviour cloning of a flow policy from demonstrations: the few-shot prior that FPO improves.

Each sample is an observation and the next H expert actions of the same episode; steps past the
episode's end are padded and masked out of the CFM loss (pi0's `action_is_pad`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fpoctl import metric_names as m
from fpoctl.envs.demos import DemoSet
from fpoctl.train.config import SFTConfig
from fpoctl.train.rollout import take
from policies import flow
from policies.base import FlowPolicy


def demo_chunks(demos: DemoSet, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunks [M, H, d] of the next H actions for every step, and their step masks [M, H]."""
    m, d = demos.actions.shape
    chunks = np.zeros((m, horizon, d), np.float32)
    mask = np.zeros((m, horizon), bool)
    for j in range(m):
        same = np.nonzero(demos.episode[j:j + horizon] == demos.episode[j])[0]
        k = len(same)
        chunks[j, :k] = demos.actions[j:j + k]
        chunks[j, k:] = demos.actions[j + k - 1]
        mask[j, :k] = True
    return chunks, mask


def train_sft(policy: FlowPolicy, demos: DemoSet, cfg: SFTConfig, device: torch.device,
              log: Callable[[int, dict[str, float]], None] | None = None) -> float:
    """Fit the policy's CFM loss on demonstration chunks; returns the final mean loss."""
    if len(demos.actions) == 0:
        raise ValueError("no demonstrations with a successful episode to learn from")
    policy.fit_normalization(demos.obs["state"].astype(np.float32), demos.actions)
    chunks, step_mask = demo_chunks(demos, policy.horizon)
    d_env = chunks.shape[-1]
    actions = policy.from_env_actions(chunks).float()  # model space [M, H, D]
    mask = torch.zeros(actions.shape, dtype=torch.bool)
    mask[..., :d_env] = torch.as_tensor(step_mask)[..., None]
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.steps, 1))
    gen = torch.Generator().manual_seed(cfg.seed)
    running = 0.0
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(len(actions), (min(cfg.batch_size, len(actions)),), generator=gen)
        batch = policy.prepare(take(demos.obs, idx), device)
        a = actions[idx].to(device)
        t, e = flow.sample_noise_and_time(a, 1, generator=gen)
        loss = policy.cfm_loss(batch, a, t.to(device), e.to(device), mask[idx].to(device)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        running = 0.9 * running + 0.1 * float(loss.detach()) if step > 1 else float(loss.detach())
        if log and (step % cfg.log_every == 0 or step == cfg.steps):
            log(step, {m.SFT_LOSS: running, m.SFT_LR: sched.get_last_lr()[0]})
    return running

"""The FPO objective (McAllister et al. 2025; FPO++), on one screen.

For each executed action chunk a with advantage A and stored (t_i, e_i), i = 1..N:
    l_i      = CFM loss of a at (t_i, e_i)            (only executed steps and used dims count)
    d_i      = clamp(min(l_old_i, C) - min(l_new_i, C), -delta, delta)
    averaged:   r   = exp(clamp(mean_i d_i, -delta, delta))      one ratio per chunk (FPO)
    per-sample: r_i = exp(d_i)                                   one ratio per pair (FPO++)
    L_policy = -mean( min(r A, clip(r, 1 - eps, 1 + eps) A) )    PPO's clipped surrogate
The ratio stands in for pi_new(a|s) / pi_old(a|s): a lower CFM loss means a likelier action.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class FPOStats:
    """Diagnostics computed next to the loss they describe."""

    policy_loss: Tensor
    ratio_mean: Tensor
    ratio_max: Tensor
    clip_frac: Tensor
    approx_kl: Tensor
    cfm_loss: Tensor


def fpo_loss(l_old: Tensor, l_new: Tensor, advantages: Tensor, *, clip_eps: float,
             ratio: str = "per_sample", loss_clamp: float = 20.0, diff_clamp: float = 3.0
             ) -> FPOStats:
    """Clipped FPO surrogate from per-sample CFM losses l_old, l_new [B, N] and advantages [B]."""
    d = (l_old.clamp(max=loss_clamp) - l_new.clamp(max=loss_clamp)).clamp(-diff_clamp, diff_clamp)
    if ratio == "averaged":
        log_r = d.mean(dim=1, keepdim=True).clamp(-diff_clamp, diff_clamp)  # [B, 1]
    elif ratio == "per_sample":
        log_r = d  # [B, N]
    else:
        raise ValueError(f"unknown ratio estimator {ratio!r}")
    r = log_r.exp()
    adv = advantages[:, None]
    surrogate = torch.min(r * adv, r.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    with torch.no_grad():
        clip_frac = ((r - 1).abs() > clip_eps).float().mean()
        approx_kl = ((r - 1) - log_r).mean()  # k3 estimator of KL(old || new)
    return FPOStats(policy_loss=-surrogate.mean(), ratio_mean=r.detach().mean(),
                    ratio_max=r.detach().max(), clip_frac=clip_frac, approx_kl=approx_kl,
                    cfm_loss=l_new.detach().mean())


def chunk_gae(rewards: Tensor, values: Tensor, next_values: Tensor, discounts: Tensor,
              terminated: Tensor, ended: Tensor, lam: float) -> tuple[Tensor, Tensor]:
    """GAE over chunks. All inputs [T, n]: chunk rewards, V(s_t), V(s_{t+1}) (for an episode that
    ended, V of its final observation), per-chunk discounts gamma^k, `terminated` (no bootstrap),
    `ended` (terminated or truncated: the trace stops). Returns advantages and returns [T, n]."""
    not_term, not_end = 1.0 - terminated.float(), 1.0 - ended.float()
    deltas = rewards + discounts * next_values * not_term - values
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        last = deltas[t] + discounts[t] * lam * not_end[t] * last
        adv[t] = last
    return adv, adv + values

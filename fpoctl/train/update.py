"""The FPO update of one iteration (minibatches x epochs), CleanRL style; the critics fit
themselves (`critics.py`).

Under torchrun every gradient step averages the ranks' gradients (`Ranks.average_gradients`, or
FSDP for a sharded policy), and the ranks take or skip each step together, so their parameters
stay identical."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fpoctl import metric_names as m
from fpoctl.train.config import FinetuneConfig
from fpoctl.train.distributed import LOCAL, Ranks
from fpoctl.train.fpo import FPOStats, fpo_loss
from fpoctl.train.rollout import Rollout, take
from fpoctl.train.sharding import clip_grad_norm
from policies.base import FlowPolicy

AVERAGED = {"policy_loss": m.POLICY_LOSS, "ratio_mean": m.RATIO_MEAN,
            "clip_frac": m.CLIP_FRAC, "approx_kl": m.APPROX_KL, "cfm_loss": m.CFM_LOSS}
"""The `FPOStats` averaged over the steps taken, and their metric names."""


class NonFiniteLoss(Exception):
    """Raised after `max_nan_updates` consecutive non-finite losses or gradients."""


def chunk_cfm_loss(policy: FlowPolicy, rollout: Rollout, idx: Tensor, cfg: FinetuneConfig,
                   device: torch.device) -> Tensor:
    """Per-sample CFM losses [b, N] of the stored chunks `idx` at their stored (t, noise)."""
    batch = policy.prepare(take(rollout.obs, idx), device)
    return policy.cfm_loss(batch, rollout.actions[idx].to(device), rollout.t[idx].to(device),
                           rollout.noise[idx].to(device), rollout.mask[idx].to(device),
                           reduction=cfg.loss_reduction).float().cpu()


def fpo_update(policy: FlowPolicy, optimizer: torch.optim.Optimizer, rollout: Rollout, advantages: Tensor,
               cfg: FinetuneConfig, device: torch.device, generator: torch.Generator,
               on_minibatch: Callable[[int, int, FPOStats], None] | None = None,
               on_nonfinite: Callable[[str], None] | None = None, ranks: Ranks = LOCAL
               ) -> dict[str, float]:
    """Epochs of minibatch steps on the clipped FPO surrogate; returns the mean diagnostics."""
    size = rollout.size
    mb = min(cfg.minibatch_size, size)
    orders = [torch.randperm(size, generator=generator) for _ in range(cfg.update_epochs)]
    params = [p for p in policy.parameters() if p.requires_grad]
    # l_old under theta_old (= the rollout policy: nothing has been updated yet), computed in the
    # first epoch's minibatch layout so the first minibatch's ratio is exactly 1.
    l_old = torch.empty(size, cfg.n_mc)
    with torch.no_grad():
        for idx in orders[0].split(mb):
            l_old[idx] = chunk_cfm_loss(policy, rollout, idx, cfg, device)
    sums: dict[str, float] = {}
    steps, nan_streak, ratio_max = 0, 0, 1.0
    for epoch, order in enumerate(orders):
        for i, idx in enumerate(order.split(mb)):
            l_new = chunk_cfm_loss(policy, rollout, idx, cfg, device)
            stats = fpo_loss(l_old[idx], l_new, advantages[idx], clip_eps=cfg.clip_eps,
                             ratio=cfg.ratio, loss_clamp=cfg.loss_clamp, diff_clamp=cfg.diff_clamp)
            if on_minibatch:
                on_minibatch(epoch, i, stats)
            optimizer.zero_grad(set_to_none=True)
            finite = ranks.all_true(bool(torch.isfinite(stats.policy_loss)))
            if finite:
                stats.policy_loss.backward()
                ranks.average_gradients(params)
                grad_norm = clip_grad_norm(params, cfg.max_grad_norm)
                finite = bool(torch.isfinite(grad_norm))  # the same on every rank after averaging
            if not finite:
                optimizer.zero_grad(set_to_none=True)
                nan_streak += 1
                if on_nonfinite:
                    on_nonfinite(f"non-finite FPO loss or gradient (epoch {epoch}, minibatch {i}); "
                                 "update skipped")
                if nan_streak >= cfg.max_nan_updates:
                    raise NonFiniteLoss(f"{nan_streak} consecutive non-finite FPO updates")
                continue
            nan_streak = 0
            optimizer.step()
            steps += 1
            for key in AVERAGED:
                sums[key] = sums.get(key, 0.0) + float(getattr(stats, key).detach())
            ratio_max = max(ratio_max, float(stats.ratio_max))
        kl = sums.get("approx_kl", 0.0) / max(steps, 1)
        if cfg.target_kl is not None and ranks.mean(kl) > cfg.target_kl:
            break
    out = {AVERAGED[k]: v / max(steps, 1) for k, v in sums.items()}
    out[m.RATIO_MAX] = ratio_max
    out[m.FPO_UPDATES] = float(steps)
    return out


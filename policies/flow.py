"""Flow-matching math shared by every policy, in pi0's convention: t = 1 is noise, t = 0 the action.

    x_t = t * e + (1 - t) * a          (interpolation between action a and noise e)
    u   = e - a                        (target velocity, dx/dt)
    l   = (v_theta(x_t, t | o) - u)^2  (per element; reduced over the elements that count)

Training times t ~ Beta(1.5, 1) * 0.999 + 0.001 (more weight near the noise end). Sampling
integrates from t = 1 to t = 0 with K Euler steps of dt = -1/K.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

VelocityFn = Callable[[Tensor, Tensor], Tensor]  # (x_t [B, H, D], t [B]) -> v [B, H, D]


def sample_time(shape: Sequence[int], *, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> Tensor:
    """t ~ Beta(1.5, 1) * 0.999 + 0.001, drawn from `generator` (reproducible under a seed)."""
    # Beta(a, 1) has CDF t^a, so inverse-CDF sampling needs only a uniform draw.
    u = torch.rand(tuple(shape), generator=generator, device=device)
    return u.pow(1.0 / 1.5) * 0.999 + 0.001


def sample_noise_and_time(actions: Tensor, n_mc: int, *, generator: torch.Generator | None = None
                          ) -> tuple[Tensor, Tensor]:
    """N_mc (t, e) pairs per action chunk: t [B, N], e [B, N, H, D]."""
    b = actions.shape[0]
    t = sample_time((b, n_mc), generator=generator, device=actions.device)
    e = torch.randn((b, n_mc, *actions.shape[1:]), generator=generator, device=actions.device,
                    dtype=actions.dtype)
    return t, e


def interpolate(actions: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t = t e + (1 - t) a. actions [B, H, D] or [B, N, H, D]; noise [B, N, H, D]; t [B, N]."""
    if actions.dim() == noise.dim() - 1:
        actions = actions.unsqueeze(1)
    tt = t[..., None, None]
    return tt * noise + (1.0 - tt) * actions


def target_velocity(actions: Tensor, noise: Tensor) -> Tensor:
    """u = e - a, broadcast over the N_mc axis like `interpolate`."""
    if actions.dim() == noise.dim() - 1:
        actions = actions.unsqueeze(1)
    return noise - actions


def cfm_loss(v_pred: Tensor, actions: Tensor, noise: Tensor, mask: Tensor | None = None,
             reduction: str = "mean") -> Tensor:
    """Per-sample CFM loss [B, N] from predicted velocities v_pred [B, N, H, D].

    `mask` (broadcastable to [B, N, H, D], e.g. [B, H, D] or [B, 1, H, D]) marks the elements
    that count: the chunk steps that were executed and the action dims the task uses. Padding
    must never enter the loss. `reduction` "mean" divides by the number of counted elements,
    "sum" adds them (the chunk-level log-likelihood surrogate of FPO++).
    """
    err = (v_pred - target_velocity(actions, noise)).pow(2)
    if mask is None:
        return err.mean(dim=(-2, -1)) if reduction == "mean" else err.sum(dim=(-2, -1))
    if mask.dim() == err.dim() - 1:
        mask = mask.unsqueeze(1)
    mask = mask.to(err.dtype).expand_as(err)
    total = (err * mask).sum(dim=(-2, -1))
    if reduction == "sum":
        return total
    return total / mask.sum(dim=(-2, -1)).clamp_min(1.0)


def euler_sample(velocity: VelocityFn, x1: Tensor, *, steps: int = 10,
                 explore_scale: float = 0.0, explore_steps: Sequence[int] | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
    """Integrate dx/dt = v from t = 1 (x1: noise, or zeros for zero-noise sampling) to t = 0.

    Multi-step latent exploration: after each Euler step k in `explore_steps` (all steps when
    None) the latent gets Gaussian noise of std `explore_scale * sqrt(|dt|)`. With scale 0 this
    is exactly the plain sampler.
    """
    dt = -1.0 / steps
    x = x1
    noisy = set(range(steps)) if explore_steps is None else set(explore_steps)
    for k in range(steps):
        t = torch.full((x.shape[0],), 1.0 + k * dt, device=x.device, dtype=x.dtype)
        x = x + dt * velocity(x, t)
        if explore_scale > 0.0 and k in noisy:
            eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + explore_scale * abs(dt) ** 0.5 * eps
    return x


def posemb_sincos(t: Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0) -> Tensor:
    """Sine-cosine embedding of scalar times t [B] -> [B, dim] (pi0's time embedding)."""
    fraction = torch.linspace(0.0, 1.0, dim // 2, device=t.device, dtype=torch.float64)
    period = min_period * (max_period / min_period) ** fraction
    angle = t.to(torch.float64)[:, None] / period[None, :] * 2 * torch.pi
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1).to(t.dtype)

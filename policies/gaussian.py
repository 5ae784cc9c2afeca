"""A diagonal-Gaussian chunk policy: the Gaussian PPO baseline for benchmarks.

Its `cfm_loss` returns the negative log-likelihood -log pi(a | s) of each chunk (summed over the
counted elements, whatever `reduction` says), so the FPO ratio exp(l_old - l_new) becomes exactly
PPO's pi_new / pi_old and the same trainer runs Gaussian PPO "the same way". (t, noise) are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from policies.state_policy import StatePolicy, check_config


@dataclass
class GaussianConfig:
    """Sizes of the Gaussian policy."""

    obs_dim: int
    action_dim: int
    horizon: int = 1
    hidden: int = 256
    depth: int = 3
    init_log_std: float = -0.5
    obs_clip: float | None = None  # |normalised state| limit; set when statistics are fitted

    def __post_init__(self) -> None:
        check_config(self, ("obs_dim", "action_dim", "horizon", "hidden", "depth"))
        value = self.init_log_std
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"init_log_std must be a finite number, got {value!r}")


class GaussianPolicy(StatePolicy):
    """mean = MLP(state), state-independent log std; chunks [B, H, D]."""

    type_name = "gaussian"
    config_class = GaussianConfig

    def __init__(self, config: GaussianConfig) -> None:
        super().__init__(config)
        layers: list[nn.Module] = []
        for i in range(config.depth):
            width_in = config.obs_dim if i == 0 else config.hidden
            layers += [nn.Linear(width_in, config.hidden), nn.Tanh()]
        layers.append(nn.Linear(config.hidden, config.horizon * config.action_dim))
        self.mean_net = nn.Sequential(*layers)
        self.log_std = nn.Parameter(torch.full((config.horizon, config.action_dim), config.init_log_std))

    def _mean(self, state: Tensor) -> Tensor:
        mean = self.mean_net(self.normalized_state(state))
        return mean.view(*state.shape[:-1], self.horizon, self.action_dim)

    def sample(self, batch: Mapping[str, Any], *, noise: Tensor | None = None, steps: int = 10,
               explore_scale: float = 0.0, explore_steps: Sequence[int] | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """mean + std * noise; zeros -> the mean (deterministic evaluation)."""
        mean = self._mean(batch["state"])
        if noise is None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return (mean + self.log_std.exp() * noise).detach()

    def cfm_loss(self, batch: Mapping[str, Any], actions: Tensor, t: Tensor, noise: Tensor,
                 mask: Tensor | None = None, reduction: str = "mean") -> Tensor:
        """-log pi(a | s) per chunk, repeated over the N (t, noise) columns: [B, N]."""
        mean = self._mean(batch["state"])
        z = (actions - mean) / self.log_std.exp()
        nll = 0.5 * z.pow(2) + self.log_std + 0.5 * math.log(2 * math.pi)
        if mask is not None:
            nll = nll * mask.to(nll.dtype)
        return nll.sum(dim=(-2, -1))[:, None].expand(-1, t.shape[1])

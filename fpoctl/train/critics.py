"""Critics: a state-value network, and the Q-ensemble of M critics Q_j(s, a_chunk) with Polyak
target copies whose TD target uses the ensemble minimum (as in the pi0 RL fine-tuning paper)."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


def mlp(n_in: int, hidden: int, n_out: int, depth: int = 3) -> nn.Sequential:
    """An MLP with SiLU activations and LayerNorm after the first layer (stable on raw features)."""
    layers: list[nn.Module] = [nn.Linear(n_in, hidden), nn.LayerNorm(hidden), nn.SiLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), nn.SiLU()]
    layers.append(nn.Linear(hidden, n_out))
    return nn.Sequential(*layers)


class ValueCritic(nn.Module):
    """V(s) on the policy's critic features."""

    def __init__(self, feature_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = mlp(feature_dim, hidden, 1)

    def forward(self, features: Tensor) -> Tensor:
        """[B, F] -> [B]."""
        return self.net(features).squeeze(-1)


class QEnsemble(nn.Module):
    """M critics Q_j(s, a) over features and a flattened (masked) action chunk."""

    def __init__(self, feature_dim: int, action_numel: int, size: int = 5, hidden: int = 256) -> None:
        super().__init__()
        self.critics = nn.ModuleList(mlp(feature_dim + action_numel, hidden, 1) for _ in range(size))
        self.target = copy.deepcopy(self.critics).requires_grad_(False)

    def forward(self, features: Tensor, actions: Tensor, *, target: bool = False) -> Tensor:
        """All M values [M, B] for features [B, F] and actions [B, ...]."""
        x = torch.cat([features, actions.flatten(1)], dim=-1)
        nets = self.target if target else self.critics
        return torch.stack([q(x).squeeze(-1) for q in nets])

    @torch.no_grad()
    def td_target(self, rewards: Tensor, discounts: Tensor, terminated: Tensor,
                  next_features: Tensor, next_actions: Tensor) -> Tensor:
        """y = r + gamma^k * (1 - terminated) * min_j Q'_j(s', a'),  a' ~ pi(s')."""
        q_next = self(next_features, next_actions, target=True).min(dim=0).values
        return rewards + discounts * (1.0 - terminated.float()) * q_next

    @torch.no_grad()
    def polyak_update(self, tau: float) -> None:
        """target <- (1 - tau) target + tau online."""
        for p_t, p in zip(self.target.parameters(), self.critics.parameters(), strict=True):
            p_t.lerp_(p, tau)

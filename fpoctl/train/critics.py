"""Critics own their fit: a state-value network V(s), or the Q-ensemble of M critics Q_j(s, a_chunk)
with Polyak target copies whose TD target uses the ensemble minimum (as in the pi0 RL fine-tuning
paper). `make_critic` builds the configured one; its `fit` gives the FPO update GAE advantages."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from fpoctl import metric_names as m
from fpoctl.train.config import CHOICES, FinetuneConfig
from fpoctl.train.distributed import LOCAL, Ranks
from fpoctl.train.rollout import Rollout
from fpoctl.train.sharding import clip_grad_norm

GAE = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""(V(s), V(s')) [T, n] -> (advantages, returns) [T, n]: GAE over the iteration's rollout."""


def mlp(n_in: int, hidden: int, n_out: int, depth: int = 3) -> nn.Sequential:
    """An MLP with SiLU activations and LayerNorm after the first layer (stable on raw features)."""
    layers: list[nn.Module] = [nn.Linear(n_in, hidden), nn.LayerNorm(hidden), nn.SiLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), nn.SiLU()]
    layers.append(nn.Linear(hidden, n_out))
    return nn.Sequential(*layers)


@dataclass
class CriticInputs:
    """A rollout as a critic sees it; flat tensors are [B = T * n, ...] (T-major), on the critic's device."""

    rollout: Rollout
    features: Tensor  # [B, F] the policy's critic features of s
    next_features: Tensor  # [B, F] of s' (where an episode ended: of its final observation)
    actions: Tensor  # [B, k, d] each chunk's executed steps and used action dims
    sample: Callable[[dict[str, Any]], Tensor]  # obs -> a ~ pi(.|obs) (no exploration), as `actions`


@dataclass
class CriticFit:
    """What a fit gives the FPO update: V(s), V(s') and the GAE advantages [T, n] (CPU), and metrics."""

    values: Tensor
    next_values: Tensor
    advantages: Tensor
    metrics: dict[str, float]


class Regression:
    """A critic's optimiser and its minibatch epochs of regression steps. Under torchrun every step
    averages the ranks' gradients, and the ranks skip a non-finite loss together."""

    def __init__(self, params: Iterable[nn.Parameter], *, lr: float, epochs: int, minibatch: int,
                 max_grad_norm: float, generator: torch.Generator, ranks: Ranks = LOCAL) -> None:
        self.params = list(params)
        self.optimizer = torch.optim.Adam(self.params, lr=lr, eps=1e-5)
        self.epochs, self.minibatch, self.max_grad_norm = epochs, minibatch, max_grad_norm
        self.generator, self.ranks = generator, ranks  # the trainer's: it orders the FPO minibatches too

    def fit(self, loss_fn: Callable[[Tensor], Tensor], size: int,
            after_step: Callable[[], None] | None = None) -> float:
        """Epochs of shuffled minibatches of `size` rows (`loss_fn(idx)`: their loss); the mean loss."""
        total, count = 0.0, 0
        for _ in range(self.epochs):
            for idx in torch.randperm(size, generator=self.generator).split(min(self.minibatch, size)):
                loss = loss_fn(idx)
                if not self.ranks.all_true(bool(torch.isfinite(loss))):
                    continue
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.ranks.average_gradients(self.params)
                clip_grad_norm(self.params, self.max_grad_norm)
                self.optimizer.step()
                if after_step:
                    after_step()
                total, count = total + float(loss.detach()), count + 1
        return total / max(count, 1)


class Critic(nn.Module, ABC):
    """A critic that fits itself to a rollout and gives GAE advantages.

    `fit(inputs, gae)` calls `gae` exactly once, where its own order needs it, so GAE runs once per
    iteration for both critics: the value critic evaluates V(s), V(s') first, takes GAE of those
    and regresses V on the returns (advantages + values, CleanRL's order); the Q-ensemble TD-fits
    first (its targets need no GAE) and takes GAE of the V(s) it then gives.
    """

    regression: Regression
    """Its optimiser and fit settings; `make_critic` attaches them once the critic is on its device."""

    @abstractmethod
    def trained_parameters(self) -> list[nn.Parameter]:
        """The parameters its optimiser steps."""

    @abstractmethod
    def fit(self, inputs: CriticInputs, gae: GAE) -> CriticFit:
        """Fit on one rollout; V(s), V(s') and their GAE advantages, and the fit's metrics."""


def explained_variance(values: Tensor, returns: Tensor) -> float:
    """1 - Var[y - v] / Var[y] (CleanRL's): 1 for a perfect V, 0 for a constant; NaN if y is constant."""
    var_y = float(returns.var(correction=0))
    return float("nan") if var_y == 0 else 1.0 - float((returns - values).var(correction=0)) / var_y


class ValueCritic(Critic):
    """V(s) on the policy's critic features."""

    def __init__(self, feature_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = mlp(feature_dim, hidden, 1)

    def forward(self, features: Tensor) -> Tensor:
        """[B, F] -> [B]."""
        return self.net(features).squeeze(-1)

    def trained_parameters(self) -> list[nn.Parameter]:
        """All of V's."""
        return list(self.parameters())

    def fit(self, inputs: CriticInputs, gae: GAE) -> CriticFit:
        """V(s), V(s') before the fit -> GAE -> regress V on the returns (advantages + values)."""
        shape = inputs.rollout.rewards.shape
        with torch.no_grad():
            values = self(inputs.features).view(shape).cpu()
            next_values = self(inputs.next_features).view(shape).cpu()
        advantages, returns = gae(values, next_values)
        target = returns.flatten().to(inputs.features.device)
        loss = self.regression.fit(lambda idx: (self(inputs.features[idx]) - target[idx]).pow(2).mean(),
                                   len(target))
        return CriticFit(values, next_values, advantages, {
            m.CRITIC_LOSS: loss, m.EXPLAINED_VARIANCE: explained_variance(values, returns),
            m.Q_MEAN: float(values.mean())})


class QEnsemble(Critic):
    """M critics Q_j(s, a) over features and a flattened (masked) action chunk; V(s) is the mean
    over `value_samples` draws a ~ pi of min_j Q_j(s, a)."""

    def __init__(self, feature_dim: int, action_numel: int, size: int = 5, hidden: int = 256, *,
                 tau: float = 0.05, value_samples: int = 2) -> None:
        super().__init__()
        self.critics = nn.ModuleList(mlp(feature_dim + action_numel, hidden, 1) for _ in range(size))
        self.target = copy.deepcopy(self.critics).requires_grad_(False)
        self.tau, self.value_samples = tau, value_samples

    def forward(self, features: Tensor, actions: Tensor, *, target: bool = False) -> Tensor:
        """All M values [M, B] for features [B, F] and actions [B, ...]."""
        x = torch.cat([features, actions.flatten(1)], dim=-1)
        nets = self.target if target else self.critics
        return torch.stack([q(x).squeeze(-1) for q in nets])

    def trained_parameters(self) -> list[nn.Parameter]:
        """The online critics' (the targets follow by Polyak averaging)."""
        return list(self.critics.parameters())

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

    def fit(self, inputs: CriticInputs, gae: GAE) -> CriticFit:
        """TD-fit (min over the target critics, a' ~ pi; Polyak after every step), then GAE of
        V(s) = E_a min_j Q_j(s, a) and V(s') = min_j Q_j(s', a')."""
        r, feats, actions = inputs.rollout, inputs.features, inputs.actions
        device, shape = feats.device, r.rewards.shape
        next_actions = inputs.sample(r.next_obs)
        y = self.td_target(r.rewards.flatten().to(device), r.discounts.flatten().to(device),
                           r.terminated.flatten().to(device), inputs.next_features, next_actions)
        loss = self.regression.fit(lambda idx: (self(feats[idx], actions[idx]) - y[idx]).pow(2).mean(),
                                   len(y), after_step=lambda: self.polyak_update(self.tau))
        with torch.no_grad():
            q = self(feats, actions)  # [M, B]
            values = torch.stack([self(feats, inputs.sample(r.obs)).min(0).values
                                  for _ in range(self.value_samples)]).mean(0).view(shape).cpu()
            next_values = self(inputs.next_features, next_actions).min(0).values.view(shape).cpu()
        advantages, _ = gae(values, next_values)
        disagreement = q.std(0).mean() if q.shape[0] > 1 else torch.zeros(())
        return CriticFit(values, next_values, advantages, {
            m.CRITIC_LOSS: loss, m.Q_MEAN: float(q.mean()), m.Q_STD: float(disagreement),
            m.Q_MIN: float(q.min(0).values.mean())})


def make_critic(cfg: FinetuneConfig, feature_dim: int, action_numel: int, *, device: torch.device,
                generator: torch.Generator, ranks: Ranks = LOCAL) -> Critic:
    """The configured critic on `device` with its optimiser; Q sees `action_numel` = steps x dims."""
    if cfg.critic == "value":
        critic: Critic = ValueCritic(feature_dim, cfg.critic_hidden)
    elif cfg.critic == "q_ensemble":
        critic = QEnsemble(feature_dim, action_numel, cfg.q_ensemble_size, cfg.critic_hidden,
                           tau=cfg.q_tau, value_samples=cfg.q_value_samples)
    else:
        raise ValueError(f"critic must be one of {CHOICES['critic']}, got {cfg.critic!r}")
    critic.to(device)
    critic.regression = Regression(critic.trained_parameters(), lr=cfg.critic_lr, epochs=cfg.critic_epochs,
                                   minibatch=cfg.minibatch_size, max_grad_norm=cfg.max_grad_norm,
                                   generator=generator, ranks=ranks)
    return critic

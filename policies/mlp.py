"""A small flow-matching policy for state observations: an MLP velocity field over action chunks.

v_theta(x_t, t | s): concat(flatten(x_t) [H*D], sincos(t) [T], normalised state [S]) -> MLP -> [H*D].
Actions live in the env's space directly (D = the env's action dim, no padding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from policies import flow
from policies.state_policy import StatePolicy, check_config


@dataclass
class MLPFlowConfig:
    """Sizes of the MLP flow policy."""

    obs_dim: int
    action_dim: int
    horizon: int = 1
    hidden: int = 256
    depth: int = 3
    time_dim: int = 32
    obs_clip: float | None = None  # |normalised state| limit; set when statistics are fitted

    def __post_init__(self) -> None:
        check_config(self, ("obs_dim", "action_dim", "horizon", "hidden", "depth", "time_dim"))
        if self.time_dim % 2:
            raise ValueError(f"time_dim must be even (sin and cos halves), got {self.time_dim}")


class MLPFlowPolicy(StatePolicy):
    """Flow policy for low-dimensional observations (the policy of every CPU task and test)."""

    type_name = "mlp_flow"
    config_class = MLPFlowConfig

    def __init__(self, config: MLPFlowConfig) -> None:
        super().__init__(config)
        width_in = config.horizon * config.action_dim + config.time_dim + config.obs_dim
        layers: list[nn.Module] = []
        for i in range(config.depth):
            layers += [nn.Linear(width_in if i == 0 else config.hidden, config.hidden), nn.SiLU()]
        layers.append(nn.Linear(config.hidden, config.horizon * config.action_dim))
        self.net = nn.Sequential(*layers)

    def velocity(self, x_t: Tensor, t: Tensor, state: Tensor) -> Tensor:
        """v_theta for x_t [..., H, D], t [...], state [..., S] (leading dims must match)."""
        lead = x_t.shape[:-2]
        temb = flow.posemb_sincos(t.reshape(-1), self.config.time_dim).reshape(*lead, -1)
        inp = torch.cat([x_t.reshape(*lead, -1), temb, self.normalized_state(state)], dim=-1)
        return self.net(inp).reshape(*lead, self.horizon, self.action_dim)

    # -- the FlowPolicy interface (prepare, normalisation, files: StatePolicy) ------------
    def sample(self, batch: Mapping[str, Any], *, noise: Tensor | None = None, steps: int = 10,
               explore_scale: float = 0.0, explore_steps: Sequence[int] | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Euler-integrate from noise (or the given noise; zeros for evaluation) to actions."""
        state = batch["state"]
        if noise is None:
            noise = torch.randn((state.shape[0], self.horizon, self.action_dim),
                                generator=generator, device=state.device)
        return flow.euler_sample(lambda x, t: self.velocity(x, t, state), noise, steps=steps,
                                 explore_scale=explore_scale, explore_steps=explore_steps,
                                 generator=generator)

    def cfm_loss(self, batch: Mapping[str, Any], actions: Tensor, t: Tensor, noise: Tensor,
                 mask: Tensor | None = None, reduction: str = "mean") -> Tensor:
        """[B, N] losses: the state is repeated over the N (t, noise) pairs."""
        n = t.shape[1]
        state = batch["state"].unsqueeze(1).expand(-1, n, -1)
        x_t = flow.interpolate(actions, noise, t)
        v = self.velocity(x_t, t, state)
        return flow.cfm_loss(v, actions, noise, mask, reduction)

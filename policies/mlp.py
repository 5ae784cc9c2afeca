"""A small flow-matching policy for state observations: an MLP velocity field over action chunks.

v_theta(x_t, t | s): concat(flatten(x_t) [H*D], sincos(t) [T], normalised state [S]) -> MLP -> [H*D].
Actions live in the env's space directly (D = the env's action dim, no padding).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from policies import flow


@dataclass
class MLPFlowConfig:
    """Sizes of the MLP flow policy."""

    obs_dim: int
    action_dim: int
    horizon: int = 1
    hidden: int = 256
    depth: int = 3
    time_dim: int = 32


class MLPFlowPolicy(nn.Module):
    """Flow policy for low-dimensional observations (the policy of every CPU task and test)."""

    type_name = "mlp_flow"

    def __init__(self, config: MLPFlowConfig) -> None:
        super().__init__()
        self.config = config
        self.horizon, self.action_dim = config.horizon, config.action_dim
        self.critic_feature_dim = config.obs_dim
        width_in = config.horizon * config.action_dim + config.time_dim + config.obs_dim
        layers: list[nn.Module] = []
        for i in range(config.depth):
            layers += [nn.Linear(width_in if i == 0 else config.hidden, config.hidden), nn.SiLU()]
        layers.append(nn.Linear(config.hidden, config.horizon * config.action_dim))
        self.net = nn.Sequential(*layers)
        self.register_buffer("obs_mean", torch.zeros(config.obs_dim))
        self.register_buffer("obs_std", torch.ones(config.obs_dim))

    def set_obs_normalization(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Normalise observations with these statistics (e.g. from demonstrations)."""
        self.obs_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.obs_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-3))

    def fit_normalization(self, states: np.ndarray, actions: np.ndarray) -> None:
        """Observation statistics from demonstrations (actions stay in the env's [-1, 1] box)."""
        self.set_obs_normalization(states.mean(0), states.std(0))

    def velocity(self, x_t: Tensor, t: Tensor, state: Tensor) -> Tensor:
        """v_theta for x_t [..., H, D], t [...], state [..., S] (leading dims must match)."""
        lead = x_t.shape[:-2]
        temb = flow.posemb_sincos(t.reshape(-1), self.config.time_dim).reshape(*lead, -1)
        s = (state - self.obs_mean) / self.obs_std
        inp = torch.cat([x_t.reshape(*lead, -1), temb, s], dim=-1)
        return self.net(inp).reshape(*lead, self.horizon, self.action_dim)

    # -- the FlowPolicy interface --------------------------------------------------------
    def prepare(self, obs: Mapping[str, Any], device: torch.device | str) -> dict[str, Tensor]:
        """{'state': [B, S]} as float32 on `device`."""
        return {"state": torch.as_tensor(np.asarray(obs["state"]), dtype=torch.float32,
                                         device=device)}

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

    def critic_features(self, batch: Mapping[str, Any]) -> Tensor:
        """The normalised state."""
        return ((batch["state"] - self.obs_mean) / self.obs_std).detach()

    def to_env_actions(self, actions: Tensor, d_env: int) -> np.ndarray:
        """Model space is env space; clip to the [-1, 1] action box."""
        return actions[..., :d_env].clamp(-1.0, 1.0).detach().cpu().numpy()

    def from_env_actions(self, actions: np.ndarray) -> Tensor:
        """Env actions as a float tensor."""
        return torch.as_tensor(np.asarray(actions), dtype=torch.float32)

    # -- files ---------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> None:
        """config.json + model.safetensors."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"type": self.type_name,
                                                        **asdict(self.config)}, indent=2))
        save_file({k: v.contiguous() for k, v in self.state_dict().items()},
                  str(folder / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> MLPFlowPolicy:
        """Load what `save_pretrained` wrote (strict keys)."""
        folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        cfg.pop("type", None)
        policy = cls(MLPFlowConfig(**cfg))
        policy.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
        return policy

"""A diagonal-Gaussian chunk policy: the Gaussian PPO baseline for benchmarks.

Its `cfm_loss` returns the negative log-likelihood -log pi(a | s) of each chunk (summed over the
counted elements, whatever `reduction` says), so the FPO ratio exp(l_old - l_new) becomes exactly
PPO's pi_new / pi_old and the same trainer runs Gaussian PPO "the same way". (t, noise) are ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn


@dataclass
class GaussianConfig:
    """Sizes of the Gaussian policy."""

    obs_dim: int
    action_dim: int
    horizon: int = 1
    hidden: int = 256
    depth: int = 3
    init_log_std: float = -0.5


class GaussianPolicy(nn.Module):
    """mean = MLP(state), state-independent log std; chunks [B, H, D]."""

    type_name = "gaussian"

    def __init__(self, config: GaussianConfig) -> None:
        super().__init__()
        self.config = config
        self.horizon, self.action_dim = config.horizon, config.action_dim
        self.critic_feature_dim = config.obs_dim
        layers: list[nn.Module] = []
        for i in range(config.depth):
            layers += [nn.Linear(config.obs_dim if i == 0 else config.hidden, config.hidden), nn.Tanh()]
        layers.append(nn.Linear(config.hidden, config.horizon * config.action_dim))
        self.mean_net = nn.Sequential(*layers)
        self.log_std = nn.Parameter(torch.full((config.horizon, config.action_dim), config.init_log_std))
        self.register_buffer("obs_mean", torch.zeros(config.obs_dim))
        self.register_buffer("obs_std", torch.ones(config.obs_dim))

    def _mean(self, state: Tensor) -> Tensor:
        s = (state - self.obs_mean) / self.obs_std
        return self.mean_net(s).view(*state.shape[:-1], self.horizon, self.action_dim)

    def fit_normalization(self, states: np.ndarray, actions: np.ndarray) -> None:
        """Observation statistics."""
        self.obs_mean.copy_(torch.as_tensor(states.mean(0), dtype=torch.float32))
        self.obs_std.copy_(torch.as_tensor(states.std(0), dtype=torch.float32).clamp_min(1e-3))

    def prepare(self, obs: Mapping[str, Any], device: torch.device | str) -> dict[str, Tensor]:
        """{'state': [B, S]}."""
        return {"state": torch.as_tensor(np.asarray(obs["state"]), dtype=torch.float32, device=device)}

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

    def critic_features(self, batch: Mapping[str, Any]) -> Tensor:
        """The normalised state."""
        return ((batch["state"] - self.obs_mean) / self.obs_std).detach()

    def to_env_actions(self, actions: Tensor, d_env: int) -> np.ndarray:
        """Clip to the action box."""
        return actions[..., :d_env].clamp(-1.0, 1.0).detach().cpu().numpy()

    def from_env_actions(self, actions: np.ndarray) -> Tensor:
        """Env actions as a tensor."""
        return torch.as_tensor(np.asarray(actions), dtype=torch.float32)

    def save_pretrained(self, folder: str | Path) -> None:
        """config.json + model.safetensors."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"type": self.type_name, **asdict(self.config)}))
        weights = {k: v.contiguous() for k, v in self.state_dict().items()}
        save_file(weights, str(folder / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> GaussianPolicy:
        """Load what `save_pretrained` wrote (strict keys)."""
        cfg = json.loads((Path(folder) / "config.json").read_text())
        cfg.pop("type", None)
        policy = cls(GaussianConfig(**cfg))
        policy.load_state_dict(load_file(str(Path(folder) / "model.safetensors")), strict=True)
        return policy

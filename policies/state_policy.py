"""Shared plumbing of the small state-observation policies (MLP flow, Gaussian baseline):
a normalised "state" input, actions in the env's [-1, 1] box, and config.json + model.safetensors."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

# Guards for statistics fitted on demonstrations. A dimension that barely moves in them (an
# object nobody touches, a fixed height) gets std ~0; dividing by it turns a millimetre bump into
# hundreds of standard deviations, and the cloned policy outputs wild actions the moment anything
# moves. So a fitted std has a floor (robot states: metres, radians, unit quaternions) and the
# normalised state is clipped. A policy without fitted statistics sees its raw state, unclipped.
OBS_STD_FLOOR = 0.05
OBS_CLIP = 5.0


def check_config(config: Any, sizes: tuple[str, ...]) -> None:
    """ValueError naming the first bad value of a small policy's config (a config.json may hold
    anything): `sizes` are integers >= 1, `obs_clip` is null or a finite number > 0."""
    for name in sizes:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    clip = config.obs_clip
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float)
                             or not 0 < clip < math.inf):
        raise ValueError(f"obs_clip must be null or a finite number > 0, got {clip!r}")


class StatePolicy(nn.Module):
    """Base class: subclasses set `type_name`, `config_class` and build their nets."""

    type_name: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.horizon, self.action_dim = config.horizon, config.action_dim
        self.critic_feature_dim = config.obs_dim
        self.register_buffer("obs_mean", torch.zeros(config.obs_dim))
        self.register_buffer("obs_std", torch.ones(config.obs_dim))

    def set_obs_normalization(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Normalise observations with these statistics (e.g. from demonstrations)."""
        self.obs_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.obs_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(OBS_STD_FLOOR))

    def fit_normalization(self, states: np.ndarray, actions: np.ndarray) -> None:
        """Observation statistics from data (actions stay in the env's [-1, 1] box); from now on
        the normalised state is clipped to +-OBS_CLIP (saved in the config)."""
        self.set_obs_normalization(states.mean(0), states.std(0))
        self.config.obs_clip = OBS_CLIP

    def normalized_state(self, state: Tensor) -> Tensor:
        """(state - mean) / std, clipped to +-config.obs_clip when that is set."""
        z = (state - self.obs_mean) / self.obs_std
        clip = self.config.obs_clip
        return z if clip is None else z.clamp(-clip, clip)

    def prepare(self, obs: Mapping[str, Any], device: torch.device | str) -> dict[str, Tensor]:
        """{'state': [B, S]} as float32 on `device`."""
        return {"state": torch.as_tensor(np.asarray(obs["state"]), dtype=torch.float32, device=device)}

    def critic_features(self, batch: Mapping[str, Any]) -> Tensor:
        """The normalised state."""
        return self.normalized_state(batch["state"]).detach()

    def to_env_actions(self, actions: Tensor, d_env: int) -> np.ndarray:
        """Model space is env space; clip to the [-1, 1] action box."""
        return actions[..., :d_env].clamp(-1.0, 1.0).detach().cpu().numpy()

    def from_env_actions(self, actions: np.ndarray) -> Tensor:
        """Env actions as a float tensor."""
        return torch.as_tensor(np.asarray(actions), dtype=torch.float32)

    def save_pretrained(self, folder: str | Path) -> None:
        """config.json + model.safetensors."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"type": self.type_name, **asdict(self.config)},
                                                       indent=2))
        weights = {k: v.contiguous() for k, v in self.state_dict().items()}
        save_file(weights, str(folder / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> Self:
        """Load what `save_pretrained` wrote (strict keys)."""
        folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        cfg.pop("type", None)
        policy = cls(cls.config_class(**cfg))
        policy.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
        return policy

"""The interface every flow policy offers to a trainer (which never sees a policy's internals).

Shapes: B batch, N Monte-Carlo (t, noise) pairs, H action horizon (chunk), D the policy's
action dim (pi0 pads to 32; the task uses the first `d_env` dims).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn


@runtime_checkable
class FlowPolicy(Protocol):
    """A flow-matching policy: samples action chunks and scores them with a CFM loss."""

    horizon: int  # H: steps per action chunk
    action_dim: int  # D: the model's (possibly padded) action dim
    critic_feature_dim: int  # F: size of `critic_features`

    def prepare(self, obs: Mapping[str, Any], device: torch.device | str) -> dict[str, Any]:
        """Batched env observations (numpy, lists of prompts) -> model inputs on `device`."""
        ...

    def sample(self, batch: Mapping[str, Any], *, noise: Tensor | None = None, steps: int = 10,
               explore_scale: float = 0.0, explore_steps: Sequence[int] | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Action chunks [B, H, D] in model space. noise=None draws it; zeros = zero-noise eval."""
        ...

    def cfm_loss(self, batch: Mapping[str, Any], actions: Tensor, t: Tensor, noise: Tensor,
                 mask: Tensor | None = None, reduction: str = "mean") -> Tensor:
        """Per-sample CFM losses [B, N] for given t [B, N] and noise [B, N, H, D]."""
        ...

    def critic_features(self, batch: Mapping[str, Any]) -> Tensor:
        """A detached feature vector [B, F] per observation for critics."""
        ...

    def fit_normalization(self, states: np.ndarray, actions: np.ndarray) -> None:
        """Set input/output normalisation statistics from data (states [M, S], actions [M, d])."""
        ...

    def to_env_actions(self, actions: Tensor, d_env: int) -> np.ndarray:
        """Model-space chunks [B, H, D] -> env actions [B, H, d_env] (unnormalised, unpadded)."""
        ...

    def from_env_actions(self, actions: np.ndarray) -> Tensor:
        """Env actions [B, H, d_env] -> model space [B, H, D] (normalised, zero-padded)."""
        ...

    def save_pretrained(self, folder: str | Path) -> None:
        """Write the policy's folder (config.json, model.safetensors, ...), loadable by `make_policy`."""
        ...

    # -- every policy is a torch Module: what a trainer uses of that ---------------------------
    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """The weights (those with requires_grad are trained)."""
        ...

    def state_dict(self) -> dict[str, Tensor]:
        """Weights by name."""
        ...

    def to(self, device: torch.device | str) -> FlowPolicy:
        """The policy on `device`."""
        ...

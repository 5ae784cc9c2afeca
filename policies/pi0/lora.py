"""Low-rank adapters on the attention and MLP projections of both Gemma stacks.

A `LoRALinear` keeps the wrapped layer's `weight` (frozen) under the same key and adds float32
`lora_a` [r, in] and `lora_b` [out, r] (zero, so a fresh adapter changes nothing):
y = x W^T + (alpha / r) * x A^T B^T. `merged_state_dict` folds the adapters into the weights and
drops their keys, so a saved checkpoint has exactly the reference keys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoRALinear(nn.Module):
    """A bias-free linear layer plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        if base.bias is not None:
            raise ValueError("LoRALinear wraps bias-free projections only")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.weight.requires_grad_(False)
        self.scale = alpha / rank
        device = base.weight.device
        self.lora_a = nn.Parameter(torch.empty(rank, self.in_features, device=device))
        self.lora_b = nn.Parameter(torch.zeros(self.out_features, rank, device=device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x, self.weight)
        # .float(): a sharded bf16 run gathers the adapters in bf16; they still compute in float32
        delta = F.linear(F.linear(x.float(), self.lora_a.float()), self.lora_b.float()) * self.scale
        return y + delta.to(y.dtype)


def add_lora(stacks: list[nn.Module], rank: int, alpha: float) -> list[nn.Parameter]:
    """Wrap every target projection inside `stacks` (idempotent); returns the adapter parameters."""
    params: list[nn.Parameter] = []
    for stack in stacks:
        for module in list(stack.modules()):
            for name in TARGETS:
                child = getattr(module, name, None)
                if isinstance(child, nn.Linear):
                    setattr(module, name, LoRALinear(child, rank, alpha))
                child = getattr(module, name, None)
                if isinstance(child, LoRALinear):
                    params += [child.lora_a, child.lora_b]
    return params


def merged_state_dict(model: nn.Module, state: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """`state` (default `model.state_dict()`) with every adapter of `model` folded into its weight
    and the adapter keys removed."""
    state = model.state_dict() if state is None else state
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            prefix = f"{name}." if name else ""
            weight = state[f"{prefix}weight"]
            delta = module.scale * state.pop(f"{prefix}lora_b").float() @ state.pop(f"{prefix}lora_a").float()
            state[f"{prefix}weight"] = (weight.float() + delta).to(weight.dtype).detach()
    return state

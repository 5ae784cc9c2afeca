"""FSDP2 sharding of the policy across torchrun ranks (config `shard = "fsdp"`).

Each rank keeps 1/world of every policy parameter, of its gradient and of its Adam state; a block's
full weights are gathered for its module call and freed right after (`fully_shard` on each block
the policy names in `shard_units()`, with the dtype it computes in and its methods other than
`forward`, then on the root for the rest). The trainer calls `sample`, `cfm_loss` and
`critic_features`, never `forward`, so those are registered as FSDP forward methods of the root.
FSDP reduce-scatters (averages) the gradients itself: `Ranks.average_gradients` skips sharded
parameters and `clip_grad_norm` takes the norm over all ranks' shards. Checkpoints hold full
tensors: the weights and the optimiser state are gathered to rank 0 (torch.distributed.checkpoint's
state_dict helpers) and written in the usual layout; a resume builds the full policy, shards it and
loads the full optimiser state, which each rank cuts to its shard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method
from torch.distributed.tensor import DTensor

from fpoctl.errors import FpoctlError
from fpoctl.train.distributed import Ranks
from policies.base import FlowPolicy

SHARD_MODES = ("none", "fsdp")
FORWARD_METHODS = ("sample", "cfm_loss", "critic_features")
"""The FlowPolicy entry points the trainer calls on the policy."""
GATHER_TO_RANK0 = StateDictOptions(full_state_dict=True, cpu_offload=True)


def shard_policy(policy: nn.Module, ranks: Ranks, device: torch.device) -> None:
    """Shard `policy` in place over all ranks (its weights must be equal on every rank already).
    When a block computes in a lower precision, every parameter is first made float32: the shards
    are float32 master weights and FSDP casts a block's gathered copy for its call."""
    units = getattr(policy, "shard_units", None)
    if units is None:
        raise FpoctlError(f"shard=fsdp needs a policy that names its blocks (pi0); "
                          f"{type(policy).__name__} is small enough to replicate: use shard=none")
    mesh = init_device_mesh(device.type, (ranks.world,))
    plan = units()
    if any(dtype is not None for _, dtype, _ in plan):
        for param in policy.parameters():
            param.data = param.data.float()
    for module, dtype, methods in plan:
        mixed = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32 if dtype else None)
        fully_shard(module, mesh=mesh, mp_policy=mixed)
        for method in methods:
            register_fsdp_forward_method(module, method)
    fully_shard(policy, mesh=mesh)
    for name in FORWARD_METHODS:
        _register(policy, name)


def advice(policy: FlowPolicy, shard: str, world: int) -> str | None:
    """A warning for the run's events when the sharding choice looks wrong, else None."""
    if shard == "fsdp" and world == 1:
        return "shard=fsdp in a single process: nothing to shard, the policy stays whole"
    if shard == "none" and world > 1 and getattr(policy, "scope", None) == "full":
        return ("pi0 with scope=full keeps the whole model, its gradients and Adam state on every "
                "rank; --set shard=fsdp shards them over the ranks")
    return None


def _register(policy: nn.Module, name: str) -> None:
    """Make `policy.name` an FSDP forward method. FSDP keeps the root's own parameters gathered
    after a call until the backward pass frees them; a call nothing will differentiate (sampling,
    features, CFM losses under no_grad) frees them at once."""
    register_fsdp_forward_method(policy, name)
    hooked = getattr(policy, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        out = hooked(*args, **kwargs)
        if not (isinstance(out, Tensor) and out.requires_grad):
            policy.reshard()  # type: ignore[operator]
        return out

    setattr(policy, name, call)


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> Tensor:
    """`clip_grad_norm_` that also takes sharded gradients: their norm is the norm over all
    ranks' shards (the same number on every rank). Returns the norm before clipping."""
    params = list(params)
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads)
    if isinstance(total, DTensor):
        total = total.full_tensor()
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total


def full_weights(policy: nn.Module) -> dict[str, Tensor]:
    """The policy's full weights on rank 0's CPU (an empty dict on the other ranks); every rank
    must call it."""
    return get_model_state_dict(policy, options=GATHER_TO_RANK0)


def full_optimizer_state(policy: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimiser's full state keyed by parameter name, on rank 0 (empty elsewhere); every rank
    must call it."""
    return get_optimizer_state_dict(policy, optimizer, options=GATHER_TO_RANK0)


def load_full_optimizer_state(policy: nn.Module, optimizer: torch.optim.Optimizer,
                              state: dict[str, Any]) -> None:
    """Load a `full_optimizer_state` (the same on every rank); each rank keeps its shard. A
    parameter that never had a gradient (e.g. the vision tower on a task without cameras) has no
    saved state; the loader first gives every parameter a state (a zero-lr step), so those are
    dropped again: the optimiser is exactly the saved one."""
    set_optimizer_state_dict(policy, optimizer, state,
                             options=StateDictOptions(full_state_dict=True, strict=False))
    for name, param in policy.named_parameters():
        if name not in state["state"]:
            optimizer.state.pop(param, None)


class GatheredPolicy:
    """What rank 0 saves of a sharded policy: the gathered full weights, written by the policy in
    its own layout."""

    def __init__(self, policy: Any, weights: Mapping[str, Tensor]) -> None:
        self.policy, self.weights = policy, weights

    def save_pretrained(self, folder: str | Path) -> None:
        """The policy's `save_pretrained` with the full weights."""
        self.policy.save_pretrained(folder, state_dict=self.weights)

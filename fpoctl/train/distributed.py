"""Data parallelism across torchrun ranks, by explicit collectives on the learner's gradients.

Each rank collects its own rollout (own envs, own seed); every optimiser step averages the
gradients of all ranks before clipping, so the parameters stay identical on every rank and one
step equals a single-process step on the union of the ranks' minibatches (equal sizes).
Why not DDP: DDP synchronises through hooks prepared in `forward()`, but the trainer drives the
policy through methods (`cfm_loss`, `sample`, `critic_features`); an explicit all-reduce covers
actor and critics alike and lets the ranks agree on skipping a non-finite step. With
`shard = "fsdp"` the policy is sharded instead (`sharding.py`) and FSDP averages its gradients.
`LOCAL` (one process) turns every collective into a no-op, so single-process code is unchanged.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.tensor import DTensor

from fpoctl import metric_names as m
from fpoctl.errors import FpoctlError

RANK_SEED_STRIDE = 1_000_003
"""Rank r seeds its envs and samplers with seed + r * RANK_SEED_STRIDE (rank 0 = the run's seed)."""

SUMMED = (m.ENV_STEPS, m.PERF_ENV_STEPS_PER_S, m.ROLLOUT_EPISODES, m.ROLLOUT_CRASHED)
"""Metrics that add up over ranks; the rest are averaged (`fpo/ratio_max`: the maximum)."""


class RankLost(FpoctlError):
    """A peer rank died or stopped answering: the run fails with this reason."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks, and the collectives the trainer needs."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes to the store and the checkpoints."""
        return self.rank == 0

    def average_gradients(self, params: Iterable[Tensor], bucket_numel: int = 1 << 26) -> None:
        """Replace each parameter's gradient by its mean over ranks (a missing one counts as 0);
        gradients travel in flat buckets of one device and dtype, at most `bucket_numel` long.
        Sharded (FSDP) parameters are skipped: FSDP has averaged their gradients already."""
        if self.world == 1:
            return
        buckets: dict[tuple[torch.device, torch.dtype], list[list[Tensor]]] = {}
        for p in params:
            if isinstance(p, DTensor):
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            groups = buckets.setdefault((p.grad.device, p.grad.dtype), [[]])
            if groups[-1] and sum(g.numel() for g in groups[-1]) + p.numel() > bucket_numel:
                groups.append([])
            groups[-1].append(p.grad)
        for grads in (g for groups in buckets.values() for g in groups):
            flat = torch.cat([g.reshape(-1) for g in grads])
            self._all_reduce(flat)
            flat /= self.world
            offset = 0
            for g in grads:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()

    def all_true(self, flag: bool) -> bool:
        """True when `flag` holds on every rank."""
        return flag if self.world == 1 else self._reduce_scalar(float(flag), dist.ReduceOp.MIN) > 0

    def any_true(self, flag: bool) -> bool:
        """True when `flag` holds on some rank (e.g. one rank was asked to stop)."""
        return flag if self.world == 1 else self._reduce_scalar(float(flag), dist.ReduceOp.MAX) > 0

    def mean(self, value: float) -> float:
        """The mean of a float over ranks."""
        return value if self.world == 1 else self._reduce_scalar(value, dist.ReduceOp.SUM) / self.world

    def normalize(self, x: Tensor, eps: float = 1e-8) -> Tensor:
        """(x - mean) / (std + eps) with the mean and (unbiased) std of all ranks' x together."""
        if self.world == 1:
            return (x - x.mean()) / (x.std() + eps)
        x64 = x.detach().double().cpu()
        stats = torch.stack([torch.tensor(float(x64.numel()), dtype=torch.float64), x64.sum(),
                             x64.pow(2).sum()])
        self._all_reduce(stats)
        n, total, squares = stats.tolist()
        mean = total / n
        std = max((squares - n * mean * mean) / (n - 1), 0.0) ** 0.5
        return (x - mean) / (std + eps)

    def broadcast_(self, tensors: Iterable[Tensor]) -> None:
        """Overwrite the tensors with rank 0's (so every rank starts from the same weights)."""
        if self.world == 1:
            return
        for t in tensors:
            self._collective(dist.broadcast, t.data, src=0)

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (on every rank)."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        self._collective(dist.all_gather_object, out, obj)
        return out

    def close(self) -> None:
        """Leave the process group."""
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    # -- plumbing ---------------------------------------------------------------------------
    def _reduce_scalar(self, value: float, op: dist.ReduceOp) -> float:
        t = torch.tensor([value], dtype=torch.float64)
        self._all_reduce(t, op)
        return float(t.item())

    def _all_reduce(self, t: Tensor, op: dist.ReduceOp = dist.ReduceOp.SUM) -> None:
        self._collective(dist.all_reduce, t, op=op)

    def _collective(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except RuntimeError as exc:  # DistBackendError and gloo's "Connection closed by peer"
            detail = re.sub(r"^\[[^\]]*\]\s*", "", str(exc).strip()).split(". ")[0] or type(exc).__name__
            raise RankLost(f"rank {self.rank}: a peer rank died or stopped answering ({detail}); "
                           "see the run's train.log") from None


LOCAL = Ranks()
"""The single-process case."""


def from_env(timeout_s: float = 7200.0) -> Ranks:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT);
    LOCAL when not under torchrun. With CUDA, NCCL carries GPU tensors and gloo the rest."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return LOCAL
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(),
                 local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def combine_metrics(per_rank: list[dict[str, float]]) -> dict[str, float]:
    """One metrics dict from every rank's: sums for counts and rates, max for ratio_max, else means
    (over the ranks that have the key: e.g. only some saw an episode end)."""
    keys = dict.fromkeys(k for m in per_rank for k in m)
    out = {}
    for key in keys:
        values = [m[key] for m in per_rank if key in m]
        if key in SUMMED:
            out[key] = float(sum(values))
        elif key == m.RATIO_MAX:
            out[key] = float(max(values))
        else:
            out[key] = float(sum(values) / len(values))
    return out

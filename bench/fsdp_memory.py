"""Learner memory per rank with and without FSDP2 sharding (`shard = "fsdp"`), pi0 with scope "full".

Measured: pi0-tiny on the CPU, 2 gloo ranks, after one FPO update with Adam: bytes of parameters,
gradients and Adam state each rank holds, sharded or as a full replica (`shard = "none"`).
Expected: the same accounting for the full-size pi0 from its exact parameter counts (meta device,
nothing allocated), float32 and bfloat16, 1 (replica) / 2 / 4 / 8 ranks. Sharded runs keep float32
master weights (bf16 = the blocks compute in bf16); a replica stores what `dtype` says, with Adam
state in the parameters' dtype. Activations are not counted; "gathered" is the largest transient:
the root's own weights, two gathered blocks (the one computing and the next) and one block's
unsharded gradient in float32 (FSDP reduce-scatters in float32); pi0's largest block is the token
embedding (257k x 2048).

Run: .venv/bin/python bench/fsdp_memory.py [--json bench/results/fsdp_memory.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the rank helpers live in tests/

from torch.distributed.tensor import DTensor  # noqa: E402

from fpoctl.train.distributed import LOCAL, Ranks  # noqa: E402
from fpoctl.train.sharding import shard_policy  # noqa: E402
from policies.pi0 import Pi0Policy  # noqa: E402
from policies.pi0.config import full_config  # noqa: E402
from tests.dist_pi0 import CPU, batch, half, run_ranks  # noqa: E402
from tests.pi0_helpers import tiny_policy, train_tokenizer  # noqa: E402

GB = 1e9


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


def _bytes(tensors: Any) -> int:
    return sum(_local(t).numel() * _local(t).element_size() for t in tensors)


def held_bytes(policy: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes this rank holds of parameters, gradients and Adam state (its shards when sharded)."""
    params = list(policy.parameters())
    state = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
    return {"params": _bytes(params), "grads": _bytes(p.grad for p in params if p.grad is not None),
            "adam": _bytes(state)}


def measure_rank(rank: int, ranks: Ranks, tokenizer: Path, out: Path, shard: bool) -> None:
    """One FPO update on this rank's half of the batch; save what the rank holds."""
    from fpoctl.train.update import fpo_update
    from tests.dist_pi0 import CFG

    policy = tiny_policy(tokenizer, scope="full")
    if shard:
        shard_policy(policy, ranks, CPU)
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    rollout, adv = half(*batch(), rank)
    fpo_update(policy, optimizer, rollout, adv, CFG, CPU, torch.Generator().manual_seed(0),
               ranks=ranks if shard else LOCAL)
    torch.save(held_bytes(policy, optimizer), out / f"{'fsdp' if shard else 'none'}_{rank}.pt")


def measured() -> dict[str, Any]:
    """pi0-tiny, 2 ranks: per-rank bytes, replicated vs sharded."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        tokenizer = train_tokenizer(out)
        run_ranks(measure_rank, tokenizer, out, True)
        torch.set_num_threads(1)
        measure_rank(0, LOCAL, tokenizer, out, False)  # a replica holds what one process holds
        return {"none": torch.load(out / "none_0.pt"),
                "fsdp": [torch.load(out / f"fsdp_{r}.pt") for r in (0, 1)]}


def expected(dtype: str, ranks: list[int]) -> dict[str, Any]:
    """Full-size pi0 with scope "full": GB per rank for each number of ranks (1 = replicas)."""
    with torch.device("meta"):
        policy = Pi0Policy(full_config(dtype=dtype), scope="full")
    params = dict(policy.named_parameters())
    total = sum(p.numel() for p in params.values())
    trainable = sum(p.numel() for p in params.values() if p.requires_grad)
    stored = sum(p.numel() * p.element_size() for p in params.values())
    stored_trainable = sum(p.numel() * p.element_size() for p in params.values() if p.requires_grad)
    units = policy.shard_units()
    in_units = {id(p) for m, _, _ in units for p in m.parameters()}
    root = sum(p.numel() for p in params.values() if id(p) not in in_units) * 4
    trained = [(sum(p.numel() for p in m.parameters()), d) for m, d, _ in units
               if next(m.parameters()).requires_grad]  # the frozen expert lm_head is never gathered
    gathered = sorted((numel * (torch.finfo(d).bits // 8 if d else 4) for numel, d in trained), reverse=True)
    transient = root + gathered[0] + gathered[1] + 4 * max(numel for numel, _ in trained)
    rows = {}
    for n in ranks:
        if n == 1:
            row = {"params": stored, "grads": stored_trainable, "adam": 2 * stored_trainable, "gathered": 0}
        else:  # float32 master shards (padding to a multiple of n is negligible)
            row = {"params": 4 * total / n, "grads": 4 * trainable / n, "adam": 8 * trainable / n,
                   "gathered": transient}
        row["total"] = sum(row.values())
        rows[n] = {k: round(v / GB, 2) for k, v in row.items()}
    return {"parameters": total, "trainable": trainable, "per_rank_gb": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    tiny = measured()
    print("pi0-tiny, 2 ranks, bytes per rank (params / grads / adam):")
    print(f"  replica   : {tiny['none']}")
    for r, held in enumerate(tiny["fsdp"]):
        print(f"  fsdp rank {r}: {held}")
    full = {dtype: expected(dtype, [1, 2, 4, 8]) for dtype in ("float32", "bfloat16")}
    for dtype, result in full.items():
        print(f"pi0 ({result['parameters'] / 1e9:.2f} B parameters, {result['trainable'] / 1e9:.2f} B "
              f"trainable), {dtype}, GB per rank:")
        for n, row in result["per_rank_gb"].items():
            label = "replicas" if n == 1 else f"fsdp x{n}"
            print(f"  {label:9s} " + "  ".join(f"{k} {v:6.2f}" for k, v in row.items()))
    if args.json:
        results = {"tiny_2_ranks_bytes": tiny, "pi0_full_scope": full}
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

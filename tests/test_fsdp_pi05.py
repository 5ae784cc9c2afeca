"""FSDP2 sharding of pi0.5 (scope "full") on the CPU with gloo and 2 processes: the blocks pi0.5
names (its adaRMS norms among them) shard, and one sharded FPO update equals one process on the
union of the ranks' batches (the rank machinery of tests/dist_pi0.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fpoctl.train.distributed import Ranks
from fpoctl.train.sharding import full_weights, shard_policy
from tests.dist_pi0 import CPU, batch, half, param_bytes, run_ranks, update
from tests.pi0_helpers import one_torch_thread
from tests.pi05_helpers import tiny_pi05


def sharded_pi05_update(rank: int, ranks: Ranks, tokenizer: Path, out: Path, dtype: str, scope: str) -> None:
    """Shard a pi05-tiny, one update on this rank's half of the batch, save the gathered weights
    (rank 0) and this rank's bytes of parameters."""
    policy = tiny_pi05(tokenizer, scope=scope, dtype=dtype)
    shard_policy(policy, ranks, CPU)
    update(policy, *half(*batch(), rank), ranks=ranks, device=CPU)
    weights = full_weights(policy)
    if rank == 0:
        torch.save(weights, out / "weights.pt")
    torch.save(param_bytes(policy), out / f"bytes_{rank}.pt")


@pytest.mark.parametrize(("dtype", "atol"), [("float32", 1e-6), ("bfloat16", None)])
def test_a_sharded_pi05_update_equals_one_process_and_halves_the_parameters(
        tmp_path: Path, tokenizer: Path, dtype: str, atol: float | None) -> None:
    run_ranks(sharded_pi05_update, tokenizer, tmp_path, dtype, "full")
    sharded = torch.load(tmp_path / "weights.pt")
    with one_torch_thread():
        reference = tiny_pi05(tokenizer, scope="full", dtype=dtype)
        before = {k: v.float().clone() for k, v in reference.state_dict().items()}
        update(reference, *batch())
    after = {k: v.float() for k, v in reference.state_dict().items()}
    moved = [k for k in after if not torch.equal(before[k], after[k])]
    assert any(".dense." in k for k in moved) and "time_mlp_in.weight" in moved
    if atol is not None:
        for name, value in after.items():
            assert torch.allclose(sharded[name], value, rtol=1e-5, atol=atol), name
    else:  # bf16 compute: the ranks' gradients are rounded separately; agree to bf16 precision
        diff = sum((sharded[k].float() - after[k]).pow(2).sum() for k in after) ** 0.5
        step = sum((after[k] - before[k]).pow(2).sum() for k in after) ** 0.5
        assert step > 0 and diff / step < 0.05, float(diff / step)
    full = sum(v.numel() * 4 for v in before.values())
    per_rank = [torch.load(tmp_path / f"bytes_{r}.pt") for r in (0, 1)]
    assert max(per_rank) <= full / 2 * 1.1  # each rank ~half of the float32 weights (padding)

"""FSDP2 sharding of pi0 on CUDA GPUs (NCCL), the paths the CPU tests cannot reach: CUDA streams,
gathers and reduce-scatters over NCCL, bf16 compute on float32 master shards, the full-size model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.dist_pi0 import batch, full_size_step, run_ranks, sharded_update, update
from tests.pi0_helpers import tiny_policy

pytestmark = pytest.mark.gpu
two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")


def spawn(*args: object, world: int) -> None:
    """Ranks that use CUDA are spawned (a forked child cannot initialise CUDA)."""
    run_ranks(*args, world=world, start_method="spawn")  # type: ignore[arg-type]


def test_a_sharded_update_on_one_gpu_equals_the_unsharded_one(tmp_path: Path, tokenizer: Path) -> None:
    spawn(sharded_update, tokenizer, tmp_path, "float32", "cuda", world=1)
    sharded = torch.load(tmp_path / "weights_1.pt")
    reference = tiny_policy(tokenizer, scope="full").cuda()
    update(reference, *batch(), device=torch.device("cuda"))
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(sharded[name], value.cpu(), rtol=1e-4, atol=1e-5, msg=name)


@two_gpus
@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 1e-4), ("bfloat16", 0.02)])
def test_two_gpus_take_the_step_one_gpu_takes_on_the_union(tmp_path: Path, tokenizer: Path, dtype: str,
                                                         tolerance: float) -> None:
    spawn(sharded_update, tokenizer, tmp_path, dtype, "cuda", world=2)
    spawn(sharded_update, tokenizer, tmp_path, dtype, "cuda", world=1)
    two, one = (torch.load(tmp_path / f"weights_{w}.pt") for w in (2, 1))
    before = tiny_policy(tokenizer, scope="full", dtype=dtype).state_dict()
    diff = sum((two[k] - one[k]).pow(2).sum() for k in before) ** 0.5
    step = sum((one[k] - before[k].float()).pow(2).sum() for k in before) ** 0.5
    assert step > 0 and diff / step < tolerance, float(diff / step)


@two_gpus
@pytest.mark.slow
def test_full_size_pi0_trains_sharded_with_a_share_of_the_weights_per_gpu(tmp_path: Path,
                                                                          tokenizer: Path) -> None:
    world = torch.cuda.device_count()
    spawn(full_size_step, tokenizer, tmp_path, world=world)
    total = 4 * 3_501_372_176  # float32 master weights of pi0 (bench/fsdp_memory.py)
    for rank in range(world):
        out = torch.load(tmp_path / f"full_{rank}.pt")
        assert out["updates"] >= 1
        assert out["param_bytes"] <= total / world * 1.01
        print(f"rank {rank}/{world}: {out['param_bytes'] / 1e9:.2f} GB of weights, "
              f"peak {out['peak'] / 1e9:.1f} GB")

"""FSDP2 sharding of pi0 (scope "full") on the CPU with gloo and 2 processes: one sharded update
equals a single-process update on the union of the ranks' data, a checkpoint gathers the full
state and a resume re-shards it exactly, each rank holds half the parameters, and a sharded
`fpoctl finetune --nproc 2` logs its metrics once, from rank 0."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from fpoctl.store import Store
from fpoctl.train import checkpoint as ckpt
from fpoctl.train.sharding import advice
from policies.registry import load_policy
from tests.conftest import run_cli
from tests.dist_pi0 import (
    batch,
    checkpoint_and_resume,
    run_ranks,
    sharded_update,
    update,
    whole_layers_per_call,
)
from tests.pi0_helpers import one_torch_thread, tiny_policy


@pytest.mark.parametrize(("scope", "min_moved"), [("full", 60), ("lora", 30)])
def test_a_sharded_update_equals_one_process_on_the_union_and_halves_the_parameters(
        tmp_path: Path, tokenizer: Path, scope: str, min_moved: int) -> None:
    run_ranks(sharded_update, tokenizer, tmp_path, "float32", "cpu", scope)
    sharded = torch.load(tmp_path / "weights_2.pt")
    with one_torch_thread():
        reference = tiny_policy(tokenizer, scope=scope)
        before = {k: v.clone() for k, v in reference.state_dict().items()}
        update(reference, *batch())
    moved = 0
    for name, value in reference.state_dict().items():
        assert sharded[name].dtype == value.dtype
        assert torch.allclose(sharded[name], value, rtol=1e-5, atol=1e-6), name
        moved += not torch.equal(before[name], value)
    assert moved > min_moved  # full: vision tower, both experts, embedding, heads; lora: adapters, heads
    full = sum(v.numel() * v.element_size() for v in before.values())
    per_rank = [torch.load(tmp_path / f"bytes_2_{r}.pt") for r in (0, 1)]
    assert sum(per_rank) >= full and max(per_rank) <= full / 2 * 1.1  # each rank ~half (padding)


def test_each_layer_is_whole_only_during_its_own_call(tmp_path: Path, tokenizer: Path) -> None:
    run_ranks(whole_layers_per_call, tokenizer, tmp_path)
    for rank in (0, 1):
        record = torch.load(tmp_path / f"whole_{rank}.pt")
        computed = [layers for layers, _ in record["calls"]]
        # cfm_loss: vision layers, then the language model over the prefix, then the expert over
        # the suffix; sample: the prefix once, then the expert at each of 2 Euler steps
        vision, prefix = [{"vision.0"}, {"vision.1"}], [{"lm.0"}, {"lm.1"}]
        suffix = [{"expert.0"}, {"expert.1"}]
        assert computed == vision + prefix + suffix + vision + prefix + suffix * 2
        for layers, whole in record["calls"]:
            assert whole == layers, f"rank {rank}: computing {layers} with {whole} gathered"
        assert record["after"] == set()  # everything resharded after the backward pass and sampling


@pytest.mark.parametrize("scope", ["full", "lora"])
def test_bfloat16_shards_compute_in_bf16_on_float32_masters_the_same_on_one_or_two_ranks(
        tmp_path: Path, tokenizer: Path, scope: str) -> None:
    run_ranks(sharded_update, tokenizer, tmp_path, "bfloat16", "cpu", scope)
    run_ranks(sharded_update, tokenizer, tmp_path, "bfloat16", "cpu", scope, world=1)
    two, one = (torch.load(tmp_path / f"weights_{w}.pt") for w in (2, 1))
    before = tiny_policy(tokenizer, scope=scope, dtype="bfloat16").state_dict()
    assert all(v.dtype == torch.float32 for v in two.values())  # master weights
    # the ranks' bf16 gradients are rounded separately, so the two agree to bf16 precision only
    diff = sum((two[k] - one[k]).pow(2).sum() for k in before) ** 0.5
    step = sum((one[k] - before[k].float()).pow(2).sum() for k in before) ** 0.5
    assert step > 0 and diff / step < 0.02, float(diff / step)


def test_a_sharded_checkpoint_resumes_re_sharded_and_repeats_the_next_iteration(
        tmp_path: Path, tokenizer: Path) -> None:
    run_ranks(checkpoint_and_resume, tokenizer, tmp_path)
    ckpt.verify_checkpoint(tmp_path / "ckpt")
    saved = load_policy(tmp_path / "ckpt" / "policy")  # the usual LeRobot layout, full tensors
    assert sum(p.numel() for p in saved.parameters()) == sum(
        p.numel() for p in tiny_policy(tokenizer).parameters())
    actor_opt = ckpt.load_trainer_state(tmp_path / "ckpt")["actor_opt"]  # full, by parameter name
    assert any(k.startswith("paligemma_with_expert.paligemma.model.language_model.")
               for k in actor_opt["state"])
    timing = {"perf/env_steps_per_s", "perf/update_s", "perf/rollout_s"}
    for rank in (0, 1):
        out = torch.load(tmp_path / f"resume_{rank}.pt")
        assert out["same_state"], f"rank {rank}: optimiser, critic, RNG or counters differ after loading"
        original, resumed = ({k: v for k, v in m.items() if k not in timing} for m in out["metrics"])
        assert original == resumed
    weights_original, weights_resumed = torch.load(tmp_path / "resume_0.pt")["weights"]
    assert weights_original.keys() == weights_resumed.keys()
    assert all(torch.equal(weights_original[k], weights_resumed[k]) for k in weights_original)


def test_sharded_finetune_with_two_processes_logs_each_metric_once(home: Path, tokenizer: Path) -> None:
    proc = run_cli("finetune", "--nproc", "2", "--foreground", "--policy", "pi0-tiny", "--iterations", "2",
                   "--set", "scope=full", "--set", "shard=fsdp", "--set", f"tokenizer={tokenizer}",
                   "--set", "num_envs=2", "--set", "rollout_chunks=3", "--set", "eval_episodes=2",
                   "--set", "n_mc=2", "--set", "minibatch_size=6", "--set", "update_epochs=1",
                   "--set", "critic_epochs=1", env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as store:
        assert store.get_run(1).status == "finished"
        counts = Counter((r.step, r.key) for r in store.metrics_since(1))
        assert max(counts.values()) == 1  # only rank 0 writes
        assert {step for step, key in counts if key == "fpo/ratio_mean"} == {1, 2}
        assert {step for step, key in counts if key == "eval/success_rate"} == {0, 2}
        assert any("policy sharded (FSDP2)" in e.message for e in store.events_since(1))
        last = store.checkpoints(1)[-1]
        ckpt.verify_checkpoint(Path(last.path), last.sha256)
        load_policy(Path(last.path) / "policy")


def test_a_bad_shard_value_is_one_clear_line(home: Path) -> None:
    proc = run_cli("finetune", "--foreground", "--set", "shard=zero3")
    assert proc.returncode == 1
    assert "shard must be one of none, fsdp" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_the_run_is_told_when_its_sharding_choice_looks_wrong(tokenizer: Path) -> None:
    full = tiny_policy(tokenizer, scope="full")
    assert "shard=fsdp" in advice(full, "none", world=2)
    assert "nothing to shard" in advice(full, "fsdp", world=1)
    assert advice(full, "fsdp", world=2) is None
    assert advice(tiny_policy(tokenizer), "none", world=2) is None  # expert scope: replicas are fine

"""Sharded pi0-tiny on CPU ranks (FSDP2 over gloo) for tests/test_fsdp.py and bench/fsdp_memory.py:
FPO steps on each rank's share of a synthetic batch (images, prompts, states), and a trainer's
checkpoint -> resume round trip. `run_ranks` forks the ranks from the calling process."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp
from torch.distributed.tensor import DTensor

from fpoctl.envs import get_task
from fpoctl.train import checkpoint as ckpt
from fpoctl.train import distributed
from fpoctl.train.config import FinetuneConfig
from fpoctl.train.distributed import LOCAL, Ranks
from fpoctl.train.rollout import Rollout
from fpoctl.train.sharding import full_weights, shard_policy
from fpoctl.train.trainer import FPOTrainer
from fpoctl.train.update import fpo_update
from policies import flow
from policies.pi0 import Pi0Policy, gemma, siglip
from policies.pi0.config import full_config
from policies.registry import load_policy
from tests.pi0_helpers import env_obs, tiny_policy
from tests.test_train_resume import same

CPU = torch.device("cpu")
ROWS = 8  # chunks in the union batch; each of 2 ranks takes half
CFG = FinetuneConfig(n_mc=3, minibatch_size=10**6, update_epochs=2, actor_lr=1e-3)


def batch(rows: int = ROWS, horizon: int = 10, action_dim: int = 32) -> tuple[Rollout, torch.Tensor]:
    """A synthetic rollout of `rows` chunks with images, prompts and states, and its advantages
    (pi0-tiny's chunks by default)."""
    gen = torch.Generator().manual_seed(1)
    obs = env_obs(rows, seed=2)
    obs["prompt"] = [obs["prompt"][i % len(obs["prompt"])] for i in range(rows)]
    actions = torch.randn(rows, horizon, action_dim, generator=gen)
    t, noise = flow.sample_noise_and_time(actions, CFG.n_mc, generator=gen)
    mask = torch.zeros(rows, horizon, action_dim, dtype=torch.bool)
    mask[:, :4, :7] = True
    zeros = torch.zeros(1, rows)
    rollout = Rollout(obs=obs, next_obs=obs, actions=actions, mask=mask, t=t, noise=noise,
                      rewards=zeros, discounts=zeros, terminated=zeros.bool(), ended=zeros.bool())
    return rollout, torch.randn(rows, generator=gen)


def half(rollout: Rollout, adv: torch.Tensor, rank: int) -> tuple[Rollout, torch.Tensor]:
    """Rank `rank`'s rows (the first or second half)."""
    rows = slice(rank * rollout.size // 2, (rank + 1) * rollout.size // 2)
    obs = {k: v[rows] for k, v in rollout.obs.items()}
    return Rollout(obs=obs, next_obs=obs, actions=rollout.actions[rows], mask=rollout.mask[rows],
                   t=rollout.t[rows], noise=rollout.noise[rows], rewards=rollout.rewards,
                   discounts=rollout.discounts, terminated=rollout.terminated,
                   ended=rollout.ended), adv[rows]


def update(policy: Any, rollout: Rollout, adv: torch.Tensor, ranks: Ranks = LOCAL,
           device: torch.device = CPU) -> dict[str, float]:
    """fpo_update with Adam on the trainable parameters (sharded ones when the policy is)."""
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=CFG.actor_lr, eps=1e-5)
    return fpo_update(policy, opt, rollout, adv, CFG, device, torch.Generator().manual_seed(3), ranks=ranks)


def sharded_update(rank: int, ranks: Ranks, tokenizer: Path, out: Path, dtype: str,
                   device: str = "cpu", scope: str = "full") -> None:
    """Shard, one update on this rank's share of the batch (all of it in a world of one), save the
    gathered weights (rank 0) and this rank's bytes of parameters. On CUDA, rank r uses GPU r."""
    dev = torch.device(device, rank) if device == "cuda" else torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    policy = tiny_policy(tokenizer, scope=scope, dtype=dtype).to(dev)
    shard_policy(policy, ranks, dev)
    data = batch()
    update(policy, *(data if ranks.world == 1 else half(*data, rank)), ranks=ranks, device=dev)
    weights = full_weights(policy)
    if rank == 0:
        torch.save(weights, out / f"weights_{ranks.world}.pt")
    torch.save(param_bytes(policy), out / f"bytes_{ranks.world}_{rank}.pt")


def param_bytes(policy: torch.nn.Module) -> int:
    """Bytes of parameters this rank holds (its shards when sharded)."""
    local = [p.to_local() if isinstance(p, DTensor) else p for p in policy.parameters()]
    return sum(t.numel() * t.element_size() for t in local)


def _rank(rank: int, world: int, port: int, job: Callable[..., None], args: tuple) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    ranks = distributed.from_env()
    try:
        job(rank, ranks, *args)
    finally:
        ranks.close()


def run_ranks(job: Callable[..., None], *args: Any, world: int = 2, start_method: str = "fork") -> None:
    """Start `world` ranks that each run `job(rank, ranks, *args)` in a process group (gloo; NCCL
    too with CUDA, where the ranks must be spawned, not forked)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank, args=(world, port, job, args), nprocs=world, start_method=start_method)


def checkpoint_and_resume(rank: int, ranks: Ranks, tokenizer: Path, out: Path) -> None:
    """A sharded trainer runs an iteration and checkpoints (gathered to rank 0); a second trainer
    is built from that checkpoint, re-sharded, and both run the next iteration. Saves, per rank,
    the weights and metrics of both and whether the re-gathered trainer states are equal."""
    cfg = FinetuneConfig(task="fast-goal", policy="pi0-tiny", scope="full", shard="fsdp", num_envs=2,
                         rollout_chunks=3, n_mc=2, minibatch_size=3, update_epochs=2, critic_epochs=1,
                         critic_hidden=16, actor_lr=1e-3)
    task = get_task(cfg.task)
    original = FPOTrainer(cfg, tiny_policy(tokenizer, scope="full"), task, CPU, ranks=ranks)
    original.train_iteration()
    state, saved = original.state_dict(), original.saved_policy()
    state["ranks"] = ranks.gather(original.rank_state())
    if ranks.is_main:
        ckpt.save_checkpoint(out / "ckpt", saved, state, {"step": 1})
    ranks.all_true(True)  # the checkpoint is on disk

    torch.manual_seed(123)  # a different fresh critic before loading
    resumed = FPOTrainer(cfg, load_policy(out / "ckpt" / "policy", scope="full"), task, CPU, ranks=ranks)
    loaded = ckpt.load_trainer_state(out / "ckpt")
    resumed.load_state_dict(loaded)
    resumed.load_rank_state(loaded["ranks"][rank])
    same_state = same(resumed.state_dict(), original.state_dict())
    original.obs = None  # the resumed trainer starts fresh episodes; so does the original
    metrics = original.train_iteration(), resumed.train_iteration()
    weights = full_weights(original.policy), full_weights(resumed.policy)
    torch.save({"same_state": same_state, "metrics": metrics, "weights": weights}, out / f"resume_{rank}.pt")
    original.close()
    resumed.close()



def whole_layers_per_call(rank: int, ranks: Ranks, tokenizer: Path, out: Path) -> None:
    """Record, at every layer computation of a sharded cfm_loss (+ backward) and a sample call,
    which layers hold whole (gathered) weights; then which do after both calls."""
    policy = tiny_policy(tokenizer, scope="full")
    shard_policy(policy, ranks, CPU)
    pg = policy.paligemma_with_expert.paligemma.model
    layers = {**{f"vision.{i}": m for i, m in enumerate(pg.vision_tower.vision_model.encoder.layers)},
              **{f"lm.{i}": m for i, m in enumerate(policy.language_model.layers)},
              **{f"expert.{i}": m for i, m in enumerate(policy.action_expert.layers)}}
    names = {id(m): n for n, m in layers.items()}

    def whole() -> set[str]:
        return {n for n, m in layers.items() if not isinstance(next(m.parameters()), DTensor)}

    calls: list[tuple[set[str], set[str]]] = []  # (layers computing, layers whole)
    joint, vision_forward = gemma._joint_layer, siglip.SiglipEncoderLayer.forward

    def joint_spy(stack_layers: Any, hiddens: Any, *args: Any) -> Any:
        calls.append(({names[id(m)] for m, h in zip(stack_layers, hiddens, strict=True) if h is not None},
                      whole()))
        return joint(stack_layers, hiddens, *args)

    def vision_spy(self: Any, x: torch.Tensor) -> torch.Tensor:
        calls.append(({names[id(self)]}, whole()))
        return vision_forward(self, x)

    gemma._joint_layer, siglip.SiglipEncoderLayer.forward = joint_spy, vision_spy
    rollout, _ = half(*batch(), rank)
    prepared = policy.prepare(rollout.obs, CPU)
    policy.cfm_loss(prepared, rollout.actions, rollout.t, rollout.noise, rollout.mask).mean().backward()
    policy.sample(prepared, steps=2)
    torch.save({"calls": calls, "after": whole()}, out / f"whole_{rank}.pt")


def full_size_step(rank: int, ranks: Ranks, tokenizer: Path, out: Path) -> None:
    """The full-size pi0 (random weights, bf16 compute) sharded over the GPUs: one FPO update on
    2 chunks per rank; saves this rank's parameter bytes and peak CUDA memory."""
    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    torch.manual_seed(0)
    policy = Pi0Policy.create(full_config(dtype="bfloat16"), tokenizer=tokenizer, scope="full", device=device)
    shard_policy(policy, ranks, device)
    torch.cuda.reset_peak_memory_stats(device)
    metrics = update(policy, *batch(rows=2, horizon=policy.horizon), ranks=ranks, device=device)
    torch.save({"param_bytes": param_bytes(policy), "peak": torch.cuda.max_memory_allocated(device),
                "updates": metrics["fpo/updates"]}, out / f"full_{rank}.pt")

"""Jobs as runs in the store: `finetune` (FPO) and `sft` (behaviour cloning); `fpoctl eval` is
eval_job.py.

Each records its resolved config, seed and git revision, logs metrics through the batched writer,
keeps a heartbeat, writes checkpoints atomically (last K + best), and ends in a clear status:
finished, stopped (SIGTERM / Ctrl-C: the current iteration ends and a checkpoint is written) or
failed (with the reason). A fine-tuning run resumes from its last checkpoint: model, optimisers,
critic, RNG and counters are restored and metric rows logged after that checkpoint are dropped.
`train_run` is what a worker process runs (`fpoctl.jobs.worker`), one rank of it under torchrun.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fpoctl.envs import get_task
from fpoctl.envs.demos import DemoSet, collect_demos
from fpoctl.errors import FpoctlError
from fpoctl.settings import Settings
from fpoctl.store import Run, Store
from fpoctl.train import checkpoint as ckpt
from fpoctl.train import sharding
from fpoctl.train.build import (
    build_policy,
    git_revision,
    resolve_device,
    resolve_init,
    tokenizer_for,
)
from fpoctl.train.config import FinetuneConfig, SFTConfig, as_dict, resumable
from fpoctl.train.distributed import LOCAL, Ranks, combine_metrics
from fpoctl.train.lifecycle import StopSignals, heartbeat
from fpoctl.train.protocol import Evaluator
from fpoctl.train.record import CheckpointKeeper, RunRecord
from fpoctl.train.sft import train_sft
from fpoctl.train.trainer import FPOTrainer
from fpoctl.train.update import NonFiniteLoss
from policies.pi0.policy import SCOPES
from policies.registry import POLICY_NAMES

# progress(iteration, total, metrics) — the CLI renders it with rich.
Progress = Callable[[int, int, dict[str, float]], None]


class StopRequested(Exception):
    """A stop was asked for (SIGTERM, Ctrl-C, `fpoctl stop`): checkpoint, then stop."""


@dataclass
class JobResult:
    """What a finished job reports back to the CLI."""

    run_id: int
    status: str
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None


def seed_everything(seed: int, cpu_threads: int = 0) -> None:
    """Seed torch and numpy; set torch's CPU threads (0 leaves torch's default)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if cpu_threads > 0:
        torch.set_num_threads(cpu_threads)


def create_run(store: Store, kind: str, cfg: Any, name: str | None, parent_id: int | None = None,
               total_steps: int | None = None) -> int:
    """Insert the run with its full resolved config."""
    run = store.create_run(
        name=name or f"{cfg.task}-{kind}", kind=kind, task=cfg.task, policy=cfg.policy,
        config=as_dict(cfg), seed=cfg.seed, git_sha=git_revision(), parent_id=parent_id,
        total_steps=total_steps)
    return run.id


def new_finetune_run(store: Store, cfg: FinetuneConfig, name: str | None = None) -> int:
    """Check the input (task, device, init) before a run exists, then insert it (queued)."""
    get_task(cfg.task)
    resolve_device(cfg.device)
    if cfg.shard not in sharding.SHARD_MODES:
        raise FpoctlError(f"shard must be one of {', '.join(sharding.SHARD_MODES)}, got {cfg.shard!r}")
    if cfg.scope not in SCOPES:
        raise FpoctlError(f"scope must be one of {', '.join(SCOPES)}, got {cfg.scope!r}")
    if cfg.init:
        resolve_init(store, cfg.init)
    return create_run(store, "finetune", cfg, name, total_steps=cfg.iterations)


def finetune(settings: Settings, cfg: FinetuneConfig, *, name: str | None = None,
             resume_run: int | None = None, progress: Progress | None = None) -> JobResult:
    """Create (or resume) an FPO run and train it in this process."""
    settings.ensure_home()
    with Store(settings.db_url) as store:
        if resume_run is not None:
            resumable(store.get_run(resume_run))
            run_id = resume_run
        else:
            run_id = new_finetune_run(store, cfg, name)
    return train_run(settings, run_id, progress=progress)


def train_device(cfg: FinetuneConfig, ranks: Ranks) -> torch.device:
    """This rank's device: `cfg.device`, or under torchrun the GPU of its local rank."""
    device = resolve_device(cfg.device)
    if device.type != "cuda":
        return device
    if cfg.gpus:
        if ranks.local_rank >= len(cfg.gpus):
            raise FpoctlError(f"local rank {ranks.local_rank} has no GPU in gpus={cfg.gpus}")
        device = torch.device("cuda", cfg.gpus[ranks.local_rank])
    elif ranks.world > 1:
        device = torch.device("cuda", ranks.local_rank)
    torch.cuda.set_device(device)
    return device


def train_run(settings: Settings, run_id: int, *, progress: Progress | None = None,
              ranks: Ranks = LOCAL, stop: StopSignals | None = None) -> JobResult:
    """Train run `run_id` here: from its last checkpoint when it has one, else from the start.
    Under torchrun this is one rank; rank 0 records, the others compute alongside."""
    with Store(settings.db_url) as store, ExitStack() as stack:
        stop = stop or stack.enter_context(StopSignals(announce=progress is not None))
        run = store.get_run(run_id)
        return _train(store, settings, run, FinetuneConfig(**run.config), ranks, stop, progress)


def _train(store: Store, settings: Settings, run: Run, cfg: FinetuneConfig, ranks: Ranks,
           stop: StopSignals, progress: Progress | None) -> JobResult:
    record = RunRecord(store, run.id, settings.run_dir(run.id), cfg.keep_checkpoints,
                       enabled=ranks.is_main)
    record.status("running")
    result = JobResult(run_id=run.id, status="running")
    trainer, saved, metrics = None, 0, {}
    try:
        seed_everything(cfg.seed, cfg.cpu_threads)
        task, device = get_task(cfg.task), train_device(cfg, ranks)
        if record.sweep_partial_checkpoints():
            record.event("removed a half-written checkpoint of a killed attempt", kind="resume")
        init = resolve_init(store, cfg.init) if cfg.init else None
        last = store.checkpoints(run.id)[-1] if store.checkpoints(run.id) else None
        if last is not None:
            ckpt.verify_checkpoint(Path(last.path), last.sha256)
            init = Path(last.path) / "policy"
        policy = build_policy(cfg.policy, task, cfg.obs_mode, horizon=cfg.horizon, hidden=cfg.hidden,
                              device=device, init_folder=init, scope=cfg.scope, dtype=cfg.dtype,
                              tokenizer=tokenizer_for(settings.home, init, cfg.tokenizer))
        for note in getattr(policy, "load_warnings", ()):
            record.event(note, level="warning", kind="config")
        trainer = FPOTrainer(cfg, policy, task, device, ranks=ranks,
                             on_event=lambda lvl, kind, msg: record.event(msg, level=lvl, kind=kind))
        if last is not None:
            saved = _restore(trainer, Path(last.path), ranks)
            dropped = record.rewind(saved)
            record.event(f"resumed from step {saved} ({dropped} metric rows after it dropped)",
                         kind="resume")
        elif run.started is not None:  # an earlier attempt left no checkpoint
            record.rewind(-1)
            record.event("resumed with no checkpoint: starting over", kind="resume")
        if ranks.world > 1:
            pids = ", ".join(f"{host}:{pid}" for host, pid in ranks.gather(_where()))
            record.event(f"torchrun: {ranks.world} ranks (pids {pids})"
                         + (", policy sharded (FSDP2)" if trainer.sharded else ""), kind="ranks")
        if note := sharding.advice(policy, cfg.shard, ranks.world):
            record.event(note, level="warning", kind="ranks")
        evaluates = ranks.is_main or trainer.sharded  # a sharded policy samples on every rank
        if trainer.iteration == 0 and evaluates:
            result.before = trainer.evaluate()
            record.log(0, result.before)
            record.event(f"prior: success {result.before['eval/success_rate']:.0%}", kind="eval")
        with record.alive():
            while trainer.iteration < cfg.iterations:
                if ranks.any_true(stop.requested is not None):
                    raise StopRequested
                metrics = combine_metrics(ranks.gather(trainer.train_iteration()))
                it = trainer.iteration
                if evaluates and (it % cfg.eval_every == 0 or it == cfg.iterations):
                    metrics.update(trainer.evaluate())
                    record.event(f"eval at {it}: success {metrics['eval/success_rate']:.0%}",
                                 kind="eval")
                record.log(it, metrics)
                if it % cfg.checkpoint_every == 0 or it == cfg.iterations:
                    result.checkpoint = _checkpoint(record, trainer, ranks, metrics, cfg)
                    saved = it
                if progress:
                    progress(it, cfg.iterations, metrics)
        result.after = {k: v for k, v in metrics.items() if k.startswith("eval/")}
        result.status = "finished"
    except StopRequested:
        result.status = "stopped"
        if trainer is not None and trainer.iteration > saved:
            result.checkpoint = _checkpoint(record, trainer, ranks, metrics, cfg)
        record.event(f"stopped at iteration {trainer.iteration if trainer else 0} "
                     f"({stop.requested})", kind="stop")
    except KeyboardInterrupt:  # the second Ctrl-C: no time for a checkpoint
        result.status = "stopped"
        record.event(f"interrupted: stopped without a new checkpoint; resume continues from step "
                     f"{saved}", level="warning", kind="stop")
    except NonFiniteLoss as exc:
        result.status = "failed"
        record.status("failed", error=f"{exc}: lower actor_lr or check the rewards")
    except FpoctlError as exc:
        result.status = "failed"
        record.status("failed", error=str(exc))
        raise
    except Exception as exc:
        record.status("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        record.close()
        if trainer is not None:
            trainer.close()
    if result.status in ("finished", "stopped"):
        record.status(result.status)
    return result


def _where() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


def _checkpoint(record: RunRecord, trainer: FPOTrainer, ranks: Ranks, metrics: dict[str, float],
                cfg: FinetuneConfig) -> str | None:
    """Every rank hands its RNG state to rank 0, which writes the checkpoint."""
    state, policy = trainer.state_dict(), trainer.saved_policy()
    if ranks.world > 1:
        state["ranks"] = ranks.gather(trainer.rank_state())
    return record.checkpoint(trainer.iteration, policy, state, metrics, as_dict(cfg))


def _restore(trainer: FPOTrainer, folder: Path, ranks: Ranks) -> int:
    """Load a verified checkpoint's trainer state (each rank its own RNG); returns its step."""
    state = ckpt.load_trainer_state(folder)
    trainer.load_state_dict(state)
    per_rank = state.get("ranks", [state])
    if len(per_rank) != ranks.world:
        raise FpoctlError(f"checkpoint {folder} was written by {len(per_rank)} rank(s); resume with "
                          f"the same number of processes (this job has {ranks.world})")
    trainer.load_rank_state(per_rank[ranks.rank])
    return trainer.iteration


def sft(settings: Settings, cfg: SFTConfig, *, name: str | None = None,
        progress: Progress | None = None) -> JobResult:
    """Behaviour-clone a flow policy from demonstrations; the result is a run with a checkpoint."""
    settings.ensure_home()
    task = get_task(cfg.task)
    device = resolve_device(cfg.device)
    demos = DemoSet.load(cfg.demos) if cfg.demos else None  # bad input fails before a run exists
    with Store(settings.db_url) as store:
        run_id = create_run(store, "sft", cfg, name, total_steps=cfg.steps)
        store.set_status(run_id, "running")
        writer = store.metric_writer(run_id)
        result = JobResult(run_id=run_id, status="running")
        try:
            seed_everything(cfg.seed, cfg.cpu_threads)
            if demos is None:
                demos = collect_demos(task, cfg.expert_episodes, seed=cfg.seed, obs_mode=cfg.obs_mode,
                                      action_noise=cfg.expert_noise, **(cfg.env_kwargs or {}))
                path = demos.save(settings.run_dir(run_id) / "demos.npz")
                store.add_event(run_id, f"{cfg.expert_episodes} expert episodes, success "
                                f"{demos.success_rate:.0%} -> {path}", kind="demos")
            init = None if cfg.policy in POLICY_NAMES else resolve_init(store, cfg.policy)
            policy = build_policy(cfg.policy, task, cfg.obs_mode, horizon=cfg.horizon,
                                  hidden=cfg.hidden, device=device, init_folder=init,
                                  tokenizer=tokenizer_for(settings.home, init, cfg.tokenizer))

            def log(step: int, values: dict[str, float]) -> None:
                writer.log(step, values)
                store.heartbeat(run_id, step=step)
                if progress:
                    progress(step, cfg.steps, values)

            with heartbeat(store, run_id):
                train_sft(policy, demos, cfg, device, log)
            evaluator = Evaluator(task, num_envs=cfg.num_envs, obs_mode=cfg.obs_mode,
                                  seed=cfg.seed + 7_777, workers=cfg.workers, env_kwargs=cfg.env_kwargs)
            try:
                result.after = evaluator.run(policy, cfg.eval_episodes, exec_steps=cfg.exec_steps,
                                             flow_steps=cfg.flow_steps, device=device,
                                             noise=cfg.eval_noise).metrics
            finally:
                evaluator.close()
            writer.log(cfg.steps, result.after)
            keeper = CheckpointKeeper(store, run_id, settings.run_dir(run_id) / "checkpoints", 1)
            result.checkpoint = keeper.save(cfg.steps, policy, None, result.after, as_dict(cfg))
            result.status = "finished"
        except KeyboardInterrupt:
            result.status = "stopped"
        except Exception as exc:
            store.set_status(run_id, "failed", error=str(exc) if isinstance(exc, FpoctlError)
                             else f"{type(exc).__name__}: {exc}")
            raise
        finally:
            writer.close()
        store.set_status(run_id, result.status)
        return result

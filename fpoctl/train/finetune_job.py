"""The `finetune` job: an FPO run in the store, trained here (one rank of it under torchrun) and
resumable from its last checkpoint.

It records its resolved config, seed and git revision, logs metrics through the batched writer,
keeps a heartbeat, writes checkpoints atomically (last K + best), and ends finished, stopped
(SIGTERM / Ctrl-C: the current iteration ends and a checkpoint is written) or failed (with the
reason). A resume restores model, optimisers, critic, RNG and counters and drops the metric rows
logged after that checkpoint. `train_run` is what a worker process runs (`fpoctl.jobs.worker`).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import torch

from fpoctl import metric_names as names
from fpoctl.envs import get_task
from fpoctl.errors import FpoctlError
from fpoctl.fmt import duration
from fpoctl.settings import Settings
from fpoctl.store import Run, Store, elapsed_s
from fpoctl.train import checkpoint as ckpt
from fpoctl.train import preflight, sharding
from fpoctl.train.build import build_policy, load_warnings, resolve_device, resolve_init, tokenizer_for
from fpoctl.train.config import FinetuneConfig, as_dict
from fpoctl.train.distributed import LOCAL, Ranks, combine_metrics
from fpoctl.train.job import JobResult, create_run, lifecycle, seed_everything
from fpoctl.train.lifecycle import StopSignals
from fpoctl.train.progress import JobProgress, Progress
from fpoctl.train.record import RunRecord
from fpoctl.train.trainer import FPOTrainer
from fpoctl.train.update import NonFiniteLoss


class StopRequested(Exception):
    """A stop was asked for (SIGTERM, Ctrl-C, `fpoctl stop`): checkpoint, then stop."""


def new_finetune_run(settings: Settings, store: Store, cfg: FinetuneConfig, name: str | None = None) -> int:
    """The pre-flight of the input (config, task, device, init, store), then the run (queued)."""
    preflight.check_finetune(settings, store, cfg)
    return create_run(store, "finetune", cfg, name, total_steps=cfg.iterations)


def finetune(settings: Settings, cfg: FinetuneConfig, *, name: str | None = None,
             progress: Progress | None = None) -> JobResult:
    """Create an FPO run and train it in this process."""
    preflight.check_store(settings)
    with Store(settings.db_url) as store:
        run_id = new_finetune_run(settings, store, cfg, name)
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
        cfg = FinetuneConfig(**run.config)
        record = RunRecord(store, run.id, settings.run_dir(run.id), cfg.keep_checkpoints,
                           enabled=ranks.is_main)
        result = JobResult(run_id=run.id, status="running")
        report = JobProgress(store if ranks.is_main else None, run.id, progress)
        session = _Session(record, result, ranks, report)
        with lifecycle(record, result, interrupted=session.interrupted):
            try:
                session.train(store, settings, run, cfg, stop)
            finally:
                if session.trainer is not None:
                    session.trainer.close()
        return result


class _Session:
    """One attempt at a run: what the steps of `train` share (the trainer, the last saved step)."""

    def __init__(self, record: RunRecord, result: JobResult, ranks: Ranks, report: JobProgress) -> None:
        self.record, self.result, self.ranks, self.report = record, result, ranks, report
        self.trainer: FPOTrainer | None = None
        self.saved = 0

    def event(self, level: str, kind: str, message: str) -> None:
        """An event of the run; a warning is a line of the job's output (its log) too."""
        self.record.event(message, level=level, kind=kind)
        if level == "warning" and self.ranks.is_main:
            print(f"warning: {message}", file=sys.stderr, flush=True)

    def interrupted(self) -> str:
        """The event a second Ctrl-C leaves (there is no time for a checkpoint)."""
        return f"interrupted: stopped without a new checkpoint; resume continues from step {self.saved}"

    def train(self, store: Store, settings: Settings, run: Run, cfg: FinetuneConfig,
              stop: StopSignals) -> None:
        """Build (or restore), evaluate the prior, iterate; stop and non-finite losses end it here."""
        record, result, ranks, report = self.record, self.result, self.ranks, self.report
        metrics: dict[str, float] = {}
        try:
            with record.alive():
                trainer = self.trainer = self._start(store, settings, run, cfg)
                evaluates = ranks.is_main or trainer.sharded  # a sharded policy samples on every rank
                videos = settings.run_dir(run.id) / "videos"
                if trainer.iteration == 0 and evaluates:
                    with report.evaluation("evaluating the prior") as progress:
                        result.before = trainer.evaluate(progress=progress, record=videos / "iter_0000")
                    record.log(0, result.before)
                    record.event(f"prior: success {result.before[names.EVAL_SUCCESS]:.0%}", kind="eval")
                while trainer.iteration < cfg.iterations:
                    if ranks.any_true(stop.requested is not None):
                        raise StopRequested
                    metrics = combine_metrics(ranks.gather(trainer.train_iteration()))
                    it = trainer.iteration
                    if evaluates and (it % cfg.eval_every == 0 or it == cfg.iterations):
                        what = ("final evaluation" if it == cfg.iterations
                                else f"evaluating at iteration {it}/{cfg.iterations}")
                        with report.evaluation(what) as progress:
                            metrics.update(trainer.evaluate(progress=progress,
                                                            record=videos / f"iter_{it:04d}"))
                        record.event(f"eval at {it}: success {metrics[names.EVAL_SUCCESS]:.0%}",
                                     kind="eval")
                    record.log(it, metrics)
                    if it % cfg.checkpoint_every == 0 or it == cfg.iterations:
                        result.checkpoint, self.saved = self._checkpoint(metrics, cfg), it
                    report.step(it, cfg.iterations, metrics)
            result.after = {k: v for k, v in metrics.items() if names.is_eval(k)}
            result.status = "finished"
        except StopRequested:
            result.status = "stopped"
            iteration = self.trainer.iteration if self.trainer else 0
            if self.trainer is not None and iteration > self.saved:
                result.checkpoint = self._checkpoint(metrics, cfg)
            record.event(f"stopped at iteration {iteration} ({stop.requested})", kind="stop")
        except NonFiniteLoss as exc:
            result.status = "failed"
            record.status("failed", error=f"{exc}: lower actor_lr or check the rewards")

    def _start(self, store: Store, settings: Settings, run: Run, cfg: FinetuneConfig) -> FPOTrainer:
        """The trainer, from the run's last checkpoint when it has one (verified first)."""
        record, ranks = self.record, self.ranks
        self.report.phase("resuming: loading the policy" if run.started is not None
                          else "building the policy")
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
        for note in load_warnings(policy):
            self.event("warning", "config", note)
        trainer = FPOTrainer(cfg, policy, task, device, ranks=ranks, on_event=self.event)
        if last is not None:
            self.saved = _restore(trainer, Path(last.path), ranks)
            dropped = record.rewind(self.saved)
            record.event(f"resumed from step {self.saved} ({dropped} metric rows after it dropped)",
                         kind="resume")
            trained = duration(elapsed_s(run, time.time(), alive=False))
            self.report.note(f"=== resumed at iteration {self.saved}/{cfg.iterations} from its "
                             f"checkpoint, after {trained} of training ({dropped} metric rows "
                             f"after it dropped)")
        elif run.started is not None:  # an earlier attempt left no checkpoint
            record.rewind(-1)
            record.event("resumed with no checkpoint: starting over", kind="resume")
            self.report.note(f"=== resumed at iteration 0/{cfg.iterations}: no checkpoint, starting over")
        if ranks.world > 1:
            where = ranks.gather((socket.gethostname(), os.getpid()))
            pids = ", ".join(f"{host}:{pid}" for host, pid in where)
            record.event(f"torchrun: {ranks.world} ranks (pids {pids})"
                         + (", policy sharded (FSDP2)" if trainer.sharded else ""), kind="ranks")
        if note := sharding.advice(policy, cfg.shard, ranks.world):
            record.event(note, level="warning", kind="ranks")
        self.report.end_phase()
        return trainer

    def _checkpoint(self, metrics: dict[str, float], cfg: FinetuneConfig) -> str | None:
        """Every rank hands its RNG state to rank 0, which writes the checkpoint."""
        assert self.trainer is not None
        trainer, ranks = self.trainer, self.ranks
        state, policy = trainer.state_dict(), trainer.saved_policy()
        if ranks.world > 1:
            state["ranks"] = ranks.gather(trainer.rank_state())
        with self.report.during(f"writing checkpoint step {trainer.iteration}"):
            return self.record.checkpoint(trainer.iteration, policy, state, metrics, as_dict(cfg))


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

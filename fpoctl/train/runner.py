"""Jobs as runs in the store: `finetune` (FPO), `sft` (behaviour cloning) and `evaluate`.

Each records its resolved config, seed and git revision, logs metrics through the batched writer,
keeps a heartbeat, writes checkpoints atomically (last K + best), and ends in a clear status:
finished, stopped (Ctrl-C / SIGTERM: a checkpoint is written first) or failed (with the reason).
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fpoctl.envs import get_task, make_vector_env
from fpoctl.envs.demos import DemoSet, collect_demos
from fpoctl.errors import FpoctlError
from fpoctl.settings import Settings
from fpoctl.store import Store
from fpoctl.store.metrics import delete_after
from fpoctl.train import checkpoint as ckpt
from fpoctl.train.build import (
    build_policy,
    git_revision,
    resolve_device,
    resolve_init,
    resolve_source,
    tokenizer_for,
)
from fpoctl.train.config import FinetuneConfig, SFTConfig, as_dict
from fpoctl.train.evaluate import evaluate
from fpoctl.train.sft import train_sft
from fpoctl.train.trainer import FPOTrainer
from fpoctl.train.update import NonFiniteLoss
from policies.registry import POLICY_NAMES

# progress(iteration, total, metrics) — the CLI renders it with rich.
Progress = Callable[[int, int, dict[str, float]], None]


class StopRequested(Exception):
    """A second SIGTERM / Ctrl-C: stop now, without waiting for the current step."""


class StopFlag:
    """Set by the first SIGTERM or Ctrl-C; the loop stops at the end of the current iteration."""

    requested = False


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


@contextmanager
def heartbeat(store: Store, run_id: int, every: float = 10.0) -> Iterator[None]:
    """A background heartbeat so a long iteration never looks like a lost run."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            # a busy database must not kill training; the next beat retries
            with suppress(Exception):
                store.heartbeat(run_id)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@contextmanager
def graceful_stop() -> Iterator[StopFlag]:
    """The first SIGTERM / SIGINT asks the run to stop after the current iteration (which is then
    logged and checkpointed); a second one raises StopRequested at once."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signals reach the main thread only; the caller owns them there
        return

    def handler(signum: int, frame: object) -> None:
        if flag.requested:
            raise StopRequested()
        flag.requested = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for sig, prev in previous.items():
            signal.signal(sig, prev)


class CheckpointKeeper:
    """Writes checkpoints of one run and keeps the last K plus the best."""

    def __init__(self, store: Store, run_id: int, folder: Path, keep: int) -> None:
        self.store, self.run_id, self.folder, self.keep = store, run_id, folder, keep
        self.best = max((c.metrics.get("eval/success_rate", -1.0) for c in store.checkpoints(run_id)),
                        default=-1.0)

    def save(self, step: int, policy: Any, trainer_state: dict | None, metrics: dict[str, float],
             config: dict[str, Any]) -> str:
        """Write step's checkpoint, record it, prune old ones; returns its folder."""
        path = self.folder / f"step_{step:06d}"
        meta = {"step": step, "metrics": metrics, "config": config, "time": time.time()}
        sha = ckpt.save_checkpoint(path, policy, trainer_state, meta)
        score = metrics.get("eval/success_rate")
        is_best = score is not None and score >= self.best
        if is_best:
            self.best = score
        for old in self.store.checkpoints(self.run_id):
            if old.step == step:  # re-written after a resume
                self.store.remove_checkpoint(old.id)
        self.store.add_checkpoint(self.run_id, step, str(path), sha, metrics, is_best=is_best)
        self.store.add_event(self.run_id, f"checkpoint step {step}" + (" (best)" if is_best else ""),
                             kind="checkpoint")
        self._prune()
        return str(path)

    def _prune(self) -> None:
        ckpts = self.store.checkpoints(self.run_id)
        keep = {c.id for c in ckpts[-self.keep:]} | {c.id for c in ckpts if c.is_best}
        for c in ckpts:
            if c.id not in keep:
                shutil.rmtree(c.path, ignore_errors=True)
                self.store.remove_checkpoint(c.id)


def create_run(store: Store, kind: str, cfg: Any, name: str | None, parent_id: int | None = None,
               total_steps: int | None = None) -> int:
    """Insert the run with its full resolved config."""
    run = store.create_run(
        name=name or f"{cfg.task}-{kind}", kind=kind, task=cfg.task, policy=cfg.policy,
        config=as_dict(cfg), seed=cfg.seed, git_sha=git_revision(), parent_id=parent_id,
        total_steps=total_steps)
    return run.id


def finetune(settings: Settings, cfg: FinetuneConfig, *, name: str | None = None,
             resume_run: int | None = None, progress: Progress | None = None) -> JobResult:
    """Create (or resume) an FPO run and train it in this process."""
    settings.ensure_home()
    with Store(settings.db_url) as store:
        if resume_run is not None:
            run = store.get_run(resume_run)
            if run.kind != "finetune":
                raise FpoctlError(f"run {run.id} is a {run.kind} run; only finetune runs resume")
            cfg = FinetuneConfig(**run.config)
            run_id = run.id
        else:
            # fail fast on bad input, before a run exists
            get_task(cfg.task)
            resolve_device(cfg.device)
            if cfg.init:
                resolve_init(store, cfg.init)
            run_id = create_run(store, "finetune", cfg, name, total_steps=cfg.iterations)
        return _train(store, settings, run_id, cfg, resume=resume_run is not None,
                      progress=progress)


def _train(store: Store, settings: Settings, run_id: int, cfg: FinetuneConfig, *, resume: bool,
           progress: Progress | None) -> JobResult:
    run_dir = settings.run_dir(run_id)
    keeper = CheckpointKeeper(store, run_id, run_dir / "checkpoints", cfg.keep_checkpoints)
    store.set_status(run_id, "running")
    result = JobResult(run_id=run_id, status="running")
    trainer = None
    writer = store.metric_writer(run_id)
    try:
        seed_everything(cfg.seed, cfg.cpu_threads)
        task, device = get_task(cfg.task), resolve_device(cfg.device)
        init = resolve_init(store, cfg.init) if cfg.init else None
        last = store.checkpoints(run_id)[-1] if resume and store.checkpoints(run_id) else None
        if last is not None:
            ckpt.verify_checkpoint(Path(last.path), last.sha256)
            init = Path(last.path) / "policy"
        policy = build_policy(cfg.policy, task, cfg.obs_mode, horizon=cfg.horizon, hidden=cfg.hidden,
                              device=device, init_folder=init,
                              tokenizer=tokenizer_for(settings.home, init, cfg.tokenizer))
        trainer = FPOTrainer(cfg, policy, task, device,
                             on_event=lambda lvl, kind, msg: store.add_event(run_id, msg, level=lvl,
                                                                            kind=kind))
        if last is not None:
            trainer.load_state_dict(ckpt.load_trainer_state(Path(last.path)))
            dropped = delete_after(store.engine, run_id, trainer.iteration)
            store.add_event(run_id, f"resumed from step {trainer.iteration} "
                            f"({dropped} metric rows after it dropped)", kind="resume")
        elif resume:
            store.add_event(run_id, "resumed with no checkpoint: starting over", kind="resume")
            delete_after(store.engine, run_id, -1)
        if trainer.iteration == 0:
            result.before = trainer.evaluate()
            writer.log(0, result.before)
            store.add_event(run_id, f"prior: success {result.before['eval/success_rate']:.0%}",
                            kind="eval")
        with heartbeat(store, run_id), graceful_stop() as stop:
            metrics: dict[str, float] = {}
            while trainer.iteration < cfg.iterations and not stop.requested:
                metrics = trainer.train_iteration()
                it = trainer.iteration
                if it % cfg.eval_every == 0 or it == cfg.iterations:
                    metrics.update(trainer.evaluate())
                    store.add_event(run_id, f"eval at {it}: success "
                                    f"{metrics['eval/success_rate']:.0%}", kind="eval")
                writer.log(it, metrics)
                store.heartbeat(run_id, step=it)
                if it % cfg.checkpoint_every == 0 or it == cfg.iterations or stop.requested:
                    writer.flush()
                    result.checkpoint = keeper.save(it, policy, trainer.state_dict(), metrics,
                                                    as_dict(cfg))
                if progress:
                    progress(it, cfg.iterations, metrics)
        result.after = {k: v for k, v in metrics.items() if k.startswith("eval/")}
        result.status = "stopped" if stop.requested else "finished"
    except (KeyboardInterrupt, StopRequested):
        # stopped mid-iteration: the last checkpoint stays the resume point (resume drops the
        # rows logged after it), so nothing half-done is saved
        result.status = "stopped"
    except NonFiniteLoss as exc:
        result.status = "failed"
        store.set_status(run_id, "failed", error=f"{exc}: lower actor_lr or check the rewards")
    except FpoctlError as exc:
        result.status = "failed"
        store.set_status(run_id, "failed", error=str(exc))
        raise
    except Exception as exc:
        store.set_status(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        writer.close()
        if trainer is not None:
            trainer.close()
    if result.status in ("finished", "stopped"):
        store.set_status(run_id, result.status)
    return result


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
            venv = make_vector_env(task, min(cfg.num_envs, cfg.eval_episodes), obs_mode=cfg.obs_mode,
                                   seed=cfg.seed + 7_777, workers=cfg.workers, **(cfg.env_kwargs or {}))
            try:
                result.after = evaluate(policy, venv, cfg.eval_episodes, exec_steps=cfg.exec_steps,
                                        flow_steps=cfg.flow_steps, seed=cfg.seed + 7_777,
                                        device=device)
            finally:
                venv.close()
            writer.log(cfg.steps, result.after)
            keeper = CheckpointKeeper(store, run_id, settings.run_dir(run_id) / "checkpoints", 1)
            result.checkpoint = keeper.save(cfg.steps, policy, None, result.after, as_dict(cfg))
            result.status = "finished"
        except (KeyboardInterrupt, StopRequested):
            result.status = "stopped"
        except Exception as exc:
            store.set_status(run_id, "failed", error=str(exc) if isinstance(exc, FpoctlError)
                             else f"{type(exc).__name__}: {exc}")
            raise
        finally:
            writer.close()
        store.set_status(run_id, result.status)
        return result


def evaluate_policy(settings: Settings, source: str, *, task_name: str, episodes: int,
                    obs_mode: str | None = None, exec_steps: int = 4, flow_steps: int = 10,
                    num_envs: int = 16, workers: bool = False, seed: int = 0, device: str = "auto",
                    tokenizer: str | None = None) -> dict[str, float]:
    """Zero-noise evaluation of a run's best checkpoint, a pulled model or a folder; recorded in
    the store's evaluations (and as `eval/*` metrics of the run when the source is a run)."""
    settings.ensure_home()
    task = get_task(task_name)
    with Store(settings.db_url) as store:
        folder, run_id = resolve_source(store, source)
        dev = resolve_device(device)
        seed_everything(seed)
        policy = build_policy("", task, obs_mode, horizon=1, hidden=1, device=dev, init_folder=folder,
                              tokenizer=tokenizer_for(settings.home, folder, tokenizer))
        venv = make_vector_env(task, min(num_envs, episodes), obs_mode=obs_mode, seed=seed,
                               workers=workers)
        try:
            result = evaluate(policy, venv, episodes, exec_steps=exec_steps, flow_steps=flow_steps,
                              seed=seed, device=dev)
        finally:
            venv.close()
        store.add_evaluation(run_id=run_id, source=str(source), task=task_name, episodes=episodes,
                             success_rate=result["eval/success_rate"],
                             mean_return=result["eval/return"],
                             details={"folder": str(folder), "exec_steps": exec_steps,
                                      "flow_steps": flow_steps, "seed": seed, **result})
        if run_id is not None:
            store.add_event(run_id, f"fpoctl eval on {task_name}: success "
                            f"{result['eval/success_rate']:.0%} over {episodes} episodes", kind="eval")
    return result

"""The `sft` job: behaviour-clone a flow policy from demonstrations (a file, or a task's scripted
expert), evaluate it, keep one checkpoint: the prior a fine-tune starts from."""

from __future__ import annotations

from fpoctl.envs.demos import DemoSet, collect_demos
from fpoctl.settings import Settings
from fpoctl.store import Store
from fpoctl.train import preflight
from fpoctl.train.build import build_policy, load_warnings
from fpoctl.train.config import EVAL_SEED_OFFSET, SFTConfig, as_dict
from fpoctl.train.job import JobResult, create_run, lifecycle, seed_everything
from fpoctl.train.progress import JobProgress, Progress
from fpoctl.train.protocol import Evaluator
from fpoctl.train.record import RunRecord
from fpoctl.train.sft import train_sft


def sft(settings: Settings, cfg: SFTConfig, *, name: str | None = None,
        progress: Progress | None = None) -> JobResult:
    """Behaviour-clone a flow policy from demonstrations; the result is a run with a checkpoint."""
    preflight.check_store(settings)
    with Store(settings.db_url) as store:
        ready = preflight.check_sft(settings, store, cfg)  # bad input fails before a run exists
        task, device, init = ready.task, ready.device, ready.folder
        demos = DemoSet.load(cfg.demos) if cfg.demos else None
        run_id = create_run(store, "sft", cfg, name, total_steps=cfg.steps)
        record = RunRecord(store, run_id, settings.run_dir(run_id), keep=1, enabled=True)
        result = JobResult(run_id=run_id, status="running")
        report = JobProgress(store, run_id, progress)
        with lifecycle(record, result), record.alive():
            seed_everything(cfg.seed, cfg.cpu_threads)
            if demos is None:
                def collected(episode: int, success: bool) -> None:
                    report.phase("collecting expert demos", episode + 1, cfg.expert_episodes,
                                 "episodes")

                report.phase("collecting expert demos")  # its rate counts from here
                demos = collect_demos(task, cfg.expert_episodes, seed=cfg.seed, obs_mode=cfg.obs_mode,
                                      action_noise=cfg.expert_noise, progress=collected,
                                      **(cfg.env_kwargs or {}))
                path = demos.save(settings.run_dir(run_id) / "demos.npz")
                record.event(f"{cfg.expert_episodes} expert episodes, success "
                             f"{demos.success_rate:.0%} -> {path}", kind="demos")
            report.phase("building the policy")
            policy = build_policy(cfg.policy, task, cfg.obs_mode, horizon=cfg.horizon,
                                  hidden=cfg.hidden, device=device, init_folder=init,
                                  tokenizer=ready.tokenizer)
            for note in load_warnings(policy) if init is not None else ():
                record.event(note, level="warning", kind="config")

            def log(step: int, values: dict[str, float]) -> None:
                record.log(step, values)
                report.step(step, cfg.steps, values)

            train_sft(policy, demos, cfg, device, log)
            evaluator = Evaluator(task, num_envs=cfg.num_envs, obs_mode=cfg.obs_mode,
                                  seed=cfg.seed + EVAL_SEED_OFFSET, workers=cfg.workers,
                                  env_kwargs=cfg.env_kwargs)
            try:
                with report.evaluation("final evaluation") as episodes:
                    result.after = evaluator.run(policy, cfg.eval_episodes, exec_steps=cfg.exec_steps,
                                                 flow_steps=cfg.flow_steps, device=device,
                                                 noise=cfg.eval_noise, progress=episodes).metrics
            finally:
                evaluator.close()
            record.log(cfg.steps, result.after)
            with report.during("writing the checkpoint"):
                result.checkpoint = record.checkpoint(cfg.steps, policy, None, result.after,
                                                      as_dict(cfg))
            result.status = "finished"
        return result

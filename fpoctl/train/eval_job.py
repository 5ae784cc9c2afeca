"""`fpoctl eval`: the evaluation protocol (protocol.py) on a run's best checkpoint, a pulled model or
a folder, recorded in the store's evaluations (a suite: with each task's numbers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpoctl import metric_names as names
from fpoctl.errors import FpoctlError
from fpoctl.settings import Settings
from fpoctl.store import Store
from fpoctl.train import preflight
from fpoctl.train.build import load_policy_folder, load_warnings, training_config
from fpoctl.train.job import seed_everything
from fpoctl.train.protocol import EvalProgress, EvalResult, Evaluator, check_eval_input

DEFAULT_EXEC_STEPS = 4


@dataclass
class EvalReport:
    """What `fpoctl eval` ran and found: the result plus the settings it ran with."""

    result: EvalResult
    setup: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Metrics at the top level (as before), the tasks and the settings."""
        return {**self.result.metrics, "setup": self.setup,
                "tasks": [t.record() for t in self.result.tasks]}


def checkpoint_action_steps(folder: Path) -> int | None:
    """config.json's `n_action_steps` (a LeRobot pi0 folder: steps executed per chunk), if any."""
    try:
        value = json.loads((folder / "config.json").read_text()).get("n_action_steps")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) and value >= 1 else None


def resolve_exec_steps(explicit: int | None, folder: Path, trained: dict[str, Any]) -> tuple[int, str]:
    """Env steps executed per chunk and where that number comes from: `--exec-steps`, else the
    training config's, else the checkpoint's `n_action_steps` (a pulled model), else 4."""
    if explicit:
        return explicit, "--exec-steps"
    if trained.get("exec_steps"):
        return int(trained["exec_steps"]), "as trained"
    if steps := checkpoint_action_steps(folder):
        return steps, "the checkpoint's n_action_steps"
    return DEFAULT_EXEC_STEPS, "default"


def evaluate_policy(settings: Settings, source: str, *, task_name: str, episodes: int,
                    obs_mode: str | None = None, exec_steps: int | None = None, flow_steps: int = 10,
                    num_envs: int = 16, workers: bool = False, seed: int = 0, device: str = "auto",
                    tokenizer: str | None = None, noise: str = "zero", max_steps: int | None = None,
                    notify: Callable[[str], None] | None = None,
                    progress: EvalProgress | None = None, record: str | Path | None = None
                    ) -> EvalReport:
    """Evaluate `source` by the protocol (a suite: `episodes` per task) and record it; obs_mode /
    exec_steps default to those the checkpoint was trained with. `notify` hears the settings
    before the episodes start; `record`: a folder for a video of each episode (pixel tasks)."""
    check_eval_input(episodes, max_steps=max_steps, exec_steps=exec_steps, num_envs=num_envs,
                     noise=noise, seed=seed, flow_steps=flow_steps)
    preflight.check_store(settings)
    with Store(settings.db_url) as store:
        ready = preflight.check_eval(settings, store, source, task_name, obs_mode=obs_mode, device=device,
                                     tokenizer=tokenizer)
        task, dev, folder, run_id = ready.task, ready.device, ready.folder, ready.source_run
        assert folder is not None
        trained, obs_mode = training_config(folder), ready.obs_mode
        record = None if record is None else Path(record).resolve()
        if record is not None and obs_mode != "pixels":
            raise FpoctlError(f"--record needs camera images: {task_name} is evaluated in obs_mode "
                              f"{obs_mode} (try --obs-mode pixels with a pixels policy)")
        steps, steps_from = resolve_exec_steps(exec_steps, folder, trained)
        policy = load_policy_folder(folder, dev, tokenizer=ready.tokenizer)
        if steps > policy.horizon:
            steps, steps_from = policy.horizon, f"{steps_from}, cut to the policy's chunk"
        budget = max_steps or task.max_steps
        setup = {"folder": str(folder), "exec_steps": steps, "exec_steps_from": steps_from,
                 "flow_steps": flow_steps, "seed": seed, "noise": noise, "max_steps": budget,
                 "obs_mode": obs_mode, "suite": task.is_suite,
                 "episodes_per_task": episodes,
                 "init_states": f"0..{episodes - 1} in order" if task.sweep else "drawn by seed"}
        if notify:
            for note in load_warnings(policy):
                notify(f"warning: {note}")
            notify(f"executing {steps} steps per chunk ({steps_from}), {noise} noise, "
                   f"at most {budget} steps per episode")
        seed_everything(seed)
        evaluator = Evaluator(task, num_envs=num_envs, obs_mode=obs_mode, seed=seed, workers=workers,
                              max_steps=budget)
        try:
            result = evaluator.run(policy, episodes, exec_steps=steps, flow_steps=flow_steps,
                                   device=dev, noise=noise, progress=progress, record=record)
        finally:
            evaluator.close()
        total = int(result.metrics[names.EVAL_EPISODES])
        if record is not None:
            setup["videos"] = result.videos
        store.add_evaluation(run_id=run_id, source=str(source), task=task_name, episodes=total,
                             success_rate=result.metrics[names.EVAL_SUCCESS],
                             mean_return=result.metrics[names.EVAL_RETURN],
                             details={**setup, **result.metrics,
                                      "tasks": [t.record() for t in result.tasks]})
        if run_id is not None:
            store.add_event(run_id, f"fpoctl eval on {task_name}: success "
                            f"{result.metrics[names.EVAL_SUCCESS]:.0%} over {total} episodes",
                            kind="eval")
    return EvalReport(result, setup)

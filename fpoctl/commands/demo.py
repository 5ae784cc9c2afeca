"""`fpoctl demo`: the embedded default job, offline on a CPU — scripted demonstrations ->
behaviour-cloned prior -> FPO fine-tuning, with the success rate before and after."""

from __future__ import annotations

from typing import Annotated

import typer

from fpoctl.commands.common import console, settings
from fpoctl.commands.train import progress_bar

# The embedded defaults, per task: (SFT overrides, FPO overrides). Tuned to finish on 2 CPU cores.
DEMOS = {
    "fast-goal": (
        {"expert_episodes": 10, "steps": 150, "batch_size": 128, "lr": 1e-3},
        {"iterations": 60, "explore_scale": 1.0, "eval_every": 10, "eval_episodes": 64,
         "checkpoint_every": 20},
    ),
}


def demo(
    ctx: typer.Context,
    task: Annotated[str, typer.Option(help="Task of the demo.")] = "fast-goal",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Run the embedded default job: expert demos -> SFT prior -> FPO fine-tune (offline, CPU).

    Example: fpoctl demo
    """
    from fpoctl.train import runner
    from fpoctl.train.config import FinetuneConfig, SFTConfig

    cfg = settings(ctx)
    sft_over, fpo_over = DEMOS.get(task, DEMOS["fast-goal"])
    console.print(f"[bold]1/2[/] behaviour cloning a flow policy on [bold]{task}[/] from scripted "
                  "expert demonstrations")
    with progress_bar("SFT", "step") as update:
        prior = runner.sft(cfg, SFTConfig(task=task, seed=seed, **sft_over), name=f"{task}-demo-prior",
                           progress=update)
    console.print(f"[bold]2/2[/] FPO fine-tuning run {prior.run_id}'s policy online")
    with progress_bar("FPO", "iter") as update:
        result = runner.finetune(cfg, FinetuneConfig(task=task, seed=seed, init=str(prior.run_id),
                                                     **fpo_over),
                                 name=f"{task}-demo-fpo", progress=update)
    before = result.before.get("eval/success_rate", 0.0)
    after = result.after.get("eval/success_rate", 0.0)
    console.print(f"\n[bold]{task}[/]: success {before:.0%} (behaviour-cloned prior) -> "
                  f"[bold green]{after:.0%}[/] after FPO (run {result.run_id}, zero-noise evaluation)")
    home = f" --home {cfg.home}" if ctx.find_root().params.get("home") else ""
    console.print(f"Open the dashboard:  fpoctl{home} dash --run {result.run_id}\n"
                  f"Or print the run:    fpoctl{home} runs show {result.run_id}")
    if result.status != "finished":
        raise typer.Exit(1)

"""`fpoctl demo`: the embedded default job, offline on a CPU — scripted demonstrations ->
behaviour-cloned prior -> FPO fine-tuning, with the success rate before and after."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from fpoctl.commands.common import console, settings
from fpoctl.commands.report import progress_bar
from fpoctl.errors import FpoctlError


def demo(
    ctx: typer.Context,
    task: Annotated[str, typer.Option(
        help="Task of the demo: one with a scripted expert and a recipe, e.g. libero-spatial/0 "
             "(state mode, ~25 min on 2 CPU cores). (default: fast-goal)")] = "fast-goal",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Run the embedded default job: expert demos -> SFT prior -> FPO fine-tune (offline, CPU).

    The settings are the task's recipe (fpoctl/train/recipes.py). Example: fpoctl demo
    """
    from fpoctl.envs import get_task
    from fpoctl.train.config import FinetuneConfig, SFTConfig
    from fpoctl.train.finetune_job import finetune
    from fpoctl.train.preflight import check_demo
    from fpoctl.train.recipes import recipe_for
    from fpoctl.train.sft_job import sft

    cfg = settings(ctx)
    spec = get_task(task)  # bad input fails here, before any run exists
    recipe = recipe_for(task)
    if spec.expert is None or recipe is None:
        raise FpoctlError(f"the demo needs a task with a scripted expert and a recipe, e.g. "
                          f"fast-goal or libero-spatial/0; {task} has "
                          f"{'no expert' if spec.expert is None else 'no recipe'}")
    sft_cfg = SFTConfig(task=task, seed=seed, **recipe.sft)
    ft_cfg = FinetuneConfig(task=task, seed=seed, **recipe.finetune)
    check_demo(cfg, sft_cfg, ft_cfg)
    console.print(f"[bold]1/2[/] behaviour cloning a flow policy on [bold]{task}[/] from scripted "
                  f"expert demonstrations ({recipe.note})")
    with progress_bar("SFT", "step") as update:
        prior = sft(cfg, sft_cfg, name=f"{task}-demo-prior", progress=update)
    console.print(f"[bold]2/2[/] FPO fine-tuning run {prior.run_id}'s policy online "
                  "(evaluates the prior first)")
    with progress_bar("FPO", "iter") as update:
        result = finetune(cfg, replace(ft_cfg, init=str(prior.run_id)), name=f"{task}-demo-fpo",
                          progress=update)
    before = result.before.get("eval/success_rate", 0.0)
    after = result.after.get("eval/success_rate", 0.0)
    episodes = int(result.after.get("eval/episodes", 0))
    console.print(f"\n[bold]{task}[/]: success {before:.0%} (behaviour-cloned prior) -> "
                  f"[bold green]{after:.0%}[/] after FPO (run {result.run_id}, zero-noise evaluation, "
                  f"{episodes} episodes)")
    home = f" --home {cfg.home}" if ctx.find_root().params.get("home") else ""
    console.print(f"Open the dashboard:  fpoctl{home} dash --run {result.run_id}\n"
                  f"Or print the run:    fpoctl{home} runs show {result.run_id}")
    if result.status != "finished":
        raise typer.Exit(1)

"""`fpoctl sft`, `fpoctl finetune`: train flow policies (`fpoctl eval`: evaluate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fpoctl.commands.common import console, open_store, script_result, settings
from fpoctl.commands.placement import (
    ForceOpt,
    ForegroundOpt,
    MasterAddrOpt,
    MasterPortOpt,
    NNodesOpt,
    NodeRankOpt,
)
from fpoctl.commands.report import attached_progress, report_started, summary
from fpoctl.errors import FpoctlError

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="A TOML file of config values.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override one config value: key=value (repeatable), e.g. --set actor_lr=1e-5.")]
NameOpt = Annotated[str | None, typer.Option(help="A name for the run. (default: TASK-KIND)")]
SeedOpt = Annotated[int | None, typer.Option(help="Seed. (default: 0)")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N. (default: auto)")]
RecipeOpt = Annotated[str | None, typer.Option(
    help="Start from a task recipe's settings (fpoctl/train/recipes.py: fast-goal, libero-state, ...); "
    "--config and --set win over it.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the run id.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run id and the result as JSON.")]
ShowOpt = Annotated[bool, typer.Option(
    help="Print the resolved config as TOML with docs (a --config file); do not run.")]


def finetune(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Option(help="Task (see `fpoctl tasks`). (default: fast-goal)")] = None,
    policy: Annotated[str | None, typer.Option(help="mlp, pi0, pi0-tiny. (default: mlp)")] = None,
    init: Annotated[str | None, typer.Option(help="Start from a run, a pulled model or a folder.")] = None,
    iterations: Annotated[int | None, typer.Option(help="Iterations. (default: 100)")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    name: NameOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    gpus: Annotated[str | None, typer.Option(help="GPUs to train on, one per process: 0,1,2,3.")] = None,
    nproc: Annotated[int | None, typer.Option(
        help="Processes on this machine (torchrun ranks; each its own envs and seed). "
        "[default: one per --gpus entry, else 1]")] = None,
    nnodes: NNodesOpt = 1,
    node_rank: NodeRankOpt = 0,
    master_addr: MasterAddrOpt = None,
    master_port: MasterPortOpt = None,
    foreground: ForegroundOpt = False,
    force: ForceOpt = False,
    resume: Annotated[str | None, typer.Option(help="Resume this run (same as `fpoctl resume RUN`).")
                      ] = None,
    recipe: RecipeOpt = None,
    show_config: ShowOpt = False,
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Fine-tune a flow policy online with FPO, as a background job (or --foreground).

    The run, its metrics and checkpoints go to the store; the job's output to runs/<id>/train.log.

    Examples:
      fpoctl finetune --task fast-goal --init 3 --iterations 40
      fpoctl finetune --task libero-spatial --policy pi0 --init pi0-libero --set actor_lr=1e-5
      fpoctl finetune --gpus 0,1,2,3 ...      # 4 ranks under torchrun, gradients averaged
      fpoctl finetune --gpus 0,1,2,3 --set scope=full --set shard=fsdp ...  # all of pi0, sharded
      fpoctl finetune --foreground --iterations 20
    Every config key (`--set key=value`) with its meaning and value: add `--show-config` (TOML,
    a --config file). From a run (--init RUN), its task, obs_mode, chunk and sizes are taken unless set.
    On nodes 1.. of a multi-node job: the same command with --node-rank K (joins node 0's run).
    """
    from fpoctl import jobs

    launch = jobs.Launch(nproc=len(_gpu_list(gpus) or [0]) if nproc is None else nproc, nnodes=nnodes,
                         node_rank=node_rank, master_addr=master_addr, master_port=master_port)
    if resume:
        with attached_progress(foreground and not (json_ or quiet)) as update:
            started = jobs.resume(settings(ctx), resume, detach=not foreground, force=force,
                                  launch=launch, progress=update)
        if started.result is not None and (json_ or quiet):
            script_result(started.result, json_=json_)
        report_started(started, json_=json_, quiet=quiet)
        return
    cfg = _configure(ctx, "finetune", config, set_, recipe, show=show_config, quiet=quiet or json_, task=task,
                     policy=policy, init=init, iterations=iterations, seed=seed, device=device)
    if node_rank > 0:
        launch.check()
        console.print(f"joining the run of node 0 ({master_addr}) with {launch.nproc} process(es)")
        raise typer.Exit(jobs.join_job(settings(ctx), launch))
    with attached_progress(foreground and not (json_ or quiet)) as update:
        started = jobs.start_finetune(settings(ctx), cfg, name=name, gpus=_gpu_list(gpus), launch=launch,
                                      detach=not foreground, force=force, progress=update)
    if started.result is not None and (json_ or quiet):
        script_result(started.result, json_=json_)
    report_started(started, json_=json_, quiet=quiet)


def _gpu_list(gpus: str | None) -> list[int] | None:
    if not gpus:
        return None
    try:
        return [int(g) for g in gpus.split(",") if g.strip()]
    except ValueError:
        raise FpoctlError(f"--gpus expects indices like 0,1, got {gpus!r}") from None


def sft(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Option(help="Task. (default: fast-goal)")] = None,
    demos: Annotated[str | None, typer.Option(help="Demonstrations .npz (see fpoctl/envs/demos.py).")] = None,
    expert: Annotated[int | None, typer.Option(help="Collect N scripted-expert episodes instead.")] = None,
    policy: Annotated[str | None, typer.Option(help="mlp, pi0-tiny, or a run/model/folder to start from.")
                      ] = None,
    steps: Annotated[int | None, typer.Option(help="Gradient steps. (default: 2000)")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    name: NameOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    recipe: RecipeOpt = None,
    show_config: ShowOpt = False,
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Behaviour-clone a flow policy from demonstrations (the prior FPO fine-tunes).

    Example: fpoctl sft --task fast-goal --expert 20 --steps 1000
    Every config key with its meaning and value: add `--show-config` (TOML, a --config file).
    """
    cfg = _configure(ctx, "sft", config, set_, recipe, show=show_config, quiet=quiet or json_, task=task,
                     demos=demos, expert_episodes=expert, policy=policy, steps=steps, seed=seed,
                     device=device)
    from fpoctl.train.sft_job import sft

    with attached_progress(not (json_ or quiet), "SFT", "step") as update:
        result = sft(settings(ctx), cfg, name=name, progress=update)
    if json_ or quiet:
        script_result(result, json_=json_)
    summary(result, "sft")


def _configure(ctx: typer.Context, kind: str, toml_path: Path | None, sets: list[str] | None,
               recipe: str | None, *, show: bool, quiet: bool, **options: Any) -> Any:
    """The job's config (recipe <- what its init was trained with <- the user's file, options and
    --set), shown as TOML (`show`) or run; says what it inherited (on stdout: stderr is for the one
    error line), except for scripts (`quiet`: -q / --json)."""
    from fpoctl.train.config import to_toml, user_values
    from fpoctl.train.configure import configure
    from fpoctl.train.lineage import CONFIG_CLASSES

    user = user_values(CONFIG_CLASSES[kind], toml_path, sets, **options)
    made = configure(kind, user, recipe=recipe, store=lambda: open_store(ctx))
    if show:
        typer.echo(to_toml(made.config, kind, made.note()), nl=False)
        raise typer.Exit
    if (note := made.note()) and not quiet:
        console.print(note, highlight=False, soft_wrap=True)
    return made.config

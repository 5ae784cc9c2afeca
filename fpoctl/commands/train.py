"""`fpoctl sft`, `fpoctl finetune`: train flow policies (`fpoctl eval`: evaluate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fpoctl.commands.common import console, settings
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
from fpoctl.train.config import FinetuneConfig, SFTConfig, resolve, to_toml

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="A TOML file of config values.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override one config value: key=value (repeatable), e.g. --set actor_lr=1e-5.")]
NameOpt = Annotated[str | None, typer.Option(help="A name for the run. (default: TASK-KIND)")]
SeedOpt = Annotated[int | None, typer.Option(help="Seed. (default: 0)")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N. (default: auto)")]
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
    show_config: ShowOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the run id.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fine-tune a flow policy online with FPO, as a background job (or --foreground).

    The run, its metrics and checkpoints go to the store; the job's output to runs/<id>/train.log.

    Examples:
      fpoctl finetune --task fast-goal --init 3 --iterations 40
      fpoctl finetune --task libero-spatial --policy pi0 --init pi0-libero --set actor_lr=1e-5
      fpoctl finetune --gpus 0,1,2,3 ...      # 4 ranks under torchrun, gradients averaged
      fpoctl finetune --gpus 0,1,2,3 --set scope=full --set shard=fsdp ...  # all of pi0, sharded
      fpoctl finetune --foreground --iterations 20
    Every config key (`--set key=value`) with its meaning and value: add `--show-config`.
    On nodes 1.. of a multi-node job: the same command with --node-rank K (joins node 0's run).
    """
    from fpoctl import jobs

    launch = jobs.Launch(nproc=len(_gpu_list(gpus) or [0]) if nproc is None else nproc, nnodes=nnodes,
                         node_rank=node_rank, master_addr=master_addr, master_port=master_port)
    if resume:
        with attached_progress(foreground) as update:
            started = jobs.resume(settings(ctx), resume, detach=not foreground, force=force,
                                  launch=launch, progress=update)
        report_started(started, json_=json_, quiet=quiet)
        return
    cfg = resolve(FinetuneConfig, config, set_, task=task, policy=policy, init=init,
                  iterations=iterations, seed=seed, device=device)
    if show_config:
        _show_config(cfg, "finetune")
        return
    if node_rank > 0:
        launch.check()
        console.print(f"joining the run of node 0 ({master_addr}) with {launch.nproc} process(es)")
        raise typer.Exit(jobs.join_job(settings(ctx), launch))
    with attached_progress(foreground) as update:
        started = jobs.start_finetune(settings(ctx), cfg, name=name, gpus=_gpu_list(gpus), launch=launch,
                                      detach=not foreground, force=force, progress=update)
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
    show_config: ShowOpt = False,
) -> None:
    """Behaviour-clone a flow policy from demonstrations (the prior FPO fine-tunes).

    Example: fpoctl sft --task fast-goal --expert 20 --steps 1000
    """
    cfg = resolve(SFTConfig, config, set_, task=task, demos=demos, expert_episodes=expert,
                  policy=policy, steps=steps, seed=seed, device=device)
    if show_config:
        _show_config(cfg, "sft")
        return
    from fpoctl.train.sft_job import sft

    with attached_progress(True, "SFT", "step") as update:
        result = sft(settings(ctx), cfg, name=name, progress=update)
    summary(result, "sft")


def _show_config(cfg: object, command: str) -> None:
    """The resolved config as TOML (plain text: no wrapping, so `> run.toml` is a --config file)."""
    typer.echo(to_toml(cfg, command), nl=False)

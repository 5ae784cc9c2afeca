"""`fpoctl stop`, `fpoctl resume`, `fpoctl logs`: control a run's training job."""

from __future__ import annotations

from typing import Annotated

import typer

from fpoctl import jobs
from fpoctl.commands.common import console, script_result, settings
from fpoctl.commands.placement import (
    ForceOpt,
    ForegroundOpt,
    MasterAddrOpt,
    MasterPortOpt,
    NNodesOpt,
    NodeRankOpt,
)
from fpoctl.commands.report import attached_progress, report_started

RunArg = Annotated[str, typer.Argument(help="Run id or name.")]


def stop(
    ctx: typer.Context,
    run: RunArg,
    now: Annotated[bool, typer.Option("--now", help="Kill the job at once (SIGKILL); no new checkpoint.")
                   ] = False,
    wait: Annotated[float, typer.Option(help="Wait up to this many seconds for the job to end.")] = 0.0,
) -> None:
    """Stop a run: it finishes the current iteration, writes a checkpoint and ends `stopped`.

    Examples:
      fpoctl stop 7            # graceful; resume later with `fpoctl resume 7`
      fpoctl stop 7 --wait 600
      fpoctl stop 7 --now      # kill; a resume continues from the last checkpoint
    """
    console.print(jobs.stop_run(settings(ctx), run, now=now, wait=wait), highlight=False)


def resume(
    ctx: typer.Context,
    run: RunArg,
    foreground: ForegroundOpt = False,
    force: ForceOpt = False,
    nnodes: NNodesOpt = 1,
    node_rank: NodeRankOpt = 0,
    master_addr: MasterAddrOpt = None,
    master_port: MasterPortOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the run id.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Resume a stopped, failed or lost fine-tuning run from its last checkpoint (detached).

    Model, optimisers, critic, RNG and counters come back; metric rows logged after that checkpoint
    are dropped, so the curves have no gaps or duplicates.

    Example: fpoctl resume 7 && fpoctl logs 7 -f
    """
    launch = jobs.Launch(nnodes=nnodes, node_rank=node_rank, master_addr=master_addr,
                         master_port=master_port)
    with attached_progress(foreground and not (json_ or quiet)) as update:
        started = jobs.resume(settings(ctx), run, detach=not foreground, force=force, launch=launch,
                              progress=update)
    if started.result is not None and (json_ or quiet):
        script_result(started.result, json_=json_)
    report_started(started, json_=json_, quiet=quiet)


def logs(
    ctx: typer.Context,
    run: RunArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
                      ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Only the last N lines (0 = all).")] = 0,
) -> None:
    """Print a detached run's log (runs/<id>/train.log).

    Example: fpoctl logs 7 -f
    """
    from fpoctl.jobs.logs import show_log

    try:
        show_log(settings(ctx), run, lambda text: print(text, end="", flush=True), lines=lines,
                 follow=follow)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


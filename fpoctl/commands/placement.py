"""What `fpoctl finetune` and `fpoctl resume` share: where the job runs (detached or attached,
devices, torchrun placement) and how a started job is reported."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from fpoctl.commands.common import console, print_json

if TYPE_CHECKING:
    from fpoctl.jobs import Started

Progress = Callable[[int, int, dict[str, float]], None]

ForegroundOpt = Annotated[bool, typer.Option(
    "--foreground", help="Train attached to this terminal (Ctrl-C stops with a checkpoint) instead "
    "of detached.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Start even on a GPU that a live job holds.")]
NNodesOpt = Annotated[int, typer.Option(help="torchrun --nnodes: machines in the job.")]
NodeRankOpt = Annotated[int, typer.Option(help="torchrun --node-rank of this machine (0 owns the run).")]
MasterAddrOpt = Annotated[str | None, typer.Option(help="torchrun --master-addr: node 0's address.")]
MasterPortOpt = Annotated[int | None, typer.Option(help="torchrun --master-port. (default: 29500)")]


@contextmanager
def attached_progress(foreground: bool) -> Iterator[Progress | None]:
    """A progress bar when the job trains in this process (it appears with the first iteration;
    a torchrun job attached to this terminal prints its own lines), else nothing."""
    from fpoctl.commands.train import progress_bar

    if not foreground:
        yield None
        return
    with ExitStack() as stack:
        bar: Progress | None = None

        def update(step: int, total: int, metrics: dict[str, float]) -> None:
            nonlocal bar
            if bar is None:
                bar = stack.enter_context(progress_bar("FPO", "iter"))
            bar(step, total, metrics)

        yield update


def report_started(started: Started, *, json_: bool = False, quiet: bool = False) -> None:
    """Print a started job: the run id and how to watch it (detached), or its summary."""
    from fpoctl.commands.train import summary

    rid = started.run_id
    if started.result is not None:  # trained in this process
        if json_:
            print_json(started.result.__dict__)
        summary(started.result, "finetune")
        return
    if json_:
        print_json({"run_id": rid, "status": started.status, "pid": started.pid})
    elif quiet:
        typer.echo(rid)
    elif started.detached:
        console.print(f"run {rid} started in the background (pid {started.pid})", highlight=False)
        console.print(f"watch: fpoctl dash --run {rid}   ·   fpoctl logs {rid} -f")
        console.print(f"stop:  fpoctl stop {rid}   ·   resume: fpoctl resume {rid}")
    else:
        console.print(f"run {rid} {started.status}")
        console.print(f"watch: fpoctl dash --run {rid}   ·   fpoctl runs show {rid}")
    if not started.detached and started.status != "finished":
        raise typer.Exit(1)

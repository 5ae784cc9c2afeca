"""The options `fpoctl finetune` and `fpoctl resume` share: where the job runs (detached or
attached, GPUs held by other jobs, torchrun placement over nodes)."""

from __future__ import annotations

from typing import Annotated

import typer

ForegroundOpt = Annotated[bool, typer.Option(
    "--foreground", help="Train attached to this terminal (Ctrl-C stops with a checkpoint) instead "
    "of detached.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Start even on a GPU that a live job holds.")]
NNodesOpt = Annotated[int, typer.Option(help="torchrun --nnodes: machines in the job.")]
NodeRankOpt = Annotated[int, typer.Option(help="torchrun --node-rank of this machine (0 owns the run).")]
MasterAddrOpt = Annotated[str | None, typer.Option(help="torchrun --master-addr: node 0's address.")]
MasterPortOpt = Annotated[int | None, typer.Option(help="torchrun --master-port. (default: 29500)")]

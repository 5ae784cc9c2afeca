"""How a training job shows itself in this terminal: a progress line while it trains here, the
summary when it ends, and what to run next when it started in the background."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fpoctl.commands.common import console, print_json

if TYPE_CHECKING:  # the trainer imports torch: load it only when a command runs
    from fpoctl.jobs import Started
    from fpoctl.train.job import JobResult

Update = Callable[[int, int, dict[str, float]], None]
"""Called after each iteration (or step) with (step, total, metrics)."""


@contextmanager
def progress_bar(title: str, unit: str) -> Iterator[Update]:
    """A rich progress line: iteration, env steps, success, return, ETA."""
    columns = [TextColumn(f"[bold]{title}[/]"), BarColumn(), TextColumn(f"{unit} {{task.completed}}/"
               "{task.total}"), TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(title, total=None, stats="")

        def update(step: int, total: int, m: dict[str, float]) -> None:
            parts = []
            if "env/steps_total" in m:
                parts.append(f"env steps {int(m['env/steps_total']):,}")
            for key, label in (("rollout/success_rate", "success"), ("eval/success_rate", "eval"),
                               ("rollout/return", "return"), ("sft/loss", "loss")):
                if key in m:
                    parts.append(f"{label} {m[key]:.0%}" if "success" in key else f"{label} {m[key]:.3g}")
            bar.update(task, completed=step, total=total, stats=" · ".join(parts))

        yield update


def summary(result: JobResult, kind: str) -> None:
    """The end of a job that trained in this process; exit 1 unless it finished."""
    before = result.before.get("eval/success_rate")
    after = result.after.get("eval/success_rate")
    line = f"run {result.run_id} {result.status}"
    if before is not None or after is not None:
        fmt = lambda v: "-" if v is None else f"{v:.0%}"  # noqa: E731
        line += f": success {fmt(before)} -> {fmt(after)}" if kind == "finetune" \
            else f": success {fmt(after)}"
    console.print(line)
    if result.checkpoint:
        console.print(f"checkpoint: {result.checkpoint}")
    console.print(f"watch: fpoctl dash --run {result.run_id}   ·   fpoctl runs show {result.run_id}")
    if result.status != "finished":
        raise typer.Exit(1)


@contextmanager
def attached_progress(foreground: bool, title: str = "FPO", unit: str = "iter") -> Iterator[Update | None]:
    """A progress bar when the job trains in this process (it appears with the first iteration,
    after the pre-flight; a torchrun job attached to this terminal prints its own lines), else
    nothing."""
    if not foreground:
        yield None
        return
    with ExitStack() as stack:
        bar: Update | None = None

        def update(step: int, total: int, metrics: dict[str, float]) -> None:
            nonlocal bar
            if bar is None:
                bar = stack.enter_context(progress_bar(title, unit))
            bar(step, total, metrics)

        yield update


def report_started(started: Started, *, json_: bool = False, quiet: bool = False) -> None:
    """Print a started job: the run id and how to watch it (detached), or its summary."""
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

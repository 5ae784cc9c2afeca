"""How a training job shows itself in this terminal: a progress bar while it trains here (one
timestamped line per iteration and phase when the output is not a terminal: nohup, CI), the
summary when it ends, and what to run next when it started in the background."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fpoctl.commands.common import console, print_json
from fpoctl.train.progress import LogLines

if TYPE_CHECKING:  # the trainer imports torch: load it only when a command runs
    from fpoctl.jobs import Started
    from fpoctl.train.job import JobResult
    from fpoctl.train.progress import Progress as JobProgress

STATS = (("rollout/success_rate", "success"), ("eval/success_rate", "eval"),
         ("rollout/return", "return"), ("sft/loss", "loss"))
"""Metrics the bar shows after the env steps: key, label."""


class Bar:
    """A `train.progress.Progress` on a terminal: a rich line of iterations (env steps, success,
    return, elapsed, ETA) and below it the phase under way with its own k/N. It appears with the
    first report (after the pre-flight), and `close()` ends it."""

    def __init__(self, title: str, unit: str, out: Console = console) -> None:
        self.title, self.unit, self.out = title, unit, out
        self._bar: Progress | None = None
        self._main: TaskID | None = None
        self._phase: TaskID | None = None

    def _shown(self) -> Progress:
        if self._bar is None:
            columns = [TextColumn("{task.description}"), BarColumn(),
                       TextColumn("{task.fields[count]}"), TextColumn("{task.fields[stats]}"),
                       TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
            self._bar = Progress(*columns, console=self.out, transient=False)
            self._bar.start()
            self._main = self._bar.add_task(f"[bold]{self.title}[/]", total=None, count="", stats="")
        return self._bar

    def __call__(self, step: int, total: int, metrics: dict[str, float]) -> None:
        bar = self._shown()
        parts = [f"env steps {int(metrics['env/steps_total']):,}"] if "env/steps_total" in metrics else []
        parts += [f"{label} {metrics[k]:.0%}" if "success" in k else f"{label} {metrics[k]:.3g}"
                  for k, label in STATS if k in metrics]
        assert self._main is not None
        bar.update(self._main, completed=step, total=total, count=f"{self.unit} {step}/{total}",
                   stats=" · ".join(parts))
        self._end_phase()

    def phase(self, text: str, done: int | None = None, total: int | None = None) -> None:
        bar = self._shown()
        if self._phase is None:
            self._phase = bar.add_task(f"  {text}", total=total, completed=done or 0, count="", stats="")
        else:
            bar.update(self._phase, description=f"  {text}", completed=done or 0, total=total)
        bar.refresh()

    def note(self, text: str) -> None:
        self._shown().console.print(text, highlight=False)

    def _end_phase(self) -> None:
        if self._bar is not None and self._phase is not None:
            self._bar.remove_task(self._phase)
            self._phase = None

    def close(self) -> None:
        """Stop drawing (the last state stays on screen)."""
        if self._bar is not None:
            self._end_phase()
            self._bar.stop()
            self._bar = None


@contextmanager
def progress_bar(title: str, unit: str) -> Iterator[JobProgress]:
    """A `Bar` on a terminal; elsewhere (output to a file or a pipe) timestamped `LogLines`."""
    if not console.is_terminal:
        yield LogLines(unit)
        return
    bar = Bar(title, unit)
    try:
        yield bar
    finally:
        bar.close()


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
def attached_progress(foreground: bool, title: str = "FPO", unit: str = "iter"
                      ) -> Iterator[JobProgress | None]:
    """The job's progress when it trains in this process (`progress_bar`), else nothing (a
    torchrun job attached to this terminal prints its own lines)."""
    if not foreground:
        yield None
        return
    with progress_bar(title, unit) as shown:
        yield shown


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

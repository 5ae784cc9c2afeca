"""`fpoctl eval`: the evaluation protocol on a run, a pulled model or a folder; the per-task table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fpoctl.commands.common import console, print_json, settings
from fpoctl.fmt import percent, ranges

if TYPE_CHECKING:
    from fpoctl.train.protocol import EvalProgress

MAX_STEPS_HELP = ("Episode budget in env steps, after LIBERO's 10 settle steps. (default: the task's; "
                  "LIBERO suites use openpi's: spatial 220, object 280, goal 300, libero-10 520; "
                  "LeRobot's are 280, 280, 300, 520)")


def task_table(tasks: list[dict[str, Any]], title: str | None = None) -> Table:
    """One row per task of a suite evaluation (records as stored) and the mean over tasks."""
    table = Table(box=None, header_style="bold", title=title, title_justify="left")
    for col, justify in (("task", "right"), ("prompt", "left"), ("episodes", "right"),
                         ("success", "right"), ("return", "right"), ("length", "right"),
                         ("init states", "left")):
        table.add_column(col, justify=justify, overflow="ellipsis", no_wrap=col != "init states",
                         max_width=60 if col == "prompt" else None)
    for t in tasks:
        table.add_row(str(t["index"]), t.get("prompt", ""), str(t["episodes"]),
                      percent(t["success_rate"]), f"{t['return']:.3g}", f"{t['episode_len']:.0f}",
                      ranges(t.get("init_states") or []))
    if tasks:
        mean = sum(t["success_rate"] for t in tasks) / len(tasks)
        table.add_row("mean", "", str(sum(t["episodes"] for t in tasks)), f"[bold]{percent(mean)}[/]",
                      "", "", "", end_section=True)
    return table


@contextmanager
def episode_progress(enabled: bool) -> Iterator[EvalProgress | None]:
    """A rich progress line: the task (k/n for a suite), episodes done of all, ETA."""
    if not enabled:
        yield None
        return
    if not console.is_terminal:  # nohup, CI, a pipe: timestamped lines instead of a bar
        yield _episode_lines()
        return
    columns = [TextColumn("[bold]eval[/] {task.fields[label]}"), BarColumn(),
               TextColumn("episodes {task.completed}/{task.total}"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn()]
    bar = Progress(*columns, console=console, transient=False)
    shown: list[TaskID] = []  # the line appears with the first episode, not before a check fails

    def update(name: str, number: int, tasks: int, done: int, episodes: int) -> None:
        if not shown:
            bar.start()
            shown.append(bar.add_task("eval", total=None, label=""))
        label = f"{name} (task {number}/{tasks}: {done}/{episodes})" if tasks > 1 else name
        bar.update(shown[0], completed=(number - 1) * episodes + done, total=tasks * episodes,
                   label=label)

    try:
        yield update
    finally:
        if shown:
            bar.stop()


def _episode_lines() -> EvalProgress:
    """Eval progress as timestamped lines: the first, every 10 s, and each task's last."""
    from fpoctl.train.progress import LogLines

    lines = LogLines("episodes")

    def update(name: str, number: int, tasks: int, done: int, episodes: int) -> None:
        where = f"{name} (task {number}/{tasks})" if tasks > 1 else name
        lines.phase(f"eval {where}: {done}/{episodes} episodes", done, episodes)

    return update


def evaluate(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A run (its best checkpoint), a pulled model or a folder.")],
    task: Annotated[str, typer.Option(help="Task or suite to evaluate on.")],
    episodes: Annotated[int, typer.Option(
        help="Episodes, on the recorded init states 0..N-1 in order (a suite: per task).")] = 50,
    noise: Annotated[str, typer.Option(
        help="Sampling: zero (from e = 0, FPO's evaluation) or random (as openpi and LeRobot).")
    ] = "zero",
    max_steps: Annotated[int | None, typer.Option(help=MAX_STEPS_HELP)] = None,
    obs_mode: Annotated[str | None, typer.Option(
        help="state or pixels. (default: as the checkpoint was trained, else the task's)")] = None,
    exec_steps: Annotated[int | None, typer.Option(
        help="Env steps executed per action chunk. (default: as trained, else a pulled model's "
             "n_action_steps, else 4)")] = None,
    num_envs: Annotated[int, typer.Option(help="Parallel environments.")] = 16,
    workers: Annotated[bool, typer.Option(help="Environments in worker processes.")] = False,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
    record: Annotated[Path | None, typer.Option(
        help="Write a video of each episode into this folder (pixel tasks), named "
             "[task<i>_]ep<k>_<success|failure>.mp4.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON (metrics, setup, tasks).")] = False,
) -> None:
    """Evaluate a policy by the published protocol; the result is recorded in the store.

    A suite (libero-spatial) runs each of its tasks on init states 0..N-1 and reports the mean over
    tasks (10 x 50 = 500 episodes by default); libero-spatial/3 is one task.

    Examples:
      fpoctl eval 3 --task fast-goal --episodes 100
      fpoctl eval pi0-libero --task libero-spatial --noise random --max-steps 280
      fpoctl eval 7 --task libero-spatial/0 --episodes 5 --record videos/run7
    """
    from fpoctl.train.eval_job import evaluate_policy

    notify = None if json_ else lambda line: console.print(line, highlight=False)
    with episode_progress(not json_) as progress:
        report = evaluate_policy(settings(ctx), source, task_name=task, episodes=episodes,
                                 obs_mode=obs_mode, exec_steps=exec_steps, num_envs=num_envs,
                                 workers=workers, seed=seed, device=device, noise=noise,
                                 max_steps=max_steps, notify=notify, progress=progress,
                                 record=record)
    if json_:
        print_json(report.as_json())
        return
    m = report.result.metrics
    if report.result.videos:
        console.print(f"{len(report.result.videos)} videos in {record}")
    if report.result.is_suite:
        console.print(task_table([t.record() for t in report.result.tasks]))
        console.print(f"{source} on {task}: success {m['eval/success_rate']:.0%} (mean over "
                      f"{len(report.result.tasks)} tasks, {int(m['eval/episodes'])} episodes)")
        return
    console.print(f"{source} on {task}: success {m['eval/success_rate']:.0%}, return "
                  f"{m['eval/return']:.3g}, length {m['eval/episode_len']:.0f} "
                  f"over {int(m['eval/episodes'])} episodes")

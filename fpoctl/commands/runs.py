"""`fpoctl runs list|show|rm`: look at and tidy the runs in the store."""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fpoctl.commands.common import ago, console, open_store, print_json, settings
from fpoctl.errors import FpoctlError
from fpoctl.fmt import duration, number, sparkline
from fpoctl.metric_names import EVAL_SUCCESS

if TYPE_CHECKING:
    from fpoctl.store import Evaluation, Run, Store
    from fpoctl.train.lineage import EvaluatedCheckpoint

app = typer.Typer(no_args_is_help=True, help="List, inspect and delete runs.")

SUMMARY_KEYS = [
    "rollout/success_rate", "eval/success_rate", "rollout/return", "env/steps_total",
    "fpo/ratio_mean", "fpo/clip_frac", "fpo/approx_kl", "critic/q_mean", "critic/q_std",
    "perf/env_steps_per_s",
]
TASK_SUCCESS = re.compile(r"^eval/task_(\d+)/success_rate$")  # a suite's per-task evaluations
STATUS_STYLE = {"running": "green", "finished": "blue", "failed": "red", "stopped": "yellow",
                "lost": "magenta", "queued": "dim"}


def run_summary(store: Store, runs: list[Run]) -> list[dict]:
    """One dict per run with the numbers a table shows (status includes `lost`)."""
    from fpoctl.jobs.process import display_status
    from fpoctl.store import elapsed_s

    ids = [r.id for r in runs]
    latest = store.latest_values(ids, SUMMARY_KEYS)
    best = store.best_values(ids, "eval/success_rate")
    now = time.time()
    out = []
    for r in runs:
        status = display_status(r, now)
        out.append({
            "id": r.id, "name": r.name, "kind": r.kind, "task": r.task, "policy": r.policy,
            "status": status, "step": r.step, "total_steps": r.total_steps,
            "env_steps": latest[r.id].get("env/steps_total"),
            "success": latest[r.id].get("eval/success_rate",
                                        latest[r.id].get("rollout/success_rate")),
            "best_success": best.get(r.id),
            "return": latest[r.id].get("rollout/return"),
            "created": r.created, "elapsed": elapsed_s(r, now, alive=status == "running"),
            "error": r.error,
        })
    return out


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.0f}%" if pct else f"{v:.3g}"


@app.command("list")
def list_runs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only runs with this stored status.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many (newest first).")] = 50,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List runs, newest first.

    Example: fpoctl runs list --status running
    """
    with open_store(ctx) as store:
        rows = run_summary(store, store.list_runs(status=status, limit=limit))
    if json_:
        print_json(rows)
        return
    if not rows and status:
        from fpoctl.store.models import RUN_STATUSES

        known = "" if status in RUN_STATUSES else f" (statuses: {', '.join(RUN_STATUSES)})"
        console.print(f"No runs with status {status}{known}.", highlight=False, markup=False)
        return
    if not rows:
        console.print("No runs yet. Start one with [bold]fpoctl finetune --task TASK[/].")
        return
    table = Table(box=None, header_style="bold")
    cols = ["id", "name", "kind", "task", "policy", "status", "iter", "env steps", "success", "best",
            "return", "elapsed", "created"]
    if console.width < 140:  # narrow terminals: keep what identifies a run and how it is doing
        cols = [c for c in cols if c not in ("kind", "policy", "env steps", "created")]
    for col in cols:
        table.add_column(col, justify="right" if col in ("id", "iter", "env steps") else "left",
                         no_wrap=col in ("id", "status", "iter"))
    for r in rows:
        st = r["status"]
        cells = {
            "id": str(r["id"]), "name": r["name"], "kind": r["kind"], "task": r["task"],
            "policy": r["policy"], "status": f"[{STATUS_STYLE.get(st, '')}]{st}[/]",
            "iter": f"{r['step']}/{r['total_steps']}" if r["total_steps"] else str(r["step"]),
            "env steps": number(r["env_steps"]), "success": _fmt(r["success"], pct=True),
            "best": _fmt(r["best_success"], pct=True), "return": _fmt(r["return"]),
            "elapsed": duration(r["elapsed"]), "created": ago(r["created"]),
        }
        table.add_row(*(cells[c] for c in cols))
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="Run id or name.")],
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one run: config, status, key metrics with sparklines, checkpoints, recent events.

    Example: fpoctl runs show 3
    """
    from fpoctl.train.lineage import eval_checkpoint, lineage, overrides, success_arc

    with open_store(ctx) as store:
        r = store.get_run(run)
        summary = run_summary(store, [r])[0]
        curves = {k: [v for _, v in store.series(r.id, k)] for k in [*SUMMARY_KEYS, *task_keys(store, r.id)]}
        ckpts = store.checkpoints(r.id)
        events = store.events_since(r.id)[-10:]
        evals = store.evaluations(r.id)[:5]
        chain = lineage(store, r)
        arc = success_arc(store.series(r.id, EVAL_SUCCESS))
    changed = overrides(r.kind, r.config or {})
    videos = training_videos(settings(ctx).run_dir(r.id))
    used = [eval_checkpoint(e.details or {}, ckpts, r.total_steps) for e in evals]
    if json_:
        print_json({
            **summary, "config": r.config, "overrides": changed, "lineage": chain,
            "success_arc": dataclasses.asdict(arc), "videos": videos, "seed": r.seed, "git_sha": r.git_sha,
            "metrics": {k: v[-1] for k, v in curves.items() if v},
            "checkpoints": [{"step": c.step, "path": c.path, "sha256": c.sha256,
                             "best": c.is_best} for c in ckpts],
            "events": [{"time": e.time, "level": e.level, "kind": e.kind,
                        "message": e.message} for e in events],
            "evaluations": [{"task": e.task, "episodes": e.episodes, "success_rate": e.success_rate,
                             "mean_return": e.mean_return, "created": e.created, **e.details,
                             "checkpoint": {"step": u.step, "path": u.path, "label": u.label}}
                            for e, u in zip(evals, used, strict=True)],
        })
        return
    st = summary["status"]
    console.print(f"[bold]Run {r.id}[/] {r.name}  [{STATUS_STYLE.get(st, '')}]{st}[/]"
                  f"  ({r.kind}, task {r.task or '-'}, policy {r.policy or '-'}, seed {r.seed})")
    console.print(f"  created {ago(r.created)}, elapsed {duration(summary['elapsed'])}, "
                  f"iteration {r.step}" + (f"/{r.total_steps}" if r.total_steps else "")
                  + (f", git {r.git_sha[:10]}" if r.git_sha else ""))
    if r.error:
        console.print(f"  [red]error:[/] {r.error}")
    console.print("  config: " + (", ".join(f"{k}={v}" for k, v in changed.items()) or "the defaults"),
                  highlight=False, markup=False)
    if chain:
        console.print("  from: " + " <- ".join(chain), highlight=False, markup=False)
    if arc.last is not None:
        line = f"prior {_fmt(arc.prior, pct=True)} -> best {_fmt(arc.best, pct=True)} -> last " \
            f"{_fmt(arc.last, pct=True)}" if r.kind == "finetune" else _fmt(arc.last, pct=True)
        console.print(f"  eval success: {line}", highlight=False)
    table = Table(box=None, header_style="bold", title="metrics", title_justify="left")
    for col in ("key", "last", "min", "max", "curve"):
        table.add_column(col)
    for key, values in curves.items():
        if values:
            table.add_row(key, f"{values[-1]:.4g}", f"{min(values):.4g}", f"{max(values):.4g}",
                          f"[cyan]{sparkline(values)}[/]")
    if table.row_count:
        console.print(table)
    for c in ckpts:
        console.print(f"  checkpoint step {c.step}{' (best)' if c.is_best else ''}: {c.path}")
    if videos:
        console.print(f"  evaluation videos in {settings(ctx).run_dir(r.id) / 'videos'}: "
                      + ", ".join(f"{it} ({len(files)})" for it, files in videos.items()), highlight=False)
    for e, u in zip(evals, used, strict=True):
        _print_evaluation(e, u)
    for e in events:
        color = {"error": "red", "warning": "yellow"}.get(e.level, "dim")
        console.print(f"  [{color}]{ago(e.time)} {e.kind}: {e.message}[/]")


def training_videos(run_dir: Path) -> dict[str, list[str]]:
    """The videos of a fine-tune's evaluations (`eval_videos`), by iteration folder."""
    found = {f.name: sorted(str(v) for v in f.iterdir() if v.suffix in (".mp4", ".gif"))
             for f in sorted((run_dir / "videos").glob("iter_*")) if f.is_dir()}
    return {name: files for name, files in found.items() if files}


def task_keys(store: Store, run_id: int) -> list[str]:
    """The run's per-task success keys of suite evaluations, by task index."""
    found = [(int(m.group(1)), key) for key in store.metric_keys(run_id, "eval/task_%/success_rate")
             if (m := TASK_SUCCESS.match(key))]
    return [key for _, key in sorted(found)]


def _print_evaluation(e: Evaluation, used: EvaluatedCheckpoint) -> None:
    """One `fpoctl eval` of the run (and the checkpoint it used); a suite's with its per-task table."""
    d = e.details or {}
    how = ", ".join(f"{label} {d[key]}" for key, label in (("noise", "noise"), ("exec_steps", "exec steps"),
                    ("max_steps", "max steps")) if key in d)
    console.print(f"  eval {ago(e.created)} on {e.task}: success {_fmt(e.success_rate, pct=True)} over "
                  f"{e.episodes} episodes" + (f" ({how})" if how else "") + f", checkpoint {used.label}",
                  highlight=False)
    if d.get("videos"):
        console.print(f"    {len(d['videos'])} videos in {Path(d['videos'][0]).parent}", highlight=False)
    if d.get("suite") and d.get("tasks"):
        from fpoctl.commands.evaluate import task_table

        console.print(task_table(d["tasks"]))


@app.command("rm")
def rm(
    ctx: typer.Context,
    runs: Annotated[list[str], typer.Argument(help="Run ids or names.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option(help="Also delete runs that are still running.")] = False,
) -> None:
    """Delete runs: their rows in the store and their folders (checkpoints, logs).

    Example: fpoctl runs rm 3 4 --yes
    """
    from fpoctl.jobs.process import display_status

    cfg = settings(ctx)
    with open_store(ctx) as store:
        targets = [store.get_run(ref) for ref in runs]
        for r in targets:
            if display_status(r) == "running" and not force:
                raise FpoctlError(f"run {r.id} is running; stop it first or pass --force")
        names = ", ".join(f"{r.id} ({r.name})" for r in targets)
        if not yes and not typer.confirm(f"Delete runs {names} and their files?"):
            raise typer.Exit(1)
        for r in targets:
            store.delete_run(r.id)
            shutil.rmtree(cfg.run_dir(r.id), ignore_errors=True)
    console.print(f"Deleted {names}.")

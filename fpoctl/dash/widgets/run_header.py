"""The run screen's header: who the run is, how far it got (or what it is doing), how its success
went (prior -> best -> last), what it started from, and the overrides that define it. Lines
wrap instead of being cut, so every override shows at any width."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from fpoctl.dash.data import RunInfo
from fpoctl.dash.views import RunDetail
from fpoctl.fmt import duration, number, percent

STATUS_STYLE = {"running": "green", "finished": "blue", "failed": "red", "stopped": "yellow",
                "lost": "magenta", "queued": "dim"}


def value_text(value: Any) -> str:
    """A config value as the header prints it (short floats, lists without spaces)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(map(value_text, value))
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def progress_line(run: RunInfo, checkpoints: list[tuple[int, bool]]) -> str:
    """Iterations (an SFT run: steps), env steps, return, time, checkpoints."""
    done = f"{run.step}/{run.total_steps}" if run.total_steps else str(run.step)
    parts = [f"step {done}" if run.kind == "sft" else f"iter {done}"]
    if run.env_steps is not None:
        parts.append(f"env steps {number(run.env_steps)}")
    if run.ret is not None:
        parts.append(f"return {number(run.ret)}")
    parts.append(f"elapsed {duration(run.elapsed)}")
    if run.status == "running":
        parts.append(f"ETA {duration(run.eta)}")
    best = next((s for s, b in checkpoints if b), None)
    parts.append(f"ckpts {len(checkpoints)}" + (f" (best @{best})" if best is not None else ""))
    return " · ".join(parts)


def success_line(run: RunInfo, detail: RunDetail) -> str:
    """A fine-tune's prior -> best -> last evaluation success; an SFT run's final success."""
    if detail.evaluations == 0:
        rollout = f" · rollout success {percent(run.success)}" if run.success is not None else ""
        return "eval success: no evaluation yet" + rollout
    if run.kind == "sft":
        return f"final success {percent(detail.last)}"
    return (f"eval success: prior {percent(detail.prior)} → best {percent(detail.best)} → "
            f"last {percent(detail.last)}  ({detail.evaluations} evaluations)")


class RunHeader(Static):
    """Identity, progress or phase, success arc, lineage, overrides (and the error, if any)."""

    plain = ""
    """What the header shows, as plain text."""

    def show(self, run: RunInfo, checkpoints: list[tuple[int, bool]], detail: RunDetail) -> None:
        """Redraw from a run summary, its checkpoints (step, is_best) and its detail."""
        top = Text()
        top.append(f"Run {run.id} ", style="bold")
        top.append(f"{run.name}  ")
        top.append(run.status, style=STATUS_STYLE.get(run.status, ""))
        top.append(f"  {run.kind} · {run.task or '-'} · {run.policy or '-'} · seed {run.seed}")
        if run.git_sha:
            top.append(f" · git {run.git_sha[:8]}", style="dim")
        lines = [top, Text(progress_line(run, checkpoints))]
        if run.phase:
            lines.append(Text(f"now: {run.phase}", style="yellow"))
        lines.append(Text(success_line(run, detail)))
        if detail.lineage is None:  # read a tick later: the line is kept so nothing jumps
            lines.append(Text("init: …", style="dim"))
        else:
            chain = " ← ".join(detail.lineage) or "a fresh policy"
            lines.append(Text(f"init: {chain}", style="cyan" if detail.lineage else "dim"))
        if run.error:
            lines.append(Text(f"error: {run.error}", style="red"))
        overrides = "  ".join(f"{k}={value_text(v)}" for k, v in detail.overrides.items())
        lines.append(Text(f"overrides: {overrides}" if overrides else "overrides: none (defaults)",
                          style="dim"))
        self.plain = "\n".join(line.plain for line in lines)
        self.update(Group(*lines))

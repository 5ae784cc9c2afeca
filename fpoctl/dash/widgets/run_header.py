"""The run screen's header: identity and status, progress numbers, and the config summary."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from fpoctl.dash.data import RunInfo
from fpoctl.fmt import duration, number, percent

STATUS_STYLE = {"running": "green", "finished": "blue", "failed": "red", "stopped": "yellow",
                "lost": "magenta", "queued": "dim"}


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config as dotted keys."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class RunHeader(Static):
    """Three lines: who the run is, how far it got, and how it is configured."""

    plain = ""
    """What the header shows, as plain text."""

    def show(self, run: RunInfo, checkpoints: list[tuple[int, bool]]) -> None:
        """Redraw from a run summary and its checkpoints (step, is_best)."""
        top = Text()
        top.append(f"Run {run.id} ", style="bold")
        top.append(f"{run.name}  ")
        top.append(run.status, style=STATUS_STYLE.get(run.status, ""))
        top.append(f"  {run.task or '-'} · {run.policy or '-'} · seed {run.seed}")
        if run.git_sha:
            top.append(f" · git {run.git_sha[:8]}", style="dim")
        it = f"{run.step}/{run.total_steps}" if run.total_steps else str(run.step)
        best = next((s for s, b in checkpoints if b), None)
        progress = (
            f"iter {it} · env steps {number(run.env_steps)} · success {percent(run.success)}"
            f" (best {percent(run.best_success)}) · return {number(run.ret)}"
            f" · elapsed {duration(run.elapsed)} · ETA {duration(run.eta)}"
            f" · ckpts {len(checkpoints)}" + (f" (best @{best})" if best is not None else "")
        )
        top.no_wrap, top.overflow = True, "ellipsis"
        lines = [top, Text(progress)]
        if run.error:
            lines.append(Text(f"error: {run.error}", style="red"))
        config = "  ".join(f"{k}={v}" for k, v in flatten(run.config).items())
        lines.append(Text(config or "(no config)", style="dim", no_wrap=True, overflow="ellipsis"))
        self.plain = "\n".join(line.plain for line in lines)
        self.update(Group(*lines))

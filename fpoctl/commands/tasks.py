"""`fpoctl tasks [NAME]`: every task fpoctl can run, and whether it runs here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from fpoctl.commands.common import console, print_json

if TYPE_CHECKING:
    from fpoctl.envs.base import TaskSpec

PIXEL_MODES = ("pixels",)
GYM_PATTERN = {"name": "gym:<id>", "backend": "gymnasium", "obs_modes": ["state"], "action_dim": None,
               "max_steps": None, "installed": True, "renders": None, "install_hint": "",
               "description": "any installed Gymnasium env with Box actions, e.g. gym:HalfCheetah-v5"}


def _action_dim(spec: TaskSpec) -> int | None:
    if spec.action_dim is not None or spec.missing():
        return spec.action_dim
    env = spec.make_env(seed=0)  # Gymnasium ids: cheap to build
    try:
        return int(env.action_space.shape[0])
    finally:
        env.close()


def describe(spec: TaskSpec, *, probe: bool = False) -> dict[str, Any]:
    """One task as a dict (the --json rows); `probe` builds cheap envs to learn the action dim."""
    from fpoctl.envs.headless import can_render

    missing = spec.missing()
    pixels = any(m in PIXEL_MODES for m in spec.obs_modes)
    renders = None
    if pixels and not missing:
        renders = can_render()[0]
    return {
        "name": spec.name, "backend": spec.backend, "obs_modes": list(spec.obs_modes),
        "action_dim": _action_dim(spec) if probe else spec.action_dim, "max_steps": spec.max_steps,
        "installed": not missing, "renders": renders,
        "install_hint": spec.install_hint if missing else "", "description": spec.description,
        "observation": spec.observation, "expert": spec.expert is not None,
    }


def _here(row: dict[str, Any]) -> str:
    """Installed and (for pixel tasks) rendering here?"""
    if not row["installed"]:
        return "[red]not installed[/]"
    return "[yellow]no rendering[/]" if row["renders"] is False else "[green]yes[/]"


def tasks(
    name: Annotated[str | None, typer.Argument(help="Show one task (e.g. libero-spatial/3, gym:Hopper-v5).")]
    = None,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the tasks: backend, observation modes, action dim, episode budget, installed, renders.

    Example: fpoctl tasks · fpoctl tasks libero-spatial/3 --json
    """
    from fpoctl.envs.base import all_tasks, get_task
    from fpoctl.envs.headless import can_render

    rows = [describe(get_task(name), probe=True)] if name else [describe(s) for s in all_tasks()]
    if not name:
        rows.append(GYM_PATTERN)
    if json_:
        print_json(rows)
        return
    cells = [[r["name"], r["backend"], ",".join(r["obs_modes"]), str(r["action_dim"] or "-"),
              str(r["max_steps"] or "-"), _here(r), "yes" if r.get("expert") else "", r["description"]]
             for r in rows]
    table = Table(box=None, header_style="bold", padding=(0, 1, 0, 0))
    headers = ("task", "backend", "obs", "act", "steps", "here", "expert", "description")
    widths = [max(len(h), *(len(Text.from_markup(c[j])) for c in cells)) for j, h in enumerate(headers)]
    # every column keeps its width; only the description gives way on a narrow terminal
    widths[-1] = max(8, min(widths[-1], console.width - sum(w + 1 for w in widths[:-1]) - 1))
    for col, width in zip(headers, widths, strict=True):
        table.add_column(col, justify="right" if col in ("act", "steps") else "left", no_wrap=True,
                         overflow="ellipsis", width=width)
    for c in cells:
        table.add_row(*c)
    console.print(table)
    hints = {r["install_hint"] for r in rows if r["install_hint"]}
    for hint in sorted(hints):
        console.print(f"[yellow]not installed:[/] {hint}")
    render_rows = [r for r in rows if r["renders"] is False]
    if render_rows:
        console.print(f"[yellow]no rendering:[/] {can_render()[1]}")

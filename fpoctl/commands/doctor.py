"""`fpoctl doctor`: is this machine ready to train?"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from fpoctl.commands.common import console, print_json, settings

MARK = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]fail[/]"}


def doctor(
    ctx: typer.Context,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check Python, torch and the GPU, simulators, headless rendering, the store and disk.

    Exits 1 when a check fails (warnings are fine: simulators are optional).
    """
    from fpoctl.doctor import run_checks

    checks = run_checks(settings(ctx))
    if json_:
        print_json([asdict(c) for c in checks])
    else:
        for c in checks:
            hint = f"  [dim]→ {c.hint}[/]" if c.hint else ""
            console.print(f"{MARK[c.status]} {c.name:<10} {c.detail}{hint}")
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)

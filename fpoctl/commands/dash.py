"""`fpoctl dash`: open the live dashboard on the store of the global options."""

from __future__ import annotations

from typing import Annotated

import typer

from fpoctl.commands.common import open_store, settings


def dash(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Option("--run", help="Open this run (id or name) directly.")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.", min=0.1)] = 1.0,
) -> None:
    """Live dashboard: runs, success and return curves, Q-ensemble and FPO stats, events.

    Example: fpoctl dash --run 3   (keys: enter open, / filter, c compare, escape back, q quit)
    """
    store = open_store(ctx)
    try:
        run_id = store.get_run(run).id if run is not None else None
        from fpoctl.dash.app import DashApp  # Textual loads only for this command

        DashApp(store, settings(ctx), run_id=run_id, interval=interval).run()
    finally:
        store.close()

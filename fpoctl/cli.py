"""The `fpoctl` command line: global options, command groups, and one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fpoctl import __version__
from fpoctl.commands import dash, db, demo, doctor, evaluate, hub, jobs, runs, tasks, train
from fpoctl.commands.common import err_console
from fpoctl.errors import FpoctlError
from fpoctl.settings import Settings

app = typer.Typer(
    name="fpoctl",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=(
        "Reinforcement fine-tuning of flow-matching robot policies with FPO.\n\n"
        "[bold]fpoctl pull pi0[/] · [bold]fpoctl finetune --task libero-spatial[/] · "
        "[bold]fpoctl dash[/] · [bold]fpoctl push RUN --repo me/pi0-fpo[/]"
    ),
)
app.add_typer(runs.app, name="runs")
app.add_typer(db.app, name="db")
app.command("doctor")(doctor.doctor)
app.command("tasks")(tasks.tasks)
app.command("dash")(dash.dash)
app.command("sft")(train.sft)
app.command("finetune")(train.finetune)
app.command("stop")(jobs.stop)
app.command("resume")(jobs.resume)
app.command("logs")(jobs.logs)
app.command("eval")(evaluate.evaluate)
app.command("demo")(demo.demo)
app.command("pull")(hub.pull)
app.command("push")(hub.push)
app.add_typer(hub.models_app, name="models")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fpoctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(envvar="FPOCTL_HOME", help="Home folder: store and runs/<id>/. (default: ~/.fpoctl)"),
    ] = None,
    db_url: Annotated[
        str | None,
        typer.Option("--db", envvar="FPOCTL_DB",
                     help="Store as an SQLAlchemy URL. (default: sqlite in the home)"),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Global options shared by every command."""
    ctx.obj = Settings.resolve(home, db_url)


def main() -> None:
    """Console-script entry point: user errors become one red line and exit code 1."""
    try:
        app()
    except FpoctlError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except OSError as exc:  # disk full, permissions, ...: the system's words, on one line
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if not isinstance(exc, SQLAlchemyError):
            raise
        cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        err_console.print(f"[red]error:[/] store: {escape(cause)} (is another process holding a "
                          "write lock on the database?)", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

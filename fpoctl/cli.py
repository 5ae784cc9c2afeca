"""The `fpoctl` command line: global options, command groups, and one-line errors."""

from __future__ import annotations

import sys
from typing import NoReturn

INTERRUPTED = "interrupted (Ctrl-C)"


def _interrupted_while_starting() -> NoReturn:
    """A Ctrl-C before the commands are loaded: one line, exit 130 (rich may be half-imported)."""
    sys.stderr.write(f"error: {INTERRUPTED}\n")
    sys.exit(130)


try:  # typer, rich and the command modules (light: tests/test_startup.py): a Ctrl-C meanwhile is one line
    from pathlib import Path
    from typing import Annotated

    import typer
    from rich.markup import escape

    from fpoctl import __version__
    from fpoctl.commands import dash, db, demo, doctor, evaluate, hub, jobs, runs, tasks, train
    from fpoctl.commands.common import err_console
    from fpoctl.errors import FpoctlError
    from fpoctl.settings import Settings
except KeyboardInterrupt:
    _interrupted_while_starting()

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


def _error(message: str) -> None:
    """One red `error:` line on stderr."""
    err_console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _usage_error(exc: typer.TyperException) -> None:
    """Typer's own parse errors (a value that is not a number, an unknown option) as one `error:`
    line that names the command's help, instead of a usage box."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # the help is shown instead
        return
    ctx = getattr(exc, "ctx", None)
    _error(exc.format_message() + (f" (see `{ctx.command_path} --help`)" if ctx is not None else ""))


def main() -> None:
    """Console-script entry point: user errors become one red line and exit code 1 (a Ctrl-C: 130).

    Typer runs outside its standalone mode, so that its parse errors come here (its own error
    display would load typer.rich_utils, and markdown with it, at every start)."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:
        _usage_error(exc)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:  # a prompt answered with Ctrl-C or end of input
        _error("aborted")
        sys.exit(1)
    except FpoctlError as exc:
        _error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _error(INTERRUPTED)
        sys.exit(130)
    except OSError as exc:  # disk full, permissions, ...: the system's words, on one line
        _error(str(exc))
        sys.exit(1)
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if not isinstance(exc, SQLAlchemyError):
            raise
        _error(f"store: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}")
        sys.exit(1)
    if code == 130:  # Typer's answer to a Ctrl-C in a command (no command exits 130 itself)
        _error(INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

"""`fpoctl pull`, `fpoctl push` and `fpoctl models list|rm`: policies to and from the Hugging Face Hub."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from fpoctl.commands.common import ago, console, err_console, open_store, print_json, settings
from fpoctl.hub import human_bytes

models_app = typer.Typer(no_args_is_help=True, help="List and remove pulled models.")


def _say(quiet: bool) -> Callable[[str], None]:
    """Progress notes go to stderr, dimmed; none in quiet/JSON mode."""
    if quiet:
        return lambda _msg: None
    return lambda msg: err_console.print(f"[dim]{escape(msg)}[/]", highlight=False)


def _quiet_progress(quiet: bool) -> None:
    if quiet:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def pull(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(
        help="An alias (pi0, pi0-libero, pi05, pi05-libero, or yours in <home>/aliases.toml) or ORG/NAME, "
             "with an optional "
             "@REVISION (branch, tag or commit).")],
    tokenizer: Annotated[str | None, typer.Option(
        help="Tokenizer source for policies that need one (pi0, pi05): hf://ORG/NAME/FILE or a local file. "
             "[default: \\[tokenizers] in aliases.toml, else hf://google/paligemma-3b-pt-224/tokenizer.model]")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the local path.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Download a policy from the Hub into the HF cache, check it, and register it.

    Only the files a policy needs are fetched (config, weights, processor files, tokenizer).
    Honours HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE and HF_HOME; re-run to finish a cut download.

    Example: fpoctl pull pi0 · fpoctl pull lerobot/pi0_libero_finetuned@main
    """
    from fpoctl.hub.pull import pull as do_pull

    _quiet_progress(quiet or json_)
    cfg = settings(ctx)
    with open_store(ctx) as store:
        result = do_pull(store, cfg.home, name, tokenizer_source=tokenizer, say=_say(quiet or json_))
    m = result.model
    if json_:
        print_json({"id": m.id, "alias": m.alias, "repo": m.repo, "revision": m.revision,
                    "commit_sha": m.commit_sha, "path": m.path, "policy_type": m.policy_type,
                    "n_params": m.n_params, "size_bytes": m.size_bytes, "files": result.files,
                    "downloaded_bytes": result.downloaded_bytes,
                    "tokenizer": str(result.tokenizer) if result.tokenizer else None})
    elif quiet:
        typer.echo(m.path)
    else:
        console.print(f"[green]pulled[/] [bold]{m.alias or m.repo}[/] ({m.repo}@{m.revision}, commit "
                      f"{m.commit_sha[:10]}): {m.policy_type}, {m.n_params / 1e6:.2f}M params, "
                      f"{human_bytes(m.size_bytes)}", highlight=False)
        console.print(f"  {m.path}", highlight=False)
        if result.tokenizer:
            console.print(f"  tokenizer: {result.tokenizer}", highlight=False)


def push(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="Run id or name.")],
    repo: Annotated[str, typer.Option(help="Target repo ORG/NAME (created if needed).")],
    checkpoint: Annotated[str, typer.Option(help="best, last, or an iteration number.")] = "best",
    private: Annotated[bool, typer.Option(help="Create the repo private.")] = False,
    branch: Annotated[str, typer.Option(help="Branch to commit to (created from main if needed).")] = "main",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be uploaded; upload nothing.")
                       ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Push a run's checkpoint to the Hub in LeRobot's layout, with a model card and training curves.

    Uploads config.json, model.safetensors, processor files and stats, train_config.json, README.md
    and training_curves.png. Needs a token (`hf auth login` or HF_TOKEN) unless --dry-run.

    Example: fpoctl push 3 --repo me/pi0-fpo-libero --checkpoint best
    """
    import tempfile

    from fpoctl.hub.push import push as do_push

    _quiet_progress(json_)
    cfg = settings(ctx)
    with open_store(ctx) as store, tempfile.TemporaryDirectory(prefix="fpoctl-push-") as staging:
        result = do_push(store, cfg.home, run, repo, Path(staging), which=checkpoint, private=private,
                         branch=branch, dry_run=dry_run, say=_say(json_))
        files = [(f.path_in_repo, f.size) for f in result.plan.files]
    plan = result.plan
    if json_:
        print_json({"run": plan.run.id, "checkpoint_step": plan.checkpoint.step, "repo": repo,
                    "branch": branch, "dry_run": dry_run, "commit_url": result.commit_url or None,
                    "commit_sha": result.commit_sha or None,
                    "files": [{"path": p, "size": n} for p, n in files]})
        return
    head = "would upload" if dry_run else "uploaded"
    console.print(f"{head} run {plan.run.id} ({plan.run.name}), checkpoint at iteration "
                  f"{plan.checkpoint.step}, to [bold]{repo}[/]@{branch}:", highlight=False)
    for path, size in files:
        console.print(f"  {human_bytes(size):>10}  {path}", highlight=False)
    console.print(f"  {human_bytes(sum(n for _, n in files)):>10}  total", highlight=False)
    if dry_run:
        console.print("[yellow]dry run: nothing was uploaded[/]")
    else:
        console.print(f"[green]pushed[/] {result.commit_url}", highlight=False)


@models_app.command("list")
def list_models(
    ctx: typer.Context,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List pulled models, newest first.

    Example: fpoctl models list
    """
    with open_store(ctx) as store:
        models = store.models()
    if json_:
        print_json([{"id": m.id, "alias": m.alias, "repo": m.repo, "revision": m.revision,
                     "commit_sha": m.commit_sha, "path": m.path, "policy_type": m.policy_type,
                     "n_params": m.n_params, "size_bytes": m.size_bytes, "created": m.created}
                    for m in models])
        return
    if not models:
        console.print("No models yet. Get one with [bold]fpoctl pull pi0[/].")
        return
    table = Table(box=None, header_style="bold")
    for col in ("id", "alias", "repo", "revision", "commit", "type", "params", "size", "pulled", "path"):
        table.add_column(col, justify="right" if col in ("id", "params", "size") else "left")
    for m in models:
        table.add_row(str(m.id), m.alias or "-", m.repo, m.revision, m.commit_sha[:10], m.policy_type,
                      f"{m.n_params / 1e6:.2f}M", human_bytes(m.size_bytes), ago(m.created), m.path)
    console.print(table)


@models_app.command("rm")
def rm_models(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Model id, alias, ORG/NAME or ORG/NAME@REVISION.")],
    keep_files: Annotated[bool, typer.Option(
        "--keep-files", help="Only forget the model; leave its files in the HF cache.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Forget a pulled model and delete its revision from the HF cache (unless still registered).

    Example: fpoctl models rm pi0 --yes
    """
    from fpoctl.hub.models import find, remove

    with open_store(ctx) as store:
        names = ", ".join(f"{m.id} ({m.alias or m.repo}@{m.revision})" for m in find(store, ref))
        what = "" if keep_files else " and its cached files"
        if not yes and not typer.confirm(f"Remove {names}{what}?"):
            raise typer.Exit(1)
        removed = remove(store, ref, keep_files=keep_files)
    freed = f", freed {human_bytes(removed.freed_bytes)}" if removed.freed_bytes else ""
    console.print(f"Removed {names}{freed}.", highlight=False)

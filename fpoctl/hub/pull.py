"""`pull`: download the files a policy needs into the shared HF cache, check them, and register
the model in the store. Nothing is registered unless every step succeeded; re-running a pull that
was cut short fetches only the files that are still missing (the cache keeps completed ones)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import constants, snapshot_download
from tqdm.auto import tqdm

from fpoctl.hub import human_bytes, layout, tokenizer, verify
from fpoctl.hub.aliases import Target, resolve
from fpoctl.hub.client import with_retries
from fpoctl.hub.errors import DiskFullError, HubContext, IncompleteDownloadError, InvalidCheckpointError
from fpoctl.sources import configured_source
from fpoctl.store import Model, Store

if TYPE_CHECKING:
    from policies.checkpoint import CheckpointInfo

Say = Callable[[str], None]


class _NoBar(tqdm):
    """A progress bar that never shows (the dry run that lists the files has nothing to show)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "disable": True})


@dataclass(frozen=True)
class PullResult:
    """A registered model and what the pull did."""

    model: Model
    files: list[str]
    downloaded_bytes: int
    tokenizer: Path | None


def pull(store: Store, home: Path, ref: str, *, tokenizer_source: str | None = None,
         say: Say = lambda _: None) -> PullResult:
    """Pull NAME[@REVISION] (an alias or a repo id) and register it; see the module docstring."""
    target = resolve(ref, home)
    ctx = HubContext(target.repo, target.revision)
    folder, sizes, fetched = download(target, ctx, say)
    files = layout.policy_files(folder)
    missing = sorted(set(sizes or {}) - {f.name for f in files})
    if missing:
        raise IncompleteDownloadError(f"{target.repo}@{target.revision} is missing {', '.join(missing)} "
                                      "after the download; run `fpoctl pull` again")
    verify.check_links(folder, files)
    say(f"verifying {len(files)} files")
    verify.verify_files(files, sizes)
    kind = layout.check_layout(folder)
    tok = _tokenizer(folder, kind, home, tokenizer_source)
    info = inspect(folder, f"{target.repo}@{target.revision}", kind)
    model = register(store, target, folder, info)
    return PullResult(model, [f.name for f in files], fetched, tok)


def download(target: Target, ctx: HubContext, say: Say) -> tuple[Path, dict[str, int] | None, int]:
    """snapshot_download of the policy files -> (snapshot folder, sizes the Hub reported, bytes to
    fetch). Online, a dry run first lists the files: their names are checked and the free disk space
    compared with what is still to download. Offline (HF_HUB_OFFLINE) it reads the cache only."""
    kwargs = dict(repo_id=target.repo, revision=target.revision,
                  allow_patterns=layout.POLICY_PATTERNS, ignore_patterns=layout.IGNORE_PATTERNS)
    sizes, need = None, 0
    if not constants.HF_HUB_OFFLINE:
        plan = with_retries(lambda: snapshot_download(**kwargs, dry_run=True, tqdm_class=_NoBar),
                            ctx, say=say)
        if not plan:
            raise InvalidCheckpointError(f"{target.repo}@{target.revision} has no policy files "
                                         "(config.json, model.safetensors)")
        verify.check_names([p.filename for p in plan])
        sizes = {p.filename: p.file_size for p in plan if p.file_size is not None}
        need = sum(p.file_size or 0 for p in plan if p.will_download)
        check_space(Path(constants.HF_HUB_CACHE), need, target)
        say(f"{target.repo}@{target.revision}: {len(plan)} files, {human_bytes(need)} to download")
    folder = with_retries(lambda: snapshot_download(**kwargs), ctx, say=say)
    return Path(folder), sizes, need


def inspect(folder: Path, what: str, kind: str) -> CheckpointInfo:
    """The strict load check of the policies package (config + safetensors header, no weights).
    Imported here, not at the top: torch takes seconds to import and most failures come earlier."""
    from policies.checkpoint import inspect_checkpoint
    from policies.errors import PolicyError

    try:
        return inspect_checkpoint(folder)
    except PolicyError as exc:
        raise InvalidCheckpointError(f"{what} does not load as a {kind} policy: {exc}") from None


def check_space(cache: Path, need: int, target: Target) -> None:
    """Fail before downloading when the cache's disk cannot hold `need` more bytes."""
    probe = cache
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > free:
        raise DiskFullError(f"not enough disk space for {target.repo}: {human_bytes(need)} to download, "
                            f"{human_bytes(free)} free in {cache}; free some space or set HF_HUB_CACHE")


def _tokenizer(folder: Path, kind: str, home: Path, override: str | None) -> Path | None:
    """The tokenizer a policy of this type needs (shipped in the repo, or fetched from its source)."""
    shipped = sorted(folder.glob(layout.TOKENIZER_PATTERN))
    if shipped and not override:
        return shipped[0]
    source = configured_source(home, kind, override)
    if source is None:
        return None
    return tokenizer.fetch(source, policy_type=kind, home=home, offline=constants.HF_HUB_OFFLINE)


def register(store: Store, target: Target, folder: Path, info: CheckpointInfo) -> Model:
    """Add the model to the store, replacing an older registration of the same alias (or, without
    an alias, of the same repo and revision)."""
    for old in store.models():
        same = (old.alias == target.alias) if target.alias else (
            old.alias is None and old.repo == target.repo and old.revision == target.revision)
        if same:
            store.remove_model(old.id)
    return store.add_model(
        alias=target.alias, repo=target.repo, revision=target.revision, commit_sha=folder.name,
        path=str(folder), policy_type=info.policy_type, size_bytes=int(info.size_bytes),
        n_params=int(info.n_params),
    )

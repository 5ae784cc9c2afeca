"""Where a policy's tokenizer comes from. pi0 checkpoints do not ship PaliGemma's SentencePiece
model; its default home, google/paligemma-3b-pt-224, is gated. A source is `hf://ORG/NAME/FILE`
(fetched into the HF cache) or a local file, set with `--tokenizer` or in `<home>/aliases.toml`:

    [tokenizers]
    pi0 = "/data/paligemma_tokenizer.model"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import LocalEntryNotFoundError

from fpoctl.errors import FpoctlError
from fpoctl.hub.aliases import CONFIG_FILE, check_repo_id, load_config
from fpoctl.hub.client import with_retries
from fpoctl.hub.errors import GatedRepoAccessError, HubContext, endpoint

HF_SCHEME = "hf://"


@dataclass(frozen=True)
class TokenizerSource:
    """A tokenizer file on the Hub (repo + filename) or on disk (path)."""

    repo: str | None = None
    filename: str | None = None
    path: Path | None = None

    def __str__(self) -> str:
        return f"{HF_SCHEME}{self.repo}/{self.filename}" if self.repo else str(self.path)


def parse_source(text: str) -> TokenizerSource:
    """`hf://ORG/NAME/FILE` or a local path."""
    if text.startswith(HF_SCHEME):
        parts = text[len(HF_SCHEME):].split("/", 2)
        if len(parts) < 3 or not parts[2]:
            raise FpoctlError(f"tokenizer source {text!r}: expected hf://ORG/NAME/FILE")
        return TokenizerSource(repo=check_repo_id("/".join(parts[:2])), filename=parts[2])
    return TokenizerSource(path=Path(text).expanduser())


def configured_source(home: Path, policy_type: str, override: str | None = None) -> TokenizerSource | None:
    """The source for a policy type: the override, else aliases.toml, else the built-in (None: the
    policy needs no separate tokenizer)."""
    text = override or load_config(home).tokenizers.get(policy_type)
    return parse_source(text) if text else None


def fetch(source: TokenizerSource, *, policy_type: str, home: Path, offline: bool = False) -> Path:
    """The local file of a tokenizer source (downloaded into the HF cache when on the Hub)."""
    if source.path is not None:
        if not source.path.is_file() or source.path.stat().st_size == 0:
            raise FpoctlError(f"tokenizer file {source.path} does not exist or is empty")
        return source.path.resolve()
    assert source.repo is not None and source.filename is not None
    ctx = HubContext(source.repo, "main", "download the tokenizer from")
    try:
        path = with_retries(
            lambda: hf_hub_download(source.repo, source.filename, local_files_only=offline), ctx)
    except GatedRepoAccessError:
        raise GatedRepoAccessError(gated_help(source, policy_type, home)) from None
    return Path(path)


def gated_help(source: TokenizerSource, policy_type: str, home: Path) -> str:
    """What to do when the tokenizer's repo is gated (one line)."""
    return (
        f"the {policy_type} tokenizer comes from {source.repo}, a gated repo this account cannot read: "
        f"accept its licence on {endpoint()}/{source.repo} and log in (`hf auth login` or HF_TOKEN), "
        f"or use a local paligemma_tokenizer.model: `--tokenizer PATH`, or "
        f"`[tokenizers] {policy_type} = \"PATH\"` in {home / CONFIG_FILE}"
    )


def tokenizer_path(home: Path, policy_type: str, folder: Path | None = None) -> Path | None:
    """The tokenizer file a loader should use, without network: one shipped in the model folder,
    else the configured source from the cache or disk (None if the policy needs none)."""
    if folder is not None:
        shipped = sorted(folder.glob("*tokenizer.model"))
        if shipped:
            return shipped[0]
    source = configured_source(home, policy_type)
    if source is None:
        return None
    try:
        return fetch(source, policy_type=policy_type, home=home, offline=True)
    except LocalEntryNotFoundError:
        where = f"{folder} ships none and " if folder is not None else ""
        raise FpoctlError(f"{policy_type} needs its prompt tokenizer: {where}{source} is not in the local "
                          f"cache; `fpoctl pull {policy_type}` fetches it, or name a local "
                          f"paligemma_tokenizer.model: `[tokenizers] {policy_type} = \"PATH\"` in "
                          f"{home / CONFIG_FILE}") from None

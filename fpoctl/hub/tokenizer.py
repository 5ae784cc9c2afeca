"""Fetching a policy's tokenizer for `fpoctl pull`. pi0 checkpoints do not ship PaliGemma's
SentencePiece model; its default home, google/paligemma-3b-pt-224, is gated. Where a source is set
(`--tokenizer`, `[tokenizers]` in `<home>/aliases.toml`) and how a loader finds the file without
network: fpoctl/sources.py.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import hf_hub_download

from fpoctl.hub.client import with_retries
from fpoctl.hub.errors import GatedRepoAccessError, HubContext, endpoint
from fpoctl.sources import CONFIG_FILE, TokenizerSource, local_file


def fetch(source: TokenizerSource, *, policy_type: str, home: Path, offline: bool = False) -> Path:
    """The local file of a tokenizer source (downloaded into the HF cache when on the Hub)."""
    if source.path is not None:
        return local_file(source)
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

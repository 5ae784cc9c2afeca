"""Where policies and their tokenizers come from, read without network: `<home>/aliases.toml`
(short names for Hub repos and per-policy tokenizer sources, over the built-ins) and the local
file of a policy's tokenizer. The hub resolves and pulls with it, the trainer finds a checkpoint's
tokenizer with it; huggingface_hub is imported only when a repo id is checked or the cache read.

    [aliases]
    mine = "me/pi0-fpo@v1"          # NAME = "ORG/NAME[@REVISION]"

    [tokenizers]
    pi0 = "/data/paligemma_tokenizer.model"   # or "hf://ORG/NAME/FILE"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from fpoctl.errors import FpoctlError

BUILTIN_ALIASES: dict[str, str] = {
    "pi0": "lerobot/pi0_base",
    "pi0-libero": "lerobot/pi0_libero_finetuned",
    "pi05": "lerobot/pi05_base",
    "pi05-libero": "lerobot/pi05_libero_finetuned",
}
# pi0's and pi0.5's checkpoints do not ship the PaliGemma SentencePiece model; this (gated) repo does.
BUILTIN_TOKENIZERS: dict[str, str] = {
    "pi0": "hf://google/paligemma-3b-pt-224/tokenizer.model",
    "pi05": "hf://google/paligemma-3b-pt-224/tokenizer.model",
}
CONFIG_FILE = "aliases.toml"
HF_SCHEME = "hf://"


@dataclass(frozen=True)
class HubConfig:
    """Aliases and tokenizer sources: the built-ins overlaid with the user's file."""

    aliases: dict[str, str] = field(default_factory=lambda: dict(BUILTIN_ALIASES))
    tokenizers: dict[str, str] = field(default_factory=lambda: dict(BUILTIN_TOKENIZERS))


def load_config(home: Path) -> HubConfig:
    """Built-ins plus `<home>/aliases.toml` (its entries win)."""
    path = home / CONFIG_FILE
    cfg = HubConfig()
    if not path.exists():
        return cfg
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise FpoctlError(f"{path}: {exc}") from None
    for section, target in (("aliases", cfg.aliases), ("tokenizers", cfg.tokenizers)):
        table = data.get(section, {})
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise FpoctlError(f"{path}: [{section}] must map names to strings")
        target.update(table)
    return cfg


def check_repo_id(repo: str) -> str:
    """`repo` if it is a valid ORG/NAME, else a one-line error."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise FpoctlError(f"{repo!r} is not a valid repo id: {exc}") from None
    if repo.count("/") != 1:
        raise FpoctlError(f"{repo!r} is not a repo id (expected ORG/NAME)")
    return repo


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


def local_file(source: TokenizerSource) -> Path:
    """The file of a source on disk (not on the Hub), checked to exist and hold something."""
    assert source.path is not None
    if not source.path.is_file() or source.path.stat().st_size == 0:
        raise FpoctlError(f"tokenizer file {source.path} does not exist or is empty")
    return source.path.resolve()


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
    if source.path is not None:
        return local_file(source)
    from huggingface_hub import try_to_load_from_cache

    assert source.repo is not None and source.filename is not None
    cached = try_to_load_from_cache(source.repo, source.filename)
    if isinstance(cached, str):
        return Path(cached)
    where = f"{folder} ships none and " if folder is not None else ""
    raise FpoctlError(f"{policy_type} needs its prompt tokenizer: {where}{source} is not in the local "
                      f"cache; `fpoctl pull {policy_type}` fetches it, or name a local "
                      f"paligemma_tokenizer.model: `[tokenizers] {policy_type} = \"PATH\"` in "
                      f"{home / CONFIG_FILE}")

"""Short names for Hub repos (built-in and the user's `<home>/aliases.toml`), and the per-policy
tokenizer sources kept in the same file.

    [aliases]
    mine = "me/pi0-fpo@v1"          # NAME = "ORG/NAME[@REVISION]"

    [tokenizers]
    pi0 = "/data/paligemma_tokenizer.model"   # or "hf://ORG/NAME/FILE"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from fpoctl.errors import FpoctlError

BUILTIN_ALIASES: dict[str, str] = {
    "pi0": "lerobot/pi0_base",
    "pi0-libero": "lerobot/pi0_libero_finetuned",
}
# pi0's checkpoints do not ship the PaliGemma SentencePiece model; this (gated) repo does.
BUILTIN_TOKENIZERS: dict[str, str] = {
    "pi0": "hf://google/paligemma-3b-pt-224/tokenizer.model",
}
CONFIG_FILE = "aliases.toml"


@dataclass(frozen=True)
class Target:
    """What to pull: a repo at a revision, and the alias it was asked for by (if any)."""

    repo: str
    revision: str = "main"
    alias: str | None = None


@dataclass(frozen=True)
class HubConfig:
    """Aliases and tokenizer sources: the built-ins overlaid with the user's file."""

    aliases: dict[str, str] = field(default_factory=lambda: dict(BUILTIN_ALIASES))
    tokenizers: dict[str, str] = field(default_factory=lambda: dict(BUILTIN_TOKENIZERS))


def split_ref(ref: str) -> tuple[str, str | None]:
    """'NAME@REV' -> ('NAME', 'REV'); 'NAME' -> ('NAME', None)."""
    name, sep, rev = ref.partition("@")
    if sep and not rev:
        raise FpoctlError(f"{ref!r}: nothing after '@' (expected NAME@REVISION)")
    return name.strip(), (rev.strip() if sep else None)


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
    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise FpoctlError(f"{repo!r} is not a valid repo id: {exc}") from None
    if repo.count("/") != 1:
        raise FpoctlError(f"{repo!r} is not a repo id (expected ORG/NAME)")
    return repo


def resolve(ref: str, home: Path) -> Target:
    """An alias or a repo id, with an optional @REVISION (which wins over the alias's own)."""
    name, rev = split_ref(ref)
    cfg = load_config(home)
    if name in cfg.aliases:
        repo, alias_rev = split_ref(cfg.aliases[name])
        return Target(check_repo_id(repo), rev or alias_rev or "main", alias=name)
    if "/" not in name:
        known = ", ".join(sorted(cfg.aliases))
        raise FpoctlError(f"unknown alias {name!r} (known: {known}); give a repo id ORG/NAME or add "
                          f"it to {home / CONFIG_FILE} under [aliases]")
    return Target(check_repo_id(name), rev or "main")


def alias_target(name: str, home: Path) -> str | None:
    """The repo an alias points at (None if `name` is not an alias)."""
    target = load_config(home).aliases.get(name)
    return split_ref(target)[0] if target else None

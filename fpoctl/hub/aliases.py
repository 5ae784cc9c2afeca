"""Short names for Hub repos: an alias (built-in, or the user's `<home>/aliases.toml`: see
fpoctl/sources.py) or a repo id, each with an optional @REVISION."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fpoctl.errors import FpoctlError
from fpoctl.sources import CONFIG_FILE, check_repo_id, load_config


@dataclass(frozen=True)
class Target:
    """What to pull: a repo at a revision, and the alias it was asked for by (if any)."""

    repo: str
    revision: str = "main"
    alias: str | None = None


def split_ref(ref: str) -> tuple[str, str | None]:
    """'NAME@REV' -> ('NAME', 'REV'); 'NAME' -> ('NAME', None)."""
    name, sep, rev = ref.partition("@")
    if sep and not rev:
        raise FpoctlError(f"{ref!r}: nothing after '@' (expected NAME@REVISION)")
    return name.strip(), (rev.strip() if sep else None)


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

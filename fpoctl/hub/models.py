"""Pulled models in the store: find them by id, alias or repo, and forget them (optionally freeing
their revision in the HF cache when no other registration uses it)."""

from __future__ import annotations

from dataclasses import dataclass

from huggingface_hub import constants, scan_cache_dir
from huggingface_hub.errors import CacheNotFound

from fpoctl.errors import NotFoundError
from fpoctl.hub.aliases import split_ref
from fpoctl.store import Model, Store


@dataclass(frozen=True)
class Removed:
    """What `remove` did."""

    models: list[Model]
    freed_bytes: int


def find(store: Store, ref: str) -> list[Model]:
    """Registrations matching an id, an alias, a repo id or REPO@REVISION."""
    name, rev = split_ref(ref)
    found = [
        m for m in store.models()
        if (ref.isdigit() and m.id == int(ref))
        or (m.alias == name and rev in (None, m.revision))
        or (m.repo == name and rev in (None, m.revision))
    ]
    if not found:
        raise NotFoundError(f"no pulled model {ref!r} (see `fpoctl models list`)")
    return found


def remove(store: Store, ref: str, *, keep_files: bool = False) -> Removed:
    """Forget the matching models; unless `keep_files`, delete their cached revisions that no
    remaining registration points at."""
    targets = find(store, ref)
    for m in targets:
        store.remove_model(m.id)
    if keep_files:
        return Removed(targets, 0)
    in_use = {m.commit_sha for m in store.models()}
    shas = sorted({m.commit_sha for m in targets} - in_use)
    if not shas:
        return Removed(targets, 0)
    try:
        strategy = scan_cache_dir(constants.HF_HUB_CACHE).delete_revisions(*shas)
    except CacheNotFound:
        return Removed(targets, 0)
    strategy.execute()
    return Removed(targets, strategy.expected_freed_size)

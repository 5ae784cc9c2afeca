"""Checks on downloaded files before anything trusts them: names stay inside the snapshot, sizes
and hashes match what the Hub reported, safetensors headers are well formed. Nothing is unpickled;
only JSON and safetensors headers are parsed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fpoctl.hub.errors import CorruptDownloadError
from fpoctl.hub.layout import is_plain_name

CHUNK = 8 * 2**20


def check_safetensors(path: Path) -> None:
    """The header parses and every tensor's byte range fits its dtype and shape (no data read).
    Imported here: policies imports torch, which is slow, and most pulls fail (if at all) earlier."""
    from policies.errors import PolicyError
    from policies.weights import read_header

    try:
        read_header(path)
    except PolicyError as exc:
        raise CorruptDownloadError(str(exc)) from None


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file (the Hub's ETag of a file not stored with LFS)."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256(path: Path) -> str:
    """The sha256 of a file (the Hub's ETag of an LFS file)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def reported_hash(snapshot_file: Path) -> str | None:
    """The ETag the Hub sent for a cached file: huggingface_hub names each blob after it."""
    if not snapshot_file.is_symlink():
        return None
    name = snapshot_file.resolve().name
    return name if len(name) in (40, 64) and all(c in "0123456789abcdef" for c in name) else None


def check_names(names: list[str]) -> None:
    """Every repo file name is a plain name: nothing a repo lists can land outside the model folder."""
    for name in names:
        if not is_plain_name(name):
            raise CorruptDownloadError(
                f"refusing the repo file name {name!r}: it would leave the model folder")


def check_links(folder: Path, files: list[Path]) -> None:
    """Cached files are links into the repo's own cache folder, never elsewhere."""
    cache_root = folder.resolve().parent.parent  # .../models--org--name/snapshots/<sha>
    check_names([f.name for f in files])
    for f in files:
        if f.is_symlink() and not f.resolve().is_relative_to(cache_root):
            raise CorruptDownloadError(f"refusing {f.name}: it links outside the HF cache ({f.resolve()})")


def verify_files(files: list[Path], sizes: dict[str, int] | None = None) -> None:
    """Sizes match the Hub's listing (when known), hashes match the ETags, JSON parses, safetensors
    headers are sound. A file whose bytes differ from the Hub's is deleted from the cache, so the
    next pull fetches it again."""
    for f in files:
        _verify_one(f, (sizes or {}).get(f.name))


def _verify_one(f: Path, expected_size: int | None) -> None:
    actual = f.stat().st_size
    if expected_size is not None and actual != expected_size:
        _evict(f)
        raise CorruptDownloadError(f"{f.name} has {actual} bytes, the Hub reported {expected_size}; "
                                   "it was removed from the cache: pull again")
    etag = reported_hash(f)
    if etag is not None:
        got = sha256(f) if len(etag) == 64 else git_blob_sha1(f)
        if got != etag:
            _evict(f)
            raise CorruptDownloadError(f"{f.name} does not match the hash the Hub reported ({etag[:12]}…, "
                                       f"got {got[:12]}…); it was removed from the cache: pull again")
    if f.suffix == ".safetensors":
        check_safetensors(f)
    elif f.suffix == ".json":
        try:
            json.loads(f.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptDownloadError(f"{f.name} is not valid JSON: {exc}") from None


def _evict(f: Path) -> None:
    """Remove a bad cached file (its blob and the snapshot link)."""
    if f.is_symlink():
        f.resolve().unlink(missing_ok=True)
    f.unlink(missing_ok=True)

"""Checks on downloaded files before anything trusts them: names stay inside the snapshot, sizes
and hashes match what the Hub reported, safetensors headers are well formed. Nothing is unpickled;
only JSON and safetensors headers are parsed."""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path

from fpoctl.hub.errors import CorruptDownloadError
from fpoctl.hub.layout import is_plain_name

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8,
}
MAX_HEADER_BYTES = 100 * 2**20
CHUNK = 8 * 2**20


def safetensors_header(path: Path) -> dict[str, tuple[str, list[int]]]:
    """Tensor name -> (dtype, shape), read from the header only. Raises CorruptDownloadError unless
    the header is valid JSON and the tensors tile the data section exactly (no gaps, no overlap)."""
    size = path.stat().st_size

    def bad(why: str) -> CorruptDownloadError:
        return CorruptDownloadError(f"{path.name} is not a valid safetensors file: {why}")

    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise bad("shorter than its 8-byte header length")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise bad(f"header length {n} does not fit a {size}-byte file")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise bad(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    header.pop("__metadata__", None)
    tensors, spans = {}, []
    for name, meta in header.items():
        try:
            dtype, shape, (begin, end) = meta["dtype"], list(meta["shape"]), meta["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise bad(f"tensor {name!r} lacks dtype/shape/data_offsets") from None
        if dtype not in DTYPE_BYTES or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise bad(f"tensor {name!r} has dtype {dtype!r} and shape {shape}")
        if end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise bad(f"tensor {name!r} spans {end - begin} bytes, its shape needs "
                      f"{math.prod(shape) * DTYPE_BYTES[dtype]}")
        tensors[name] = (dtype, shape)
        spans.append((begin, end))
    pos = 0
    for begin, end in sorted(spans):
        if begin != pos:
            raise bad("tensor data has gaps or overlaps")
        pos = end
    if 8 + n + pos != size:
        raise bad(f"data section is {size - 8 - n} bytes, the tensors need {pos}")
    return tensors


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
        safetensors_header(f)
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

"""safetensors files read strictly: header parsing without loading, key/shape checks with clear errors."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from policies.errors import PolicyError

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_MAX_HEADER = 100_000_000  # the format's own limit


@dataclass(frozen=True)
class TensorInfo:
    """What a safetensors header says about one tensor."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        """Number of elements."""
        n = 1
        for s in self.shape:
            n *= s
        return n


def read_header(path: str | Path) -> dict[str, TensorInfo]:
    """Parse a safetensors header (no tensor data is read); PolicyError when it is not valid."""
    path = Path(path)
    if not path.is_file():
        raise PolicyError(f"{path} does not exist")
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise ValueError("file shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", raw)
            if n > min(_MAX_HEADER, size - 8):
                raise ValueError(f"header length {n} exceeds the file")
            header = json.loads(fh.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        out: dict[str, TensorInfo] = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
            numel = 1
            for s in shape:
                numel *= s
            if dtype not in _DTYPE_BYTES or end - begin != numel * _DTYPE_BYTES[dtype] or 8 + n + end > size:
                raise ValueError(f"entry {name!r} is inconsistent ({dtype} {list(shape)}, "
                                 f"bytes {begin}-{end})")
            out[name] = TensorInfo(dtype, shape)
        return out
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, struct.error) as exc:
        raise PolicyError(f"{path} has a corrupt safetensors header: {exc}") from None


class KeyMap(dict[str, str]):
    """Model key -> stored key (what a `fix_keys` returns), plus `dropped`: stored keys a loader
    leaves out on purpose (LeRobot's pi0.5 loader skips a few of older layouts); a plain dict
    drops nothing."""

    def __init__(self, mapping: Mapping[str, str] | None = None, dropped: Iterable[str] = ()) -> None:
        super().__init__(mapping or {})
        self.dropped = frozenset(dropped)


def dropped_keys(rename: Mapping[str, str]) -> frozenset[str]:
    """The stored keys `rename` leaves out on purpose (none unless it is a KeyMap)."""
    return rename.dropped if isinstance(rename, KeyMap) else frozenset()


def _names(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_keys(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]],
               what: str) -> None:
    """PolicyError naming missing keys, unexpected keys and wrong shapes (one line)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {_names(unexpected)}")
    if wrong:
        shapes = [f"{k} {list(found[k])} != {list(expected[k])}" for k in wrong]
        problems.append(f"{len(wrong)} wrong shape: {_names(shapes, 2)}")
    if problems:
        raise PolicyError(f"{what}: " + "; ".join(problems))


def nonfinite(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding NaN or inf (legal to load, suspicious to use)."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def expected_shapes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a (meta-device) state dict."""
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def renamed_shapes(header: Mapping[str, TensorInfo], rename: Mapping[str, str]) -> dict[str, tuple[int, ...]]:
    """Model key -> shape under `rename` (model key -> stored key); stored keys nothing maps to keep
    their own name (and so show up as unexpected), unless `rename` drops them."""
    used = set(rename.values()) | dropped_keys(rename)
    return {**{old: header[old].shape for old in header if old not in used},
            **{new: header[old].shape for new, old in rename.items()}}


def load_checked(path: str | Path, expected: Mapping[str, tuple[int, ...]], what: str,
                 fix_keys: Callable[[dict[str, TensorInfo]], dict[str, str]] | None = None
                 ) -> dict[str, torch.Tensor]:
    """Check the header against `expected` (after `fix_keys`: model key -> stored key), then load.
    A stored tensor that serves two model keys is copied, so the two never share storage."""
    header = read_header(path)
    rename = fix_keys(header) if fix_keys else {k: k for k in header}
    check_keys(expected, renamed_shapes(header, rename), what)
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise PolicyError(f"{Path(path).name} cannot be read: {exc}") from None
    out: dict[str, torch.Tensor] = {}
    seen: set[str] = set()
    for new, old in rename.items():
        out[new] = tensors[old].clone() if old in seen else tensors[old]
        seen.add(old)
    return out

"""Check a saved policy folder without loading weights: config.json, then the safetensors HEADER only.

`inspect_checkpoint(folder)` builds the state-dict shapes the config implies on the meta device and
compares them key by key with the header; any problem is a one-line `PolicyError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from policies.errors import PolicyError
from policies.gaussian import GaussianConfig, GaussianPolicy
from policies.mlp import MLPFlowConfig, MLPFlowPolicy
from policies.pi0 import io as pi0_io
from policies.pi0.config import Pi0Config
from policies.pi0.model import Pi0Model
from policies.pi05 import io as pi05_io
from policies.pi05.config import Pi05Config
from policies.pi05.model import Pi05Model
from policies.weights import TensorInfo, check_keys, expected_shapes, read_header, renamed_shapes

WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class CheckpointInfo:
    """What a valid checkpoint folder holds."""

    policy_type: str
    n_params: int
    """Stored parameters (every tensor in model.safetensors)."""
    size_bytes: int
    """All files of the folder together."""
    files: list[str]
    """Paths relative to the folder, sorted."""


@dataclass(frozen=True)
class CheckedType:
    """How to check the folders of one policy type (config.json "type")."""

    expected: Callable[[dict[str, Any]], dict[str, tuple[int, ...]]]
    """config.json dict -> the state-dict shapes it implies (built on the meta device)."""
    fix_keys: Callable[[Mapping[str, TensorInfo]], dict[str, str]]
    """Model key -> stored key (renames of older layouts; one stored tensor may serve two keys)."""


def _mlp_expected(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        policy = MLPFlowPolicy(MLPFlowConfig(**{k: v for k, v in cfg.items() if k != "type"}))
    return expected_shapes(policy.state_dict())


def _gaussian_expected(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        policy = GaussianPolicy(GaussianConfig(**{k: v for k, v in cfg.items() if k != "type"}))
    return expected_shapes(policy.state_dict())


def _pi0_expected(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = Pi0Model(Pi0Config.from_dict(cfg))
    return expected_shapes(model.state_dict())


def _pi05_expected(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = Pi05Model(Pi05Config.from_dict(cfg))
    return expected_shapes(model.state_dict())


CHECKED_TYPES: dict[str, CheckedType] = {
    MLPFlowPolicy.type_name: CheckedType(_mlp_expected, lambda header: {k: k for k in header}),
    GaussianPolicy.type_name: CheckedType(_gaussian_expected, lambda header: {k: k for k in header}),
    "pi0": CheckedType(_pi0_expected, pi0_io.fix_keys),
    "pi05": CheckedType(_pi05_expected, pi05_io.fix_keys),
}


def read_policy_type(folder: Path) -> tuple[str, dict[str, Any]]:
    """config.json's "type" (a known one) and the whole dict."""
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise PolicyError(f"{folder} has no config.json")
    try:
        cfg = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{cfg_file} is not valid JSON: {exc}") from None
    kind = cfg.get("type") if isinstance(cfg, dict) else None
    if kind not in CHECKED_TYPES:
        raise PolicyError(f"{cfg_file}: unknown policy type {kind!r}; known: {', '.join(CHECKED_TYPES)}")
    return kind, cfg


def _check_processors(folder: Path) -> None:
    """Every `state_file` a processor JSON names lies in the folder, exists and has a valid header;
    no relative actions."""
    for name in (pi0_io.PRE, pi0_io.POST):
        if (folder / name).is_file():
            where = str(folder / name)
            steps = pi0_io.read_json(folder / name).get("steps", [])
            if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
                raise PolicyError(f"{where}: steps must be a list of objects")
            pi0_io.check_action_steps(steps, where)
            for step in steps:
                if "state_file" in step:
                    read_header(inside(folder, step["state_file"], f"{where}: state_file"))


def inside(folder: Path, name: object, what: str) -> Path:
    """`folder / name` when `name` is a relative path that stays in the folder (checked on the path
    itself: a Hub cache links its files to blobs elsewhere); refused otherwise."""
    if not isinstance(name, str) or not name:
        raise PolicyError(f"{what} must be a file name, got {name!r}")
    path = Path(os.path.normpath(folder / name))
    if Path(name).is_absolute() or not path.is_relative_to(os.path.normpath(folder)):
        raise PolicyError(f"{what} {name!r} points outside the policy folder {folder}; refusing to read it")
    return path


def inspect_checkpoint(folder: str | Path) -> CheckpointInfo:
    """Validate a policy folder strictly (no weights loaded) and describe it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PolicyError(f"{folder} is not a folder")
    kind, cfg = read_policy_type(folder)
    checked = CHECKED_TYPES[kind]
    try:
        expected = checked.expected(cfg)
    except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: sizes torch refuses
        raise PolicyError(f"{folder / 'config.json'}: {(str(exc).splitlines() or [repr(exc)])[0]}") from None
    header = read_header(folder / WEIGHTS)
    rename = checked.fix_keys(header)
    check_keys(expected, renamed_shapes(header, rename), f"{folder / WEIGHTS} does not match {kind}")
    _check_processors(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return CheckpointInfo(policy_type=kind, n_params=sum(t.numel for t in header.values()),
                          size_bytes=sum(p.stat().st_size for p in files),
                          files=[p.relative_to(folder).as_posix() for p in files])

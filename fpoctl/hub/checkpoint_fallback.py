"""TEMPORARY stand-in for `policies.checkpoint.inspect_checkpoint` (written in branch `pi0`):
delete this file, and the import fallback in fpoctl/hub/pull.py, once that branch is merged.
Knows only the MLP flow policy."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from fpoctl.hub.verify import safetensors_header
from policies.mlp import MLPFlowConfig, MLPFlowPolicy
from policies.registry import PolicyError


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint folder holds, read from config.json and the safetensors header."""

    policy_type: str
    n_params: int
    size_bytes: int
    files: list[str]


def inspect_checkpoint(folder: Path) -> CheckpointInfo:
    """Strict key/shape check of model.safetensors against the declared policy (no weights read)."""
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    kind = cfg.pop("type", None)
    if kind != MLPFlowPolicy.type_name:
        raise PolicyError(f"{folder / 'config.json'}: unknown policy type {kind!r}")
    try:
        with torch.device("meta"):
            model = MLPFlowPolicy(MLPFlowConfig(**cfg))
    except TypeError as exc:
        raise PolicyError(f"{folder / 'config.json'}: {exc}") from None
    expected = {k: list(v.shape) for k, v in model.state_dict().items()}
    got = {k: shape for k, (_, shape) in safetensors_header(folder / "model.safetensors").items()}
    missing, unexpected = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])
    if missing or unexpected or wrong:
        raise PolicyError(f"model.safetensors does not match {kind}: missing {missing}, "
                          f"unexpected {unexpected}, wrong shape {wrong}")
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    return CheckpointInfo(kind, sum(math.prod(s) for s in got.values()),
                          sum((folder / f).stat().st_size for f in files), files)

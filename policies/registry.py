"""`make_policy(name_or_path)`: build a policy by name, or load one from a saved folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from policies.mlp import MLPFlowConfig, MLPFlowPolicy


class PolicyError(Exception):
    """A policy cannot be built or loaded (unknown name, bad folder, key mismatch)."""


POLICY_NAMES = ("mlp",)


def make_policy(name_or_path: str | Path, **kwargs: Any) -> Any:
    """A fresh policy by name ("mlp" needs obs_dim/action_dim/horizon) or one loaded from a
    folder holding config.json (its "type" picks the class)."""
    path = Path(name_or_path)
    if path.is_dir():
        return load_policy(path)
    if str(name_or_path) == "mlp":
        return MLPFlowPolicy(MLPFlowConfig(**kwargs))
    raise PolicyError(f"unknown policy {name_or_path!r}; known: {', '.join(POLICY_NAMES)} "
                      "or a folder with config.json")


def load_policy(folder: Path) -> Any:
    """Load a saved policy; its config.json's "type" says which class."""
    cfg_file = folder / "config.json"
    if not cfg_file.exists():
        raise PolicyError(f"{folder} has no config.json")
    try:
        kind = json.loads(cfg_file.read_text()).get("type")
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{cfg_file} is not valid JSON: {exc}") from None
    if kind == MLPFlowPolicy.type_name:
        return MLPFlowPolicy.from_pretrained(folder)
    raise PolicyError(f"{cfg_file}: unknown policy type {kind!r}")

"""The files of a policy in LeRobot's layout, and the checks that a folder holds such a policy:
config.json with a "type", weights, processor JSONs whose `state_file`s are present."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from fpoctl.hub.errors import InvalidCheckpointError

# What a policy needs, and nothing else (no README, no training state, no pickles).
POLICY_PATTERNS = [
    "config.json",
    "*.safetensors",  # model.safetensors (or shards) and the processors' stats files
    "model.safetensors.index.json",
    "policy_*processor*.json",
    "*tokenizer.model",
    "fpoctl.json",  # fpoctl's own settings beside LeRobot's files (the env camera -> model slot map)
]
# Only files at the top of the repo: sub-folders (other checkpoints, training state) are left alone.
IGNORE_PATTERNS = ["*/*"]
TOKENIZER_PATTERN = "*tokenizer.model"


def is_policy_file(name: str) -> bool:
    """Whether a repo file name is one that a policy needs."""
    return "/" not in name and any(fnmatch(name, p) for p in POLICY_PATTERNS)


def is_plain_name(name: str) -> bool:
    """A file name that stays inside its folder: no separators, no '..', not hidden, printable."""
    return (
        bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")
        and not name.startswith(".") and name.isprintable()
    )


def policy_files(folder: Path) -> list[Path]:
    """The policy files at the top of `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if is_policy_file(p.name) and p.is_file())


def read_json(path: Path) -> Any:
    """A JSON file, or InvalidCheckpointError naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidCheckpointError(f"{path.name} is not valid JSON: {exc}") from None


def policy_type(folder: Path) -> str:
    """The "type" in config.json."""
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise InvalidCheckpointError(f"{folder} has no config.json")
    cfg = read_json(cfg_file)
    kind = cfg.get("type") if isinstance(cfg, dict) else None
    if not isinstance(kind, str) or not kind:
        raise InvalidCheckpointError(f"{cfg_file} has no policy \"type\"")
    return kind


def state_files(folder: Path) -> dict[str, list[str]]:
    """Processor JSON name -> the `state_file`s its steps name (each checked to be a plain name of a
    .safetensors file present in `folder`)."""
    out: dict[str, list[str]] = {}
    for proc in sorted(folder.glob("policy_*processor*.json")):
        data = read_json(proc)
        steps = data.get("steps", []) if isinstance(data, dict) else None
        if not isinstance(steps, list):
            raise InvalidCheckpointError(f"{proc.name}: \"steps\" must be a list")
        names = []
        for step in steps:
            name = step.get("state_file") if isinstance(step, dict) else None
            if name is None:
                continue
            if not isinstance(name, str) or not is_plain_name(name) or not name.endswith(".safetensors"):
                raise InvalidCheckpointError(
                    f"{proc.name} names state_file {name!r}: only a plain .safetensors file name is allowed")
            if not (folder / name).is_file():
                raise InvalidCheckpointError(f"{proc.name} names state_file {name}, which is missing")
            names.append(name)
        out[proc.name] = names
    return out


def check_layout(folder: Path) -> str:
    """Check the LeRobot layout of a policy folder; returns the policy type."""
    kind = policy_type(folder)
    weights = ("model.safetensors", "model.safetensors.index.json")
    if not any((folder / name).is_file() for name in weights):
        raise InvalidCheckpointError(f"{folder} has no model.safetensors")
    state_files(folder)
    return kind

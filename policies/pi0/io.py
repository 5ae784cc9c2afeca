"""pi0 folders in the LeRobot layout: config.json, model.safetensors, processor JSONs and stats files.

Stats files are the ones the processor JSONs name in `state_file` (flat keys such as
`observation.state.mean`, `action.std`); fpoctl's env camera -> model slot map lives in `fpoctl.json`
(LeRobot's rename step keeps `rename_map` {}; image renames found there are read too); a
SentencePiece model travels as `paligemma_tokenizer.model`.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from policies.errors import PolicyError
from policies.pi0.config import CAMERAS, NORMALIZATION, Pi0Config
from policies.pi0.preprocess import MeanStd
from policies.weights import TensorInfo, load_checked

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
PRE, POST = "policy_preprocessor.json", "policy_postprocessor.json"
PRE_STATS = "policy_preprocessor_step_6_normalizer_processor.safetensors"
POST_STATS = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"
TOKENIZER_FILES = ("paligemma_tokenizer.model", "tokenizer.model")
OWN = "fpoctl.json"  # fpoctl's own settings beside LeRobot's files: the env camera -> model slot map
RELATIVE_STEPS = ("relative_actions_processor", "absolute_actions_processor")
IMAGE_KEY = "observation.images."
PREFIX = "model."  # LeRobot's save_pretrained writes every key under it
LM_HEAD = "paligemma_with_expert.paligemma.lm_head.weight"
EMBED = "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"


@dataclass
class Processors:
    """What the processor files say: normalisers, camera map, tokenizer file."""

    state: MeanStd = field(default_factory=MeanStd)
    action: MeanStd = field(default_factory=MeanStd)
    camera_map: dict[str, str] = field(default_factory=dict)
    tokenizer_file: Path | None = None


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or PolicyError."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyError(f"{path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path} must hold a JSON object")
    return data


def read_config(folder: Path) -> tuple[Pi0Config, dict[str, Any]]:
    """Pi0Config and the raw config.json dict (kept so a save writes back the fields we ignore)."""
    raw = read_json(folder / CONFIG)
    if raw.get("type") != "pi0":
        raise PolicyError(f"{folder / CONFIG}: type is {raw.get('type')!r}, not 'pi0'")
    try:
        return Pi0Config.from_dict(raw), raw
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{folder / CONFIG}: {exc}") from None


def fix_keys(header: Mapping[str, TensorInfo]) -> dict[str, str]:
    """Model key -> stored key, as LeRobot 0.6.1 loads pi0: a `model.` prefix (its saves) is dropped,
    `time_mlp_*` becomes `action_time_mlp_*`, and a file holding only one of the two token tables
    (openpi conversions store lm_head alone) gives it to both; a file with both keeps both."""
    out: dict[str, str] = {}
    for old in header:
        new = old[len(PREFIX):] if old.startswith(PREFIX) else old
        new = re.sub(r"^time_mlp_(in|out)\.", r"action_time_mlp_\1.", new)
        if new in out:
            raise PolicyError(f"{old!r} and {out[new]!r} are both stored for {new!r}")
        out[new] = old
    for have, lack in ((LM_HEAD, EMBED), (EMBED, LM_HEAD)):
        if have in out and lack not in out:
            out[lack] = out[have]
    return out


def read_weights(folder: Path, expected: Mapping[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """model.safetensors, checked key by key and shape by shape against `expected` before loading."""
    return load_checked(folder / WEIGHTS, expected, f"{folder / WEIGHTS} does not match pi0", fix_keys)


def _step(steps: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((s for s in steps if s.get("registry_name") == name), None)


def _stats(folder: Path, step: dict[str, Any] | None) -> dict[str, torch.Tensor]:
    if step is None or "state_file" not in step:
        return {}
    path = folder / step["state_file"]
    if not path.is_file():
        raise PolicyError(f"{path.name} (named by a processor's state_file) is missing from {folder}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise PolicyError(f"{path.name} cannot be read: {exc}") from None


def _mean_std(stats: dict[str, torch.Tensor], key: str, eps: float) -> MeanStd | None:
    if f"{key}.mean" in stats and f"{key}.std" in stats:
        return MeanStd(stats[f"{key}.mean"].float().numpy(), stats[f"{key}.std"].float().numpy(), eps)
    return None


def check_action_steps(steps: list[dict[str, Any]], where: str) -> None:
    """PolicyError when a processor converts actions to/from relative ones (not implemented here)."""
    for name in RELATIVE_STEPS:
        step = _step(steps, name)
        if step is not None and (step.get("config") or {}).get("enabled"):
            raise PolicyError(f"{where}: {name} is enabled; fpoctl does not implement LeRobot's "
                              "relative actions and would act on the wrong actions")


def read_processors(folder: Path) -> Processors:
    """Normalisation stats, camera map and tokenizer file (each optional: a fresh model has none).
    The camera map is fpoctl's own file plus any image renames of LeRobot's rename step."""
    out = Processors()
    pre = read_json(folder / PRE).get("steps", []) if (folder / PRE).exists() else []
    post = read_json(folder / POST).get("steps", []) if (folder / POST).exists() else []
    check_action_steps(pre, str(folder / PRE))
    check_action_steps(post, str(folder / POST))
    norm, unnorm = _step(pre, "normalizer_processor"), _step(post, "unnormalizer_processor")
    eps = float(((norm or unnorm or {}).get("config") or {}).get("eps", 1e-8))
    pre_stats, post_stats = _stats(folder, norm), _stats(folder, unnorm)
    out.state = _mean_std(pre_stats, "observation.state", eps) or MeanStd(eps=eps)
    out.action = (_mean_std(pre_stats, "action", eps) or _mean_std(post_stats, "action", eps)
                  or MeanStd(eps=eps))
    rename = ((_step(pre, "rename_observations_processor") or {}).get("config") or {}).get("rename_map", {})
    out.camera_map = {k[len(IMAGE_KEY):]: v[len(IMAGE_KEY):] for k, v in rename.items()
                      if k.startswith(IMAGE_KEY) and v.startswith(IMAGE_KEY)}
    if (folder / OWN).is_file():
        out.camera_map |= read_json(folder / OWN).get("camera_map", {})
    out.tokenizer_file = next((folder / f for f in TOKENIZER_FILES if (folder / f).is_file()), None)
    return out


def _flat_stats(norms: Mapping[str, MeanStd]) -> dict[str, torch.Tensor]:
    return {f"{key}.{part}": getattr(n, part).contiguous() for key, n in norms.items()
            if n.mean is not None for part in ("mean", "std")}


def _processor_steps(config: Pi0Config, features: dict[str, Any], eps: float
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """LeRobot 0.6.1's pi0 pipelines (processor_pi0.py), relative actions off: pre = rename, batch,
    newline, tokenizer, device, relative_actions, normalizer (its stats: step 6); post =
    unnormalizer (step 0), absolute_actions, device."""
    norm_map = dict(NORMALIZATION)
    all_features = {**features["input_features"], **features["output_features"]}
    pre = [
        {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
        {"registry_name": "to_batch_processor", "config": {}},
        {"registry_name": "pi0_new_line_processor", "config": {}},
        {"registry_name": "tokenizer_processor",
         "config": {"max_length": config.tokenizer_max_length, "task_key": "task", "padding_side": "right",
                    "padding": "max_length", "truncation": True,
                    "tokenizer_name": "google/paligemma-3b-pt-224"}},
        {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
        {"registry_name": "relative_actions_processor",
         "config": {"enabled": False, "exclude_joints": ["gripper"], "action_names": None}},
        {"registry_name": "normalizer_processor",
         "config": {"eps": eps, "features": all_features, "norm_map": norm_map}, "state_file": PRE_STATS},
    ]
    post = [
        {"registry_name": "unnormalizer_processor",
         "config": {"eps": eps, "features": features["output_features"], "norm_map": norm_map},
         "state_file": POST_STATS},
        {"registry_name": "absolute_actions_processor", "config": {"enabled": False}},
        {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
    ]
    return pre, post


def write_folder(folder: Path, config: Pi0Config, raw_config: Mapping[str, Any],
                 state_dict: Mapping[str, torch.Tensor], proc: Processors) -> None:
    """Write the LeRobot layout (the weights exactly as given: merge adapters before calling): every
    key under LeRobot's `model.` prefix, its processor pipelines with `rename_map` {} and fpoctl's
    camera map in a file of its own (LeRobot ignores it)."""
    folder.mkdir(parents=True, exist_ok=True)
    size = list(config.image_resolution)
    state_dim = config.max_state_dim if proc.state.mean is None else proc.state.mean.shape[0]
    action_dim = config.max_action_dim if proc.action.mean is None else proc.action.mean.shape[0]
    features = {
        "input_features": {**{f"{IMAGE_KEY}{c}": {"type": "VISUAL", "shape": [3, *size]} for c in CAMERAS},
                           "observation.state": {"type": "STATE", "shape": [state_dim]}},
        "output_features": {"action": {"type": "ACTION", "shape": [action_dim]}},
    }
    cfg = {**features, "normalization_mapping": dict(NORMALIZATION), **dict(raw_config), **config.to_dict(),
           "type": "pi0"}
    (folder / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")
    save_file({PREFIX + k: v.detach().contiguous().cpu() for k, v in state_dict.items()},
              str(folder / WEIGHTS), metadata={"format": "pt"})
    pre_steps, post_steps = _processor_steps(config, features, proc.state.eps)
    for name, steps in ((PRE, pre_steps), (POST, post_steps)):
        (folder / name).write_text(json.dumps({"name": name[:-5], "steps": steps}, indent=2) + "\n")
    stats = _flat_stats({"observation.state": proc.state, "action": proc.action})
    for name in (PRE_STATS, POST_STATS):  # LeRobot writes the same stats to both
        save_file(stats, str(folder / name))
    own = {k: v for k, v in proc.camera_map.items() if k != v}
    (folder / OWN).write_text(json.dumps({"camera_map": own}, indent=2) + "\n")
    if proc.tokenizer_file is not None:
        target = folder / TOKENIZER_FILES[0]
        if proc.tokenizer_file.resolve() != target.resolve():
            shutil.copyfile(proc.tokenizer_file, target)

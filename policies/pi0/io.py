"""pi0 / pi0.5 folders in the LeRobot layout: config.json, model.safetensors, processor JSONs, stats.

Stats files are the ones the processor JSONs name in `state_file` (flat keys such as
`observation.state.mean`, `action.q99`); the normalisation mode of state and actions is the
normalizer step's `norm_map` (MEAN_STD for pi0, QUANTILES for pi0.5 by default); fpoctl's env camera
-> model slot map lives in `fpoctl.json` (LeRobot's rename step keeps `rename_map` {}; image renames
found there are read too); a SentencePiece model travels as `paligemma_tokenizer.model`. What
differs between the two families (type, config class, key fixes, pre-processor steps) is a
`FolderLayout`; pi0's is `PI0`.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from policies.errors import PolicyError
from policies.pi0.config import CAMERAS, NORMALIZATION, Pi0Config
from policies.pi0.preprocess import NORMALIZERS, MeanStd, Normalizer
from policies.weights import TensorInfo, load_checked

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
PRE, POST = "policy_preprocessor.json", "policy_postprocessor.json"
PRE_STATS = "policy_preprocessor_step_6_normalizer_processor.safetensors"  # pi0's; pi0.5's is step 3
POST_STATS = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"
TOKENIZER_FILES = ("paligemma_tokenizer.model", "tokenizer.model")
OWN = "fpoctl.json"  # fpoctl's own settings beside LeRobot's files: the env camera -> model slot map
RELATIVE_STEPS = ("relative_actions_processor", "absolute_actions_processor")
IMAGE_KEY = "observation.images."
PREFIX = "model."  # LeRobot's save_pretrained writes every key under it
LM_HEAD = "paligemma_with_expert.paligemma.lm_head.weight"
EMBED = "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"


Steps = list[dict[str, Any]]


@dataclass
class Processors:
    """What the processor files say: normalisers, camera map, tokenizer file."""

    state: Normalizer = field(default_factory=MeanStd)
    action: Normalizer = field(default_factory=MeanStd)
    camera_map: dict[str, str] = field(default_factory=dict)
    tokenizer_file: Path | None = None

    def norm_map(self) -> dict[str, str]:
        """LeRobot's normalization_mapping of these normalisers."""
        return {"VISUAL": "IDENTITY", "STATE": self.state.MODE, "ACTION": self.action.MODE}


@dataclass(frozen=True)
class FolderLayout:
    """What a family's LeRobot folders differ in."""

    type_name: str
    """config.json "type"."""
    config_class: type[Pi0Config]
    """Reads config.json (`from_dict`)."""
    normalization: dict[str, str]
    """The normalization_mapping a processor JSON without a norm_map stands for."""
    fix_keys: Callable[[Mapping[str, TensorInfo]], dict[str, str]]
    """Model key -> stored key, as LeRobot's loader of the family fixes a file's keys."""
    pre_steps: Callable[[Pi0Config, dict[str, Any]], Steps]
    """(config, the normalizer step) -> LeRobot's pre-processor steps, in order."""


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


def read_config(folder: Path, layout: FolderLayout | None = None) -> tuple[Pi0Config, dict[str, Any]]:
    """The config (layout's class, pi0's by default) and the raw config.json dict (kept so a save
    writes back the fields we ignore)."""
    layout = layout or PI0
    raw = read_json(folder / CONFIG)
    if raw.get("type") != layout.type_name:
        raise PolicyError(f"{folder / CONFIG}: type is {raw.get('type')!r}, not {layout.type_name!r}")
    try:
        return layout.config_class.from_dict(raw), raw
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


def read_weights(folder: Path, expected: Mapping[str, tuple[int, ...]], layout: FolderLayout | None = None
                 ) -> dict[str, torch.Tensor]:
    """model.safetensors, checked key by key and shape by shape against `expected` before loading."""
    layout = layout or PI0
    return load_checked(folder / WEIGHTS, expected, f"{folder / WEIGHTS} does not match {layout.type_name}",
                        layout.fix_keys)


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


def _normalizer(mode: str, stats: dict[str, torch.Tensor], key: str, eps: float, where: str
                ) -> Normalizer | None:
    """The `mode` normaliser of feature `key` from flat stats; None when the file has no stats of
    `key` at all; PolicyError when it has some but not the ones the mode needs (LeRobot raises)."""
    cls = NORMALIZERS[mode]
    if not any(k.startswith(f"{key}.") for k in stats):
        return None
    missing = [k for k in cls.KEYS if f"{key}.{k}" not in stats]
    if missing:
        raise PolicyError(f"{where}: {mode} normalisation of {key} needs {', '.join(missing)}, "
                          f"which the stats file lacks")
    return cls(*(stats[f"{key}.{k}"].float().numpy() for k in cls.KEYS), eps=eps)


def _norm_modes(norm: dict[str, Any] | None, default: dict[str, str], where: str) -> dict[str, str]:
    """The normalizer step's norm_map (the default when it has none), checked to be implemented."""
    modes = {**default, **(((norm or {}).get("config") or {}).get("norm_map") or {})}
    if modes.get("VISUAL", "IDENTITY") != "IDENTITY":
        raise PolicyError(f"{where}: VISUAL normalisation {modes['VISUAL']} is not supported (IDENTITY only)")
    for kind in ("STATE", "ACTION"):
        if modes.get(kind) not in NORMALIZERS:
            raise PolicyError(f"{where}: {kind} normalisation {modes.get(kind)} is not supported "
                              f"({', '.join(NORMALIZERS)})")
    return modes


def check_action_steps(steps: list[dict[str, Any]], where: str) -> None:
    """PolicyError when a processor converts actions to/from relative ones (not implemented here)."""
    for name in RELATIVE_STEPS:
        step = _step(steps, name)
        if step is not None and (step.get("config") or {}).get("enabled"):
            raise PolicyError(f"{where}: {name} is enabled; fpoctl does not implement LeRobot's "
                              "relative actions and would act on the wrong actions")


def read_processors(folder: Path, layout: FolderLayout | None = None) -> Processors:
    """Normalisers (mode from the normalizer step's norm_map, stats from its state_file), camera map
    and tokenizer file (each optional: a fresh model has none). The camera map is fpoctl's own file
    plus any image renames of LeRobot's rename step."""
    layout = layout or PI0
    out = Processors()
    pre = read_json(folder / PRE).get("steps", []) if (folder / PRE).exists() else []
    post = read_json(folder / POST).get("steps", []) if (folder / POST).exists() else []
    check_action_steps(pre, str(folder / PRE))
    check_action_steps(post, str(folder / POST))
    norm, unnorm = _step(pre, "normalizer_processor"), _step(post, "unnormalizer_processor")
    eps = float(((norm or unnorm or {}).get("config") or {}).get("eps", 1e-8))
    modes = _norm_modes(norm or unnorm, layout.normalization, str(folder / (PRE if norm else POST)))
    pre_stats, post_stats = _stats(folder, norm), _stats(folder, unnorm)
    state_mode, action_mode = NORMALIZERS[modes["STATE"]], NORMALIZERS[modes["ACTION"]]
    out.state = (_normalizer(modes["STATE"], pre_stats, "observation.state", eps, str(folder))
                 or state_mode(eps=eps))
    out.action = (_normalizer(modes["ACTION"], pre_stats, "action", eps, str(folder))
                  or _normalizer(modes["ACTION"], post_stats, "action", eps, str(folder))
                  or action_mode(eps=eps))
    rename = ((_step(pre, "rename_observations_processor") or {}).get("config") or {}).get("rename_map", {})
    out.camera_map = {k[len(IMAGE_KEY):]: v[len(IMAGE_KEY):] for k, v in rename.items()
                      if k.startswith(IMAGE_KEY) and v.startswith(IMAGE_KEY)}
    if (folder / OWN).is_file():
        out.camera_map |= read_json(folder / OWN).get("camera_map", {})
    out.tokenizer_file = next((folder / f for f in TOKENIZER_FILES if (folder / f).is_file()), None)
    return out


def _flat_stats(norms: Mapping[str, Normalizer]) -> dict[str, torch.Tensor]:
    return {f"{key}.{part}": value.contiguous() for key, n in norms.items()
            for part, value in n.stats().items()}


# -- LeRobot 0.6.1's processor steps (relative actions off), as its save writes them ---------------
def rename_step() -> dict[str, Any]:
    """rename_observations_processor with an empty rename_map."""
    return {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}}


def batch_step() -> dict[str, Any]:
    """to_batch_processor."""
    return {"registry_name": "to_batch_processor", "config": {}}


def tokenizer_step(max_length: int) -> dict[str, Any]:
    """tokenizer_processor: PaliGemma's tokenizer, right padded to max_length, truncating."""
    return {"registry_name": "tokenizer_processor",
            "config": {"max_length": max_length, "task_key": "task", "padding_side": "right",
                       "padding": "max_length", "truncation": True,
                       "tokenizer_name": "google/paligemma-3b-pt-224"}}


def device_step() -> dict[str, Any]:
    """device_processor on the CPU."""
    return {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}}


def relative_step() -> dict[str, Any]:
    """relative_actions_processor, disabled."""
    return {"registry_name": "relative_actions_processor",
            "config": {"enabled": False, "exclude_joints": ["gripper"], "action_names": None}}


def _pi0_pre_steps(config: Pi0Config, normalizer: dict[str, Any]) -> Steps:
    """processor_pi0.py: rename, batch, newline, tokenizer, device, relative_actions, normalizer."""
    return [rename_step(), batch_step(), {"registry_name": "pi0_new_line_processor", "config": {}},
            tokenizer_step(config.tokenizer_max_length), device_step(), relative_step(), normalizer]


def _with_state_files(steps: Steps, pipeline: str) -> Steps:
    """Each (un)normalizer step names its stats file after its place, as LeRobot's save does."""
    for i, step in enumerate(steps):
        if step["registry_name"] in ("normalizer_processor", "unnormalizer_processor"):
            step["state_file"] = f"{pipeline}_step_{i}_{step['registry_name']}.safetensors"
    return steps


def processor_steps(layout: FolderLayout, config: Pi0Config, features: dict[str, Any], eps: float,
                    norm_map: dict[str, str]) -> tuple[Steps, Steps]:
    """The family's pre steps and the shared post steps: unnormalizer (step 0), absolute_actions, device."""
    all_features = {**features["input_features"], **features["output_features"]}
    normalizer = {"registry_name": "normalizer_processor",
                  "config": {"eps": eps, "features": all_features, "norm_map": dict(norm_map)}}
    pre = layout.pre_steps(config, normalizer)
    post = [{"registry_name": "unnormalizer_processor",
             "config": {"eps": eps, "features": features["output_features"], "norm_map": dict(norm_map)}},
            {"registry_name": "absolute_actions_processor", "config": {"enabled": False}}, device_step()]
    return _with_state_files(pre, PRE[:-5]), _with_state_files(post, POST[:-5])


def write_folder(folder: Path, config: Pi0Config, raw_config: Mapping[str, Any],
                 state_dict: Mapping[str, torch.Tensor], proc: Processors, layout: FolderLayout | None = None
                 ) -> None:
    """Write the LeRobot layout (the weights exactly as given: merge adapters before calling): every
    key under LeRobot's `model.` prefix, its processor pipelines with `rename_map` {} and fpoctl's
    camera map in a file of its own (LeRobot ignores it)."""
    layout = layout or PI0
    folder.mkdir(parents=True, exist_ok=True)
    size = list(config.image_resolution)
    state_dim, action_dim = proc.state.dim or config.max_state_dim, proc.action.dim or config.max_action_dim
    features = {
        "input_features": {**{f"{IMAGE_KEY}{c}": {"type": "VISUAL", "shape": [3, *size]} for c in CAMERAS},
                           "observation.state": {"type": "STATE", "shape": [state_dim]}},
        "output_features": {"action": {"type": "ACTION", "shape": [action_dim]}},
    }
    norm_map = proc.norm_map()
    cfg = {**features, "normalization_mapping": norm_map, **dict(raw_config), **config.to_dict(),
           "type": layout.type_name}
    (folder / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")
    save_file({PREFIX + k: v.detach().contiguous().cpu() for k, v in state_dict.items()},
              str(folder / WEIGHTS), metadata={"format": "pt"})
    pre_steps, post_steps = processor_steps(layout, config, features, proc.state.eps, norm_map)
    stats = _flat_stats({"observation.state": proc.state, "action": proc.action})
    for name, steps in ((PRE, pre_steps), (POST, post_steps)):
        (folder / name).write_text(json.dumps({"name": name[:-5], "steps": steps}, indent=2) + "\n")
        for step in steps:  # LeRobot writes the same stats to both
            if "state_file" in step:
                save_file(stats, str(folder / step["state_file"]))
    own = {k: v for k, v in proc.camera_map.items() if k != v}
    (folder / OWN).write_text(json.dumps({"camera_map": own}, indent=2) + "\n")
    if proc.tokenizer_file is not None:
        target = folder / TOKENIZER_FILES[0]
        if proc.tokenizer_file.resolve() != target.resolve():
            shutil.copyfile(proc.tokenizer_file, target)


PI0 = FolderLayout("pi0", Pi0Config, NORMALIZATION, fix_keys, _pi0_pre_steps)
"""LeRobot 0.6.1's pi0 folders."""

"""`make_policy(name_or_path)`: build a policy by name, or load one from a saved folder.

Names: "mlp" (MLP flow policy), "pi0" / "pi05" (full size), "pi0-tiny" / "pi05-tiny" (the CPU-test
sizes). A folder's config.json "type" ("mlp_flow", "pi0", "pi05", ...) picks the loader; keys and
shapes are checked against the safetensors header before any weight is read.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from policies.checkpoint import inspect_checkpoint, read_policy_type
from policies.errors import PolicyError
from policies.gaussian import GaussianConfig, GaussianPolicy
from policies.mlp import MLPFlowConfig, MLPFlowPolicy
from policies.pi0.config import CONFIG_PRESETS, Pi0Config
from policies.pi0.policy import SCOPES, PaliGemmaPolicy, Pi0Policy
from policies.pi05.config import CONFIG_PRESETS as PI05_PRESETS
from policies.pi05.policy import Pi05Policy

__all__ = ["FAMILIES", "POLICY_NAMES", "PolicyError", "PolicyFamily", "family_of", "known_scopes",
           "load_policy", "make_policy"]


@dataclass(frozen=True)
class PolicyFamily:
    """What a trainer may know of a policy family (never its internals)."""

    type_name: str
    """config.json "type" of its folders."""
    presets: tuple[str, ...]
    """Names `make_policy` builds fresh."""
    scopes: tuple[str, ...] = ()
    """Parts training can be limited to (`scope`); empty: the family always trains everything."""
    dtypes: tuple[str, ...] = ()
    """Precisions it can be built in (a `dtype` option); empty: float32 only, no option."""
    needs_tokenizer: bool = False
    """Whether it reads prompts with a SentencePiece tokenizer that its checkpoints may not ship."""


FAMILIES = (
    PolicyFamily(MLPFlowPolicy.type_name, ("mlp",)),
    PolicyFamily(GaussianPolicy.type_name, ("gaussian",)),
    PolicyFamily(Pi0Policy.type_name, tuple(CONFIG_PRESETS), SCOPES, ("float32", "bfloat16"),
                 needs_tokenizer=True),
    PolicyFamily(Pi05Policy.type_name, tuple(PI05_PRESETS), SCOPES, ("float32", "bfloat16"),
                 needs_tokenizer=True),
)
VLA_PRESETS: dict[str, tuple[Any, type[PaliGemmaPolicy]]] = {
    **{name: (preset, Pi0Policy) for name, preset in CONFIG_PRESETS.items()},
    **{name: (preset, Pi05Policy) for name, preset in PI05_PRESETS.items()},
}
"""Preset name -> (config builder, policy class) of the PaliGemma VLAs."""
POLICY_NAMES = tuple(name for family in FAMILIES for name in family.presets)
DEFAULT_SCOPE = "expert"
"""The job config's default scope: pi0's action expert; families without scopes ignore it."""


def family_of(name_or_folder: str | Path) -> PolicyFamily:
    """The family of a preset name, or of a saved folder (its config.json "type")."""
    path = Path(name_or_folder)
    if path.is_dir():
        kind, _ = read_policy_type(path)
        return next(f for f in FAMILIES if f.type_name == kind)
    for family in FAMILIES:
        if str(name_or_folder) in family.presets:
            return family
    raise PolicyError(f"unknown policy {str(name_or_folder)!r}; known: {', '.join(POLICY_NAMES)} "
                      "or a folder with config.json")


def known_scopes() -> tuple[str, ...]:
    """Every scope some family offers (the job config's `scope` must be one)."""
    return tuple(dict.fromkeys(s for family in FAMILIES for s in family.scopes))


def _load_small(cls: Any) -> Callable[..., Any]:
    def load(folder: Path, **kwargs: Any) -> Any:
        if kwargs:
            raise PolicyError(f"{cls.type_name} folders take no options (got {', '.join(kwargs)})")
        return cls.from_pretrained(folder)

    return load


LOADERS: dict[str, Callable[..., Any]] = {MLPFlowPolicy.type_name: _load_small(MLPFlowPolicy),
                                          GaussianPolicy.type_name: _load_small(GaussianPolicy),
                                          Pi0Policy.type_name: Pi0Policy.from_pretrained,
                                          Pi05Policy.type_name: Pi05Policy.from_pretrained}


def make_policy(name_or_path: str | Path, **kwargs: Any) -> Any:
    """A fresh policy by name or one loaded from a folder holding config.json.

    "mlp" (and "gaussian", the PPO baseline) need obs_dim / action_dim (/ horizon ...).
    "pi0" / "pi0-tiny" / "pi05" / "pi05-tiny" take any Pi0Config field
    (e.g. dtype="bfloat16", chunk_size=10) plus tokenizer=, camera_map=, scope=, device=.
    A pi0 / pi05 folder takes tokenizer=, camera_map=, scope=, dtype=, device= (see
    PaliGemmaPolicy.from_pretrained).
    """
    path = Path(name_or_path)
    if path.is_dir():
        return load_policy(path, **kwargs)
    name = str(name_or_path)
    try:
        if name == "mlp":
            return MLPFlowPolicy(MLPFlowConfig(**kwargs))
        if name == "gaussian":
            return GaussianPolicy(GaussianConfig(**kwargs))
        if name in VLA_PRESETS:
            preset, policy_class = VLA_PRESETS[name]
            known = {f.name for f in fields(Pi0Config)}
            config = preset(**{k: v for k, v in kwargs.items() if k in known})
            return policy_class.create(config, **{k: v for k, v in kwargs.items() if k not in known})
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"cannot build {name!r}: {exc}") from None
    raise PolicyError(f"unknown policy {name!r}; known: {', '.join(POLICY_NAMES)} "
                      "or a folder with config.json")


def load_policy(folder: Path, **kwargs: Any) -> Any:
    """Load a saved policy; config.json's "type" says which class (checked first, strictly)."""
    kind, _ = read_policy_type(folder)
    inspect_checkpoint(folder)
    loader = LOADERS[kind]
    try:
        inspect.signature(loader).bind(folder, **kwargs)
    except TypeError as exc:
        raise PolicyError(f"cannot load {folder}: {exc}") from None
    return loader(folder, **kwargs)

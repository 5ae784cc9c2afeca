"""pi0.5 configuration: LeRobot's `PI05Config` has the same fields as its `PI0Config` (sizes, chunk,
flow-matching settings); it differs in the defaults and the normalisation it allows.

Defaults that differ (configuration_pi05.py): prompts of 200 tokens (task + discretised state) and
QUANTILES normalisation of state and actions. LIBERO fine-tunes often override the mapping to
MEAN_STD (LeRobot's docs recipe), so both modes are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.pi0.config import TINY_SIZES, Pi0Config
from policies.pi0.preprocess import NORMALIZERS

NORMALIZATION = {"VISUAL": "IDENTITY", "STATE": "QUANTILES", "ACTION": "QUANTILES"}
"""LeRobot's pi0.5 default normalization_mapping."""


@dataclass
class Pi05Config(Pi0Config):
    """The subset of LeRobot's `PI05Config` this implementation reads (names and defaults as there)."""

    tokenizer_max_length: int = 200
    """Prompt tokens ("Task: ..., State: ...;\\nAction: "), right padded; longer prompts are cut."""

    @classmethod
    def check_normalization(cls, mapping: dict[str, str]) -> None:
        """ValueError unless images are IDENTITY and state / actions QUANTILES or MEAN_STD."""
        norms = {**NORMALIZATION, **mapping}
        if norms["VISUAL"] != "IDENTITY" or not {norms["STATE"], norms["ACTION"]} <= set(NORMALIZERS):
            raise ValueError(f"normalization_mapping {norms} is not supported: pi0.5 here normalises state "
                             f"and actions by {' or '.join(NORMALIZERS)} and leaves images as they are")


def full_config(**overrides: Any) -> Pi05Config:
    """The real pi0.5 (Gemma 2B + Gemma 300M adaRMS expert); n_action_steps follows a smaller chunk_size."""
    if "chunk_size" in overrides:
        overrides.setdefault("n_action_steps", overrides["chunk_size"])
    return Pi05Config(**overrides)


def tiny_config(**overrides: Any) -> Pi05Config:
    """The CPU-test configuration: pi0's tiny sizes; 80 prompt tokens hold a short task and an 8-d state."""
    return full_config(**{**TINY_SIZES, "tokenizer_max_length": 80, **overrides})


CONFIG_PRESETS: dict[str, Any] = {"pi05": full_config, "pi05-tiny": tiny_config}

"""pi0 configuration: LeRobot's `config.json` fields plus the size tables its variant names select.

`paligemma_variant` picks the language model (and with it the vision tower and vocabulary);
`action_expert_variant` picks the action expert. "gemma_2b" / "gemma_300m" are the real sizes;
"tiny" / "tiny_expert" are the same code at CPU-test sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

CAMERAS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")  # the model's image slots, in order


@dataclass(frozen=True)
class GemmaSpec:
    """Sizes of one Gemma decoder stack."""

    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int


@dataclass(frozen=True)
class VisionSpec:
    """Sizes of one SigLIP vision tower."""

    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    patch_size: int


GEMMA_VARIANTS: dict[str, GemmaSpec] = {
    "gemma_2b": GemmaSpec(width=2048, depth=18, mlp_dim=16_384, num_heads=8, num_kv_heads=1, head_dim=256),
    "gemma_300m": GemmaSpec(width=1024, depth=18, mlp_dim=4096, num_heads=8, num_kv_heads=1, head_dim=256),
    "tiny": GemmaSpec(width=64, depth=2, mlp_dim=128, num_heads=4, num_kv_heads=1, head_dim=16),
    "tiny_expert": GemmaSpec(width=32, depth=2, mlp_dim=64, num_heads=4, num_kv_heads=1, head_dim=16),
    # LeRobot hard-codes 8 heads in the joint layer: the small size its own code can build (golden fixtures)
    "tiny_8h": GemmaSpec(width=64, depth=2, mlp_dim=128, num_heads=8, num_kv_heads=1, head_dim=8),
    "tiny_8h_expert": GemmaSpec(width=32, depth=2, mlp_dim=64, num_heads=8, num_kv_heads=1, head_dim=8),
}

SO400M = VisionSpec(width=1152, depth=27, mlp_dim=4304, num_heads=16, patch_size=14)
TINY_VISION = VisionSpec(width=32, depth=2, mlp_dim=64, num_heads=2, patch_size=8)

# The vision tower and vocabulary come with the language model they were trained with.
VISION_FOR_VLM: dict[str, VisionSpec] = {"gemma_2b": SO400M, "gemma_300m": SO400M, "tiny": TINY_VISION,
                                          "tiny_8h": TINY_VISION}
VOCAB_FOR_VLM: dict[str, int] = {"gemma_2b": 257_152, "gemma_300m": 257_152, "tiny": 512, "tiny_8h": 512}


@dataclass
class Pi0Config:
    """The subset of LeRobot's `PI0Config` this implementation reads (names and defaults as there)."""

    paligemma_variant: str = "gemma_2b"
    """Language model size (selects the vision tower and vocabulary too)."""
    action_expert_variant: str = "gemma_300m"
    """Action expert size."""
    dtype: str = "float32"
    """bfloat16 (norms, vision tower, projector and heads stay float32) or float32 everywhere."""
    chunk_size: int = 50
    """Action horizon H: steps predicted per chunk."""
    n_action_steps: int = 50
    """Steps of a chunk executed before sampling the next one."""
    max_state_dim: int = 32
    """States are zero padded to this size."""
    max_action_dim: int = 32
    """Actions are zero padded to this size (the model's D)."""
    num_inference_steps: int = 10
    """Euler steps K of the sampler."""
    min_period: float = 4e-3
    """Shortest period of the sin/cos time embedding."""
    max_period: float = 4.0
    """Longest period of the sin/cos time embedding."""
    image_resolution: tuple[int, int] = (224, 224)
    """Images are resized with padding to this (square) size."""
    tokenizer_max_length: int = 48
    """Prompt tokens, right padded."""
    gradient_checkpointing: bool = False
    """Recompute each transformer layer in the backward pass (less memory, more time)."""

    def __post_init__(self) -> None:
        self.image_resolution = tuple(self.image_resolution)  # JSON gives a list
        for name, table in (("paligemma_variant", VISION_FOR_VLM), ("action_expert_variant", GEMMA_VARIANTS)):
            value = getattr(self, name)
            if value not in table:
                raise ValueError(f"unknown {name} {value!r}; known: {', '.join(table)}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', not {self.dtype!r}")
        vlm, expert = self.vlm, self.expert
        if (vlm.depth, vlm.num_heads, vlm.num_kv_heads, vlm.head_dim) != (
                expert.depth, expert.num_heads, expert.num_kv_heads, expert.head_dim):
            raise ValueError("joint attention needs equal depth, heads and head_dim in both experts")
        size = self.image_resolution
        if size[0] != size[1] or size[0] % self.vision.patch_size:
            raise ValueError(f"image_resolution {size} must be square and a multiple of the patch size")
        if self.n_action_steps > self.chunk_size:
            raise ValueError(f"n_action_steps {self.n_action_steps} > chunk_size {self.chunk_size}")

    @property
    def vlm(self) -> GemmaSpec:
        """The language model's sizes."""
        return GEMMA_VARIANTS[self.paligemma_variant]

    @property
    def expert(self) -> GemmaSpec:
        """The action expert's sizes."""
        return GEMMA_VARIANTS[self.action_expert_variant]

    @property
    def vision(self) -> VisionSpec:
        """The vision tower's sizes."""
        return VISION_FOR_VLM[self.paligemma_variant]

    @property
    def vocab_size(self) -> int:
        """Rows of the (tied) token embedding / lm_head."""
        return VOCAB_FOR_VLM[self.paligemma_variant]

    @property
    def image_size(self) -> int:
        """Side of the square model images."""
        return self.image_resolution[0]

    def to_dict(self) -> dict[str, Any]:
        """Fields as JSON-ready values."""
        out = asdict(self)
        out["image_resolution"] = list(self.image_resolution)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pi0Config:
        """Build from a LeRobot config.json dict; fields this class does not know are left out (see
        `unsupported_fields` for the ones that would change what the policy does). Relative actions
        (LeRobot's `use_relative_actions`) are refused: their processor steps are not implemented here,
        and such a checkpoint run without them would act on the wrong actions."""
        if data.get("use_relative_actions"):
            raise ValueError("use_relative_actions is true: fpoctl does not implement LeRobot's "
                             "relative/absolute action steps and would act on the wrong actions")
        cls.check_normalization(data.get("normalization_mapping") or {})
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def check_normalization(cls, mapping: dict[str, str]) -> None:
        """ValueError unless config.json's normalization_mapping is LeRobot's pi0 default."""
        norms = {**NORMALIZATION, **mapping}
        if norms != NORMALIZATION:
            raise ValueError(f"normalization_mapping {norms} is not supported: pi0 here normalises "
                             "state and actions by mean/std and leaves images as they are")


NORMALIZATION = {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
"""LeRobot's pi0 default normalisation_mapping, the only one implemented here."""
LEROBOT_BEHAVIOUR_DEFAULTS: dict[str, Any] = {
    "n_obs_steps": 1, "use_amp": False, "time_sampling_beta_alpha": 1.5, "time_sampling_beta_beta": 1.0,
    "time_sampling_scale": 0.999, "time_sampling_offset": 0.001, "rtc_config": None, "use_peft": False,
    "freeze_vision_encoder": False, "train_expert_only": False,
}
"""LeRobot PI0Config fields fpoctl does not read, at the value whose behaviour fpoctl has; another value
changes what LeRobot would do (fpoctl's own job config sets training: `scope`, learning rates)."""
LEROBOT_SETTINGS = frozenset({
    "type", "input_features", "output_features", "normalization_mapping", "device",
    "push_to_hub", "repo_id", "private", "tags", "license", "pretrained_path", "pretrained_revision",
    "compile_model", "compile_mode", "empty_cameras", "relative_exclude_joints", "action_feature_names",
    "optimizer_lr", "optimizer_betas", "optimizer_eps", "optimizer_weight_decay", "optimizer_grad_clip_norm",
    "scheduler_warmup_steps", "scheduler_decay_steps", "scheduler_decay_lr"})
"""LeRobot fields with no effect here: bookkeeping, LeRobot's own trainer settings (fpoctl's job config
replaces them), features (read from the processors), empty cameras (a missing slot is masked anyway)."""


def unsupported_fields(data: dict[str, Any]) -> list[str]:
    """Warnings, one per config.json field that would change behaviour and that fpoctl does not honour
    (a non-default value of a known LeRobot field, or a field nobody here knows)."""
    known = {f.name for f in fields(Pi0Config)} | LEROBOT_SETTINGS
    defaults = LEROBOT_BEHAVIOUR_DEFAULTS
    out = [f"config.json field {k!r} = {v!r} is not supported (fpoctl behaves as with {defaults[k]!r})"
           for k, v in data.items() if k in defaults and v != defaults[k]]
    out += [f"config.json field {k!r} is unknown to fpoctl and ignored" for k in data
            if k not in known and k not in LEROBOT_BEHAVIOUR_DEFAULTS and k != "use_relative_actions"]
    return out


def full_config(**overrides: Any) -> Pi0Config:
    """The real pi0 (Gemma 2B + Gemma 300M expert); n_action_steps follows a smaller chunk_size."""
    if "chunk_size" in overrides:
        overrides.setdefault("n_action_steps", overrides["chunk_size"])
    return Pi0Config(**overrides)


TINY_SIZES: dict[str, Any] = dict(paligemma_variant="tiny", action_expert_variant="tiny_expert",
                                  image_resolution=(32, 32), chunk_size=10)
"""The CPU-test sizes (pi0's and pi0.5's tiny presets): small widths, 32 px images, short chunks."""


def tiny_config(**overrides: Any) -> Pi0Config:
    """The CPU-test configuration: same architecture, small sizes, 32 px images, short chunks."""
    return full_config(**{**TINY_SIZES, "tokenizer_max_length": 16, **overrides})


CONFIG_PRESETS: dict[str, Any] = {"pi0": full_config, "pi0-tiny": tiny_config}

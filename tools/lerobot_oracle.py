"""What the golden-fixture scripts share (tools/make_lerobot_fixture.py for pi0,
tools/make_lerobot_pi05_fixture.py for pi0.5): they run BY HAND in the LeRobot 0.6.1 virtualenv
(setup: make_lerobot_fixture.py's docstring), never in CI; nothing under tests/ imports them.

- `patch_venv`: the on-disk edits that make lerobot 0.6.1 import on Python 3.11 (idempotent);
- `patch_lerobot(family)`: run-time patches so LeRobot's own pi0 / pi05 code builds fpoctl's `tiny_8h`
  sizes: its `get_gemma_config` learns "tiny_8h" / "tiny_8h_expert", the HF configs of the two
  transformers get vocab 512 / TINY_VISION / projection 64 just before they are instantiated, its
  config's `__post_init__` accepts the tiny names, and `AutoTokenizer` in LeRobot's tokenizer step
  returns a stand-in for the gated PaliGemma tokenizer (byte-level, or a toy SentencePiece model);
- `randomise`, `Capture`, `as_saved`, `max_diff`, `load_with_lerobot`: building, recording and
  checking (LeRobot's from_pretrained swallows load errors: its log must say "All keys loaded").
"""

from __future__ import annotations

import contextlib
import io
import math
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
SEED = 0
B = 2

VLM_VARIANT, EXPERT_VARIANT = "tiny_8h", "tiny_8h_expert"
GEMMA_SIZES: dict[str, dict[str, int]] = {
    VLM_VARIANT: dict(width=64, depth=2, mlp_dim=128, num_heads=8, num_kv_heads=1, head_dim=8),
    EXPERT_VARIANT: dict(width=32, depth=2, mlp_dim=64, num_heads=8, num_kv_heads=1, head_dim=8),
}
VISION = dict(width=32, depth=2, mlp_dim=64, num_heads=2, patch_size=8)  # fpoctl's TINY_VISION
VOCAB = 512
IMAGE = 32
CHUNK = 10
MAX_DIM = 32
STATE_DIM, ACTION_DIM = 8, 7
CAMERAS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")
LOADED_OK = "All keys loaded successfully"
TOLERANCE = 1e-4  # fp32: LeRobot against itself differs by ~6e-6 (the loss) on differently aligned inputs

# -- venv patches (on disk, --patch-venv) ------------------------------------------------------------
PEP695_REWRITES: dict[str, list[tuple[str, str]]] = {
    "lerobot/processor/pipeline.py": [
        ("from typing import Any, TypedDict, TypeVar, cast",
         "from typing import Any, Generic, TypedDict, TypeVar, cast"),
        ("class DataProcessorPipeline[TInput, TOutput](HubMixin):",
         "class DataProcessorPipeline(HubMixin, Generic[TInput, TOutput]):"),
    ],
    "lerobot/utils/io_utils.py": [
        ("from typing import Any\n", "from typing import Any, TypeVar\n"),
        ("def deserialize_json_into_object[T: JsonLike](fpath: Path, obj: T) -> T:",
         '_T = TypeVar("_T")\n\n\ndef deserialize_json_into_object(fpath: Path, obj: _T) -> _T:'),
    ],
    "lerobot/motors/motors_bus.py": [
        ("type NameOrID = str | int", "NameOrID = str | int"),
        ("type Value = int | float", "Value = int | float"),
    ],
    "lerobot/datasets/streaming_dataset.py": [
        ("from typing import Literal\n",
         'from typing import Generic, Literal, TypeVar\n\nT = TypeVar("T")\n'),
        ("class Backtrackable[T]:", "class Backtrackable(Generic[T]):"),
    ],
    "lerobot/datasets/aggregate.py": [
        ("type FeatureDict = ", "FeatureDict = "),
        ("type ChunkFile = ", "ChunkFile = "),
        ("type VideoIndexState = ", "VideoIndexState = "),
    ],
    "torchvision/_meta_registrations.py": [
        (f'@torch.library.register_fake("torchvision::{op}")',
         f'@(torch.library.register_fake("torchvision::{op}") if torchvision.extension._has_ops()'
         " else (lambda fn: fn))")
        for op in ("nms", "qnms")
    ],
}


def patch_venv() -> None:
    """Rewrite the files in PEP695_REWRITES inside this interpreter's site-packages (idempotent)."""
    site = Path(sysconfig.get_paths()["purelib"])
    for rel, rewrites in PEP695_REWRITES.items():
        path = site / rel
        text = path.read_text()
        for old, new in rewrites:
            if text.count(old) == 1:
                text = text.replace(old, new)
            elif old in text or new not in text:
                raise SystemExit(f"{path}: expected exactly one {old!r} (or the patched {new!r})")
        path.write_text(text)
        print(f"patched {path}")


# -- run-time patches of LeRobot ----------------------------------------------------------------------
class StandInTokenizer:
    """Deterministic stand-in for the gated PaliGemma tokenizer, called the way LeRobot's
    TokenizerProcessorStep calls a transformers tokenizer: BOS (2), then 3 + each UTF-8 byte;
    truncation to max_length, right padding with id 0."""

    bos, pad, offset = 2, 0, 3

    def encode(self, text: str) -> list[int]:
        """BOS + byte ids (no truncation)."""
        return [self.bos] + [self.offset + b for b in text.encode("utf-8")]

    def __call__(self, text: str | list[str], *, max_length: int, truncation: bool = True,
                 padding: str = "max_length", padding_side: str = "right", return_tensors: str = "pt",
                 **_: Any) -> dict[str, Tensor]:
        if padding != "max_length" or padding_side != "right" or return_tensors != "pt":
            raise ValueError("the stand-in tokenizer only pads right to max_length and returns torch tensors")
        texts = [text] if isinstance(text, str) else list(text)
        ids = torch.full((len(texts), max_length), self.pad, dtype=torch.int64)
        mask = torch.zeros((len(texts), max_length), dtype=torch.int64)
        for i, t in enumerate(texts):
            row = self.encode(t)
            if len(row) > max_length and not truncation:
                raise ValueError(f"{t!r} is longer than {max_length} ids")
            row = row[:max_length]
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask}


class _StandInAutoTokenizer:
    @staticmethod
    def from_pretrained(name: str, *args: Any, **kwargs: Any) -> StandInTokenizer:
        print(f"(stand-in tokenizer for {name})")
        return StandInTokenizer()


class SentencePieceStandIn(StandInTokenizer):
    """The stand-in with a (toy) SentencePiece model instead of bytes: BOS + the model's ids, nothing
    appended, as transformers' PaliGemma tokenizer encodes with its default special tokens."""

    def __init__(self, model_file: Path) -> None:
        import sentencepiece as spm

        self.model_file = model_file
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))

    def encode(self, text: str) -> list[int]:
        """BOS + SentencePiece ids (no truncation)."""
        return self.sp.encode(text, add_bos=True)


def _auto_tokenizer(make: Callable[[], StandInTokenizer]) -> Any:
    class StandInAutoTokenizer:
        @staticmethod
        def from_pretrained(name: str, *args: Any, **kwargs: Any) -> StandInTokenizer:
            print(f"(stand-in tokenizer for {name})")
            return make()

    return StandInAutoTokenizer


_PATCHED: set[str] = set()


def patch_lerobot(family: str = "pi0", tokenizer: Callable[[], StandInTokenizer] = StandInTokenizer) -> None:
    """Teach LeRobot 0.6.1's `family` ("pi0" or "pi05") the tiny sizes (see the module docstring) and
    give its tokenizer step `tokenizer()`; call before building a policy."""
    import importlib

    from lerobot.processor import tokenizer_processor

    tokenizer_processor.AutoTokenizer = _auto_tokenizer(tokenizer)
    if family in _PATCHED:
        return
    modeling = importlib.import_module(f"lerobot.policies.{family}.modeling_{family}")
    configuration = importlib.import_module(f"lerobot.policies.{family}.configuration_{family}")
    real_get = modeling.get_gemma_config

    def get_gemma_config(variant: str) -> Any:
        if variant in GEMMA_SIZES:
            return modeling.GemmaConfig(**GEMMA_SIZES[variant])
        return real_get(variant)

    modeling.get_gemma_config = get_gemma_config

    real_vlm = modeling.PaliGemmaForConditionalGenerationWithPiGemma
    real_expert = modeling.PiGemmaForCausalLM

    class SmallPaliGemma(real_vlm):  # type: ignore[misc, valid-type]
        def __init__(self, config: Any) -> None:
            if config.text_config.hidden_size == GEMMA_SIZES[VLM_VARIANT]["width"]:
                config._vocab_size = VOCAB
                config.image_token_index = VOCAB
                config.text_config.vocab_size = VOCAB
                vc = config.vision_config
                vc.hidden_size, vc.num_hidden_layers = VISION["width"], VISION["depth"]
                vc.intermediate_size, vc.num_attention_heads = VISION["mlp_dim"], VISION["num_heads"]
                vc.patch_size = VISION["patch_size"]
                vc.projection_dim = config.text_config.hidden_size
                config.text_config.num_image_tokens = (vc.image_size // vc.patch_size) ** 2
            super().__init__(config)

    class SmallExpert(real_expert):  # type: ignore[misc, valid-type]
        def __init__(self, config: Any, **kwargs: Any) -> None:
            if config.hidden_size == GEMMA_SIZES[EXPERT_VARIANT]["width"]:
                config.vocab_size = VOCAB
            super().__init__(config, **kwargs)

    modeling.PaliGemmaForConditionalGenerationWithPiGemma = SmallPaliGemma
    modeling.PiGemmaForCausalLM = SmallExpert

    cfg_cls = getattr(configuration, "PI0Config" if family == "pi0" else "PI05Config")
    real_post_init = cfg_cls.__post_init__

    def post_init(self: Any) -> None:
        names = (self.paligemma_variant, self.action_expert_variant)
        if self.paligemma_variant == VLM_VARIANT:
            self.paligemma_variant = "gemma_2b"
        if self.action_expert_variant == EXPERT_VARIANT:
            self.action_expert_variant = "gemma_300m"
        try:
            real_post_init(self)
        finally:
            self.paligemma_variant, self.action_expert_variant = names

    cfg_cls.__post_init__ = post_init
    _PATCHED.add(family)


# -- building, recording, checking ---------------------------------------------------------------------
def fixture_config(config_cls: Any, tokens: int) -> Any:
    """A LeRobot pi-family config (PI0Config, PI05Config) at the fixtures' sizes: the three cameras,
    an 8-d state, 7-d actions, fp32 on the CPU, prompts of `tokens` ids."""
    from lerobot.configs import FeatureType, PolicyFeature

    inputs = {f"observation.images.{c}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, IMAGE, IMAGE))
              for c in CAMERAS}
    inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
    return config_cls(paligemma_variant=VLM_VARIANT, action_expert_variant=EXPERT_VARIANT, dtype="float32",
                      chunk_size=CHUNK, n_action_steps=CHUNK, max_state_dim=MAX_DIM, max_action_dim=MAX_DIM,
                      image_resolution=(IMAGE, IMAGE), tokenizer_max_length=tokens, input_features=inputs,
                      output_features=outputs, device="cpu", push_to_hub=False)


def randomise(model: nn.Module, gen: torch.Generator) -> None:
    """Seeded non-trivial weights: matrices N(0, 1/fan_in), LayerNorm weights 1 + 0.1 N, other 1-d 0.1 N."""
    layernorm_weights = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    params = dict(model.named_parameters(remove_duplicate=False))
    seen: set[int] = set()
    for name in sorted(params):
        p = params[name]
        if id(p) in seen:
            raise SystemExit(f"{name} shares its tensor with another parameter (tied weights?)")
        seen.add(id(p))
        with torch.no_grad():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if p.dim() >= 2:
                p.copy_(noise / math.sqrt(math.prod(p.shape[1:])))
            elif name in layernorm_weights:
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)


def check_sizes_against_fpoctl() -> None:
    """Fail when fpoctl's size tables no longer say what this script builds (skipped without fpoctl)."""
    try:
        from policies.pi0 import config as fc
    except ImportError:
        print("fpoctl's policies package is not importable: size cross-check skipped")
        return
    for name, sizes in GEMMA_SIZES.items():
        if fc.GEMMA_VARIANTS[name].__dict__ != sizes:
            raise SystemExit(f"fpoctl's {name} is {fc.GEMMA_VARIANTS[name]}, this script builds {sizes}")
    vision = fc.VISION_FOR_VLM[VLM_VARIANT].__dict__
    if vision != VISION or fc.VOCAB_FOR_VLM[VLM_VARIANT] != VOCAB:
        raise SystemExit(f"fpoctl's {VLM_VARIANT} vision / vocab {vision} / {fc.VOCAB_FOR_VLM[VLM_VARIANT]} "
                         f"differ from {VISION} / {VOCAB}")


class Capture:
    """Collects action_out_proj's outputs (the velocities) while active."""

    def __init__(self, module: nn.Module) -> None:
        self.outputs: list[Tensor] = []
        self.handle = module.register_forward_hook(
            lambda _m, _i, out: self.outputs.append(out.detach().clone()))

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def as_saved(d: dict[str, Tensor]) -> dict[str, Tensor]:
    """Detached contiguous CPU tensors, floats as float32 (what golden.safetensors holds)."""
    out = {}
    for k, v in d.items():
        v = v.detach().cpu().contiguous()
        out[k] = v.float() if v.is_floating_point() else v
    return out


def max_diff(a: Tensor, b: Tensor) -> float:
    """Max abs difference (float32)."""
    return float((a.float() - b.float()).abs().max())


def dataset_stats(gen: torch.Generator, quantiles: bool = False) -> dict[str, dict[str, Tensor]]:
    """LIBERO-like MEAN_STD stats (plus min/max and image stats that IDENTITY ignores); with
    `quantiles` also q01 / q99 (mean -/+ 2.326 std, a normal's; no further draws from `gen`)."""
    def stat(dim: int, mean_scale: float) -> dict[str, Tensor]:
        mean = torch.randn(dim, generator=gen) * mean_scale
        std = 0.2 + torch.rand(dim, generator=gen) * 1.3
        out = {"mean": mean, "std": std, "min": mean - 3 * std, "max": mean + 3 * std}
        if quantiles:
            out |= {"q01": mean - 2.326 * std, "q99": mean + 2.326 * std}
        return out

    stats = {"observation.state": stat(STATE_DIM, 0.8), "action": stat(ACTION_DIM, 0.5)}
    for cam in CAMERAS:
        stats[f"observation.images.{cam}"] = {"mean": torch.full((3, 1, 1), 0.45),
                                              "std": torch.full((3, 1, 1), 0.25)}
    return stats


def policy_outputs(policy: Any, pre: Any, post: Any, x: dict[str, Tensor], prompts: tuple[str, ...],
                   cameras: tuple[str, ...]) -> dict[str, Tensor]:
    """LeRobot's preprocessor -> predict_action_chunk (fixed noise) -> postprocessor; select_action agrees.
    x: policy_raw_state, policy_image_<camera> (of `cameras`), policy_noise."""
    batch: dict[str, Any] = {"observation.state": x["policy_raw_state"].clone(), "task": list(prompts)}
    for cam in cameras:
        batch[f"observation.images.{cam}"] = x[f"policy_image_{cam}"].clone()
    processed = pre(batch)
    policy.model.sample_noise = lambda shape, device: x["policy_noise"].clone().to(device)
    try:
        policy.reset()
        chunk = policy.predict_action_chunk(processed)
        policy.reset()
        steps = torch.stack([policy.select_action(processed) for _ in range(CHUNK)], dim=1)
    finally:
        del policy.model.sample_noise
    torch.testing.assert_close(steps, chunk, rtol=0, atol=0)
    return {"policy_lang_tokens": processed["observation.language.tokens"],
            "policy_lang_masks": processed["observation.language.attention_mask"],
            "policy_norm_state": processed["observation.state"], "policy_actions_norm": chunk,
            "policy_actions": post(chunk)}


def load_with_lerobot(policy_cls: Any, folder: Path) -> Any:
    """LeRobot's `policy_cls.from_pretrained`; exit when its log lacks 'All keys loaded successfully'."""
    log = io.StringIO()
    error: Exception | None = None
    with contextlib.redirect_stdout(log):
        try:
            policy = policy_cls.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # e.g. a config.json field LeRobot's config does not have
            error = exc
    text = log.getvalue()
    print("\n".join("  | " + line for line in text.splitlines()))
    if error is not None:
        raise SystemExit(f"FAIL: LeRobot cannot load {folder}: {type(error).__name__}: {error}")
    if LOADED_OK not in text:
        raise SystemExit(f"FAIL: LeRobot did not load every key of {folder} (no {LOADED_OK!r} in its log)")
    policy.eval()
    return policy

"""Golden pi0 fixture made with LeRobot 0.6.1's own pi0 code (issue 14, item 7).

Run BY HAND in a separate LeRobot virtualenv (never in CI, never imported by tests). It builds a
small random LeRobot `PI0Policy` whose sizes equal fpoctl's variants `tiny_8h` / `tiny_8h_expert`
(policies/pi0/config.py), saves it with LeRobot's own `save_pretrained` and processor pipelines into
`tests/fixtures/lerobot_pi0/`, and records fixed inputs and LeRobot's outputs in `golden.safetensors`.

Modes:
    python tools/make_lerobot_fixture.py --patch-venv        # once: lerobot 0.6.1 imports on 3.11
    python tools/make_lerobot_fixture.py [--out DIR]         # write the fixture (tests/fixtures/lerobot_pi0)
    python tools/make_lerobot_fixture.py --check-fpoctl DIR  # load a folder fpoctl wrote with LeRobot and
                                                             # compare its outputs with golden.safetensors
                                                             # (exit 1 when a diff exceeds TOLERANCE)

Setting up the LeRobot virtualenv (outside the repo; system python is 3.11.7; lerobot 0.6.1 declares
python >= 3.12 and torch < 2.12, it runs on 3.11 + torch 2.13 CPU with the patches below):

    python3.11 -m venv /work/lerobot-venv
    V=/work/lerobot-venv/bin
    $V/pip install torch==2.13.0                     # the local CPU wheel (2.13.0+cpu); never a CUDA build
    $V/pip download --no-deps --python-version 3.12 --only-binary=:all: -d /tmp/lrwheel lerobot==0.6.1
    $V/pip install --no-deps --ignore-requires-python /tmp/lrwheel/lerobot-0.6.1-py3-none-any.whl
    $V/pip install "numpy>=2.0,<2.3" "draccus>=0.11.6,<0.12" "huggingface-hub>=1.6,<2" safetensors \
        "packaging<26" termcolor tqdm "einops<0.9" Pillow "transformers==5.5.4" scipy requests gymnasium \
        opencv-python-headless sentencepiece protobuf
    $V/pip install --no-deps torchvision==0.28.0
    $V/pip install --no-deps -e /work/main          # fpoctl's `policies` (only the size cross-check uses it)
    $V/python tools/make_lerobot_fixture.py --patch-venv

`--patch-venv` edits that venv's site-packages in place (idempotent):
  * the five lerobot files with PEP 695 syntax (processor/pipeline.py, utils/io_utils.py,
    motors/motors_bus.py, datasets/streaming_dataset.py, datasets/aggregate.py): `class X[T]` ->
    `class X(Generic[T])` with a module-level TypeVar, `def f[T: B]` -> a plain TypeVar, `type X = Y`
    -> `X = Y`;
  * torchvision/_meta_registrations.py: its two `@torch.library.register_fake("torchvision::nms"/"qnms")`
    registrations fail beside the CPU torch (torchvision's C ops do not load), so they become
    `@(register_fake(...) if torchvision.extension._has_ops() else (lambda fn: fn))`.

What the script patches in LeRobot AT RUN TIME (nothing on disk), see `patch_lerobot`:
  * `modeling_pi0.get_gemma_config` also knows "tiny_8h" / "tiny_8h_expert" (the sizes below);
  * the HF configs `PaliGemmaWithExpertModel.__init__` builds (vocab 257152, SigLIP So400m with MLP 4304,
    projection 2048) are resized to vocab 512 / TINY_VISION / projection 64 just before the two
    transformers are instantiated (wrappers around `PaliGemmaForConditionalGenerationWithPiGemma` and
    `PiGemmaForCausalLM` in modeling_pi0's namespace);
  * `PI0Config.__post_init__` accepts the tiny variant names (LeRobot's own checks still run, on the
    gemma names), so LeRobot's save writes `"paligemma_variant": "tiny_8h"`,
    `"action_expert_variant": "tiny_8h_expert"` itself: config.json is NOT rewritten after the save;
  * `AutoTokenizer` in lerobot.processor.tokenizer_processor returns `StandInTokenizer` (the PaliGemma
    tokenizer is gated): byte-level ids, BOS 2, id = 3 + UTF-8 byte, pad id 0, right padding,
    truncation to max_length. The saved JSON still names "google/paligemma-3b-pt-224", as a real save does.

Model: LeRobot PI0Pytorch, fp32, VLM width 64 / depth 2 / mlp 128 / 8 heads / 1 kv head / head_dim 8,
expert width 32 / depth 2 / mlp 64 / 8 / 1 / 8, SigLIP width 32 / depth 2 / mlp 64 / 2 heads / patch 8,
vocab 512, image 32x32 (16 tokens per camera), chunk_size 10, n_action_steps 10, tokenizer_max_length 16,
max_state_dim = max_action_dim = 32. Every parameter is drawn from one torch.Generator (seed 0), in
sorted-name order: matrices normal / sqrt(fan_in) (embed_tokens and the paligemma lm_head are two
DIFFERENT tables), LayerNorm weights 1 + 0.1 normal, RMSNorm weights and all biases 0.1 normal.
Dataset features (LIBERO-like): observation.images.{base_0_rgb,left_wrist_0_rgb,right_wrist_0_rgb}
[3,32,32], observation.state [8], action [7]; MEAN_STD stats with non-trivial mean/std (plus min/max,
and image mean/std that IDENTITY must ignore).

golden.safetensors (B = 2; float tensors float32, ids int64, masks bool; metadata "fixture": JSON with
"prompts" (the two prompts), "seed" and the lerobot / transformers / torch versions):
  model level, the arguments of LeRobot's PI0Pytorch.forward / sample_actions:
    images              [3, B, 3, 32, 32] camera slots base_0_rgb, left_wrist_0_rgb, right_wrist_0_rgb,
                        in [-1, 1]; slot 1 of element 1 is masked (a real image, mask False); slot 2 is
                        empty for the whole batch (all -1, mask False)
    image_masks         [3, B] bool
    lang_tokens         [B, 16] int64 (stand-in tokenizer of prompt + "\n", as LeRobot's pre steps do:
                        equal to policy_lang_tokens; element 0 truncated, element 1 zero padded)
    lang_masks          [B, 16] bool
    state               [B, 32] normalised, zero padded past dim 8
    actions             [B, 10, 32] normalised, zero padded past dim 7
    noise               [B, 10, 32]
    time                [B]
  model level, LeRobot's outputs:
    x_t                 [B, 10, 32] time * noise + (1 - time) * actions
    loss                [B, 10, 32] PI0Pytorch.forward (per-element MSE, reduction none)
    v_t                 [B, 10, 32] the velocity in that forward (action_out_proj's output, by hook)
    prefix_embs         [B, 64, 64] PI0Pytorch.embed_prefix embeddings (3 x 16 image tokens, 16 prompt)
    prefix_pad_masks    [B, 64] bool
    sample_noise        [B, 10, 32] the x_1 given to sample_actions
    sampled_actions     [B, 10, 32] PI0Pytorch.sample_actions(..., noise=sample_noise, num_steps=10)
    sample_velocities   [10, B, 10, 32] the velocity of each Euler step (t = 1.0, 0.9, ..., 0.1)
  policy level (preprocessor -> PI0Policy.predict_action_chunk with fixed noise -> postprocessor):
    policy_raw_state        [B, 8] raw observation.state
    policy_image_base_0_rgb [B, 3, 32, 32] float in [0, 1] (32x32: no resize)
    policy_image_left_wrist_0_rgb [B, 3, 32, 32] float in [0, 1]; right_wrist_0_rgb is absent (LeRobot
                            fills it with -1 and mask False)
    policy_noise            [B, 10, 32] the noise sample_actions starts from
    policy_lang_tokens      [B, 16] int64, what the preprocessor's tokenizer step produced
    policy_lang_masks       [B, 16] bool
    policy_norm_state       [B, 8] observation.state after the preprocessor (normalised, unpadded)
    policy_actions_norm     [B, 10, 7] predict_action_chunk (normalised model space, first 7 dims)
    policy_actions          [B, 10, 7] after the postprocessor (env space); select_action x 10 gives the same
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import sysconfig
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "lerobot_pi0"
GOLDEN = "golden.safetensors"
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
TOKENS = 16
MAX_DIM = 32
STATE_DIM, ACTION_DIM = 8, 7
CAMERAS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")
PROMPTS = ("put the black bowl on the plate", "open it")  # 33 ids -> truncated to 16; 9 ids -> padded
POLICY_CAMERAS = CAMERAS[:2]  # right_wrist_0_rgb stays out of the policy-level batch: an empty camera
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


_PATCHED = False


def patch_lerobot() -> None:
    """Teach LeRobot 0.6.1 the tiny sizes (see the module docstring); call before building a policy."""
    global _PATCHED
    if _PATCHED:
        return
    from lerobot.policies.pi0 import configuration_pi0, modeling_pi0
    from lerobot.processor import tokenizer_processor

    real_get = modeling_pi0.get_gemma_config

    def get_gemma_config(variant: str) -> Any:
        if variant in GEMMA_SIZES:
            return modeling_pi0.GemmaConfig(**GEMMA_SIZES[variant])
        return real_get(variant)

    modeling_pi0.get_gemma_config = get_gemma_config

    real_vlm = modeling_pi0.PaliGemmaForConditionalGenerationWithPiGemma
    real_expert = modeling_pi0.PiGemmaForCausalLM

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

    modeling_pi0.PaliGemmaForConditionalGenerationWithPiGemma = SmallPaliGemma
    modeling_pi0.PiGemmaForCausalLM = SmallExpert

    cfg_cls = configuration_pi0.PI0Config
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
    tokenizer_processor.AutoTokenizer = _StandInAutoTokenizer
    _PATCHED = True


# -- building the fixture -------------------------------------------------------------------------------
def dataset_stats(gen: torch.Generator) -> dict[str, dict[str, Tensor]]:
    """LIBERO-like MEAN_STD stats (plus min/max and image stats that IDENTITY ignores)."""
    def stat(dim: int, mean_scale: float) -> dict[str, Tensor]:
        mean = torch.randn(dim, generator=gen) * mean_scale
        std = 0.2 + torch.rand(dim, generator=gen) * 1.3
        return {"mean": mean, "std": std, "min": mean - 3 * std, "max": mean + 3 * std}

    stats = {"observation.state": stat(STATE_DIM, 0.8), "action": stat(ACTION_DIM, 0.5)}
    for cam in CAMERAS:
        stats[f"observation.images.{cam}"] = {"mean": torch.full((3, 1, 1), 0.45),
                                              "std": torch.full((3, 1, 1), 0.25)}
    return stats


def make_config() -> Any:
    """The LeRobot PI0Config of the fixture."""
    from lerobot.configs import FeatureType, PolicyFeature
    from lerobot.policies.pi0.configuration_pi0 import PI0Config

    inputs = {f"observation.images.{c}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, IMAGE, IMAGE))
              for c in CAMERAS}
    inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
    return PI0Config(paligemma_variant=VLM_VARIANT, action_expert_variant=EXPERT_VARIANT, dtype="float32",
                     chunk_size=CHUNK, n_action_steps=CHUNK, max_state_dim=MAX_DIM, max_action_dim=MAX_DIM,
                     image_resolution=(IMAGE, IMAGE), tokenizer_max_length=TOKENS, input_features=inputs,
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


def build_policy() -> Any:
    """A random LeRobot PI0Policy at the fixture's sizes."""
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy

    patch_lerobot()
    torch.manual_seed(SEED)
    policy = PI0Policy(make_config())
    randomise(policy.model, torch.Generator().manual_seed(SEED))
    pg = policy.model.paligemma_with_expert.paligemma
    embed, head = pg.model.language_model.embed_tokens.weight, pg.lm_head.weight
    assert tuple(embed.shape) == (VOCAB, 64) and embed.data_ptr() != head.data_ptr()
    assert float(pg.model.language_model.embed_tokens.embed_scale) == 8.0
    policy.eval()
    return policy


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


def model_inputs(gen: torch.Generator) -> dict[str, Tensor]:
    """Fixed model-level inputs (see the module docstring)."""
    images = torch.rand((len(CAMERAS), B, 3, IMAGE, IMAGE), generator=gen) * 2 - 1
    masks = torch.ones((len(CAMERAS), B), dtype=torch.bool)
    masks[1, 1] = False  # left wrist of element 1: a real image, masked
    images[2], masks[2] = -1.0, False  # right wrist: empty for the whole batch
    tok = StandInTokenizer()([f"{p}\n" for p in PROMPTS], max_length=TOKENS)  # as pi0_new_line_processor
    state = torch.zeros((B, MAX_DIM))
    state[:, :STATE_DIM] = torch.randn((B, STATE_DIM), generator=gen)
    actions = torch.zeros((B, CHUNK, MAX_DIM))
    actions[..., :ACTION_DIM] = torch.randn((B, CHUNK, ACTION_DIM), generator=gen)
    return {"images": images, "image_masks": masks, "lang_tokens": tok["input_ids"],
            "lang_masks": tok["attention_mask"].bool(), "state": state, "actions": actions,
            "noise": torch.randn((B, CHUNK, MAX_DIM), generator=gen), "time": torch.tensor([0.3, 0.85]),
            "sample_noise": torch.randn((B, CHUNK, MAX_DIM), generator=gen)}


class _Capture:
    """Collects action_out_proj's outputs (the velocities) while active."""

    def __init__(self, module: nn.Module) -> None:
        self.outputs: list[Tensor] = []
        self.handle = module.register_forward_hook(
            lambda _m, _i, out: self.outputs.append(out.detach().clone()))

    def __enter__(self) -> _Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def model_outputs(model: Any, x: dict[str, Tensor]) -> dict[str, Tensor]:
    """LeRobot PI0Pytorch's outputs on the model-level inputs."""
    images, masks = list(x["images"]), list(x["image_masks"])
    args = (images, masks, x["lang_tokens"], x["lang_masks"], x["state"])
    with torch.no_grad():
        with _Capture(model.action_out_proj) as cap:
            loss = model.forward(*args, x["actions"], x["noise"], x["time"])
        assert len(cap.outputs) == 1
        v_t = cap.outputs[0]
        t = x["time"][:, None, None]
        x_t = t * x["noise"] + (1 - t) * x["actions"]
        torch.testing.assert_close(loss, (x["noise"] - x["actions"] - v_t) ** 2, rtol=0, atol=0)
        embs, pad, _ = model.embed_prefix(images, masks, x["lang_tokens"], x["lang_masks"])
        with _Capture(model.action_out_proj) as cap:
            sampled = model.sample_actions(*args, noise=x["sample_noise"].clone(), num_steps=10)
        assert len(cap.outputs) == 10
    return {"x_t": x_t, "loss": loss, "v_t": v_t, "prefix_embs": embs, "prefix_pad_masks": pad,
            "sampled_actions": sampled, "sample_velocities": torch.stack(cap.outputs)}


def policy_inputs(gen: torch.Generator, stats: dict[str, dict[str, Tensor]]) -> dict[str, Tensor]:
    """Raw env-space inputs for the preprocessor -> policy -> postprocessor path."""
    s = stats["observation.state"]
    out = {"policy_raw_state": s["mean"] + s["std"] * torch.randn((B, STATE_DIM), generator=gen)}
    for cam in POLICY_CAMERAS:
        out[f"policy_image_{cam}"] = torch.rand((B, 3, IMAGE, IMAGE), generator=gen)
    out["policy_noise"] = torch.randn((B, CHUNK, MAX_DIM), generator=gen)
    return out


def policy_outputs(policy: Any, pre: Any, post: Any, x: dict[str, Tensor]) -> dict[str, Tensor]:
    """LeRobot's preprocessor -> predict_action_chunk (fixed noise) -> postprocessor; select_action agrees."""
    batch: dict[str, Any] = {"observation.state": x["policy_raw_state"].clone(), "task": list(PROMPTS)}
    for cam in POLICY_CAMERAS:
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


def _tensors(d: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for k, v in d.items():
        v = v.detach().cpu().contiguous()
        out[k] = v.float() if v.is_floating_point() else v
    return out


def make_fixture(out: Path) -> None:
    """Write the LeRobot-saved folder and golden.safetensors into `out`."""
    from lerobot.policies.pi0.processor_pi0 import make_pi0_pre_post_processors
    from safetensors.torch import save_file

    check_sizes_against_fpoctl()
    policy = build_policy()
    gen = torch.Generator().manual_seed(SEED + 1)
    stats = dataset_stats(gen)
    pre, post = make_pi0_pre_post_processors(policy.config, dataset_stats=stats)
    out.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)

    mx = model_inputs(gen)
    golden = {**mx, **model_outputs(policy.model, mx)}
    px = policy_inputs(gen, stats)
    golden |= {**px, **policy_outputs(policy, pre, post, px)}
    import lerobot
    import transformers

    # one metadata key: safetensors writes several in a random order (the file would not be reproducible)
    meta = {"fixture": json.dumps({"prompts": PROMPTS, "seed": SEED, "lerobot": lerobot.__version__,
                                   "transformers": transformers.__version__, "torch": torch.__version__})}
    save_file(_tensors(golden), str(out / GOLDEN), metadata=meta)
    for name in sorted(golden):
        print(f"  {name:32s} {golden[name].dtype!s:14s} {list(golden[name].shape)}")

    text, ok = check_folder(out, out / GOLDEN, quiet=True)
    print(text)
    if not ok:
        raise SystemExit("the folder just written does not reproduce its own golden outputs")


# -- checking a folder with LeRobot ---------------------------------------------------------------------
def _max_diff(a: Tensor, b: Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def load_with_lerobot(folder: Path) -> Any:
    """LeRobot's PI0Policy.from_pretrained; exit when its log lacks 'All keys loaded successfully'."""
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy

    patch_lerobot()
    log = io.StringIO()
    error: Exception | None = None
    with contextlib.redirect_stdout(log):
        try:
            policy = PI0Policy.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # e.g. a config.json field LeRobot's PI0Config does not have
            error = exc
    text = log.getvalue()
    print("\n".join("  | " + line for line in text.splitlines()))
    if error is not None:
        raise SystemExit(f"FAIL: LeRobot cannot load {folder}: {type(error).__name__}: {error}")
    if LOADED_OK not in text:
        raise SystemExit(f"FAIL: LeRobot did not load every key of {folder} (no {LOADED_OK!r} in its log)")
    policy.eval()
    return policy


def check_folder(folder: Path, golden_path: Path | None = None, quiet: bool = False) -> tuple[str, bool]:
    """Max abs differences between LeRobot's outputs for `folder` and golden.safetensors, and whether
    every one is within TOLERANCE (and LeRobot could load the processors)."""
    from lerobot.policies.factory import make_pre_post_processors
    from safetensors import safe_open
    from safetensors.torch import load_file

    golden_path = golden_path or FIXTURE / GOLDEN
    # clone: tensors mapped straight from the file are laid out differently and take other SIMD paths
    golden = {k: v.clone() for k, v in load_file(str(golden_path)).items()}
    with safe_open(str(golden_path), "pt") as f:
        prompts = json.loads(f.metadata()["fixture"])["prompts"]
    if tuple(prompts) != PROMPTS:
        raise SystemExit(f"{golden_path} holds other prompts than this script: {prompts}")
    if quiet:
        with contextlib.redirect_stdout(io.StringIO()):
            policy = load_with_lerobot(folder)
    else:
        policy = load_with_lerobot(folder)
    lines = [f"LeRobot on {folder} vs {golden_path} (max abs diff, tolerance {TOLERANCE:g}):"]
    ok = True

    def report(got: dict[str, Tensor]) -> None:
        nonlocal ok
        for k, v in got.items():
            diff = _max_diff(v, golden[k])
            ok = ok and diff <= TOLERANCE
            flag = "" if diff <= TOLERANCE else "  <-- FAIL"
            lines.append(f"  {k:22s} {diff:.3g}  (scale {float(golden[k].float().abs().max()):.3g}){flag}")

    names = ("images", "image_masks", "lang_tokens", "lang_masks", "state", "actions", "noise", "time",
             "sample_noise")
    report(model_outputs(policy.model, {k: golden[k] for k in names}))
    try:
        pre, post = make_pre_post_processors(policy.config, pretrained_path=str(folder))
        px = {k: golden[k] for k in golden if k in ("policy_raw_state", "policy_noise")
              or k.startswith("policy_image_")}
        pout = policy_outputs(policy, pre, post, px)
        names_pre = [type(s).__name__ for s in pre.steps]
        names_post = [type(s).__name__ for s in post.steps]
        lines.append(f"  processors loaded: pre {names_pre}; post {names_post}")
        report(pout)
    except Exception as exc:  # report, do not hide, a processor folder LeRobot cannot use
        ok = False
        lines.append(f"  processors: LeRobot failed: {type(exc).__name__}: {exc}  <-- FAIL")
    lines.append("OK" if ok else "FAIL")
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--patch-venv", action="store_true", help="patch this venv's lerobot/torchvision files")
    mode.add_argument("--check-fpoctl", type=Path, metavar="DIR",
                      help="load DIR with LeRobot and compare its outputs with the golden ones")
    parser.add_argument("--out", type=Path, default=FIXTURE, help="fixture folder to write")
    parser.add_argument("--golden", type=Path, default=None, help="golden.safetensors for --check-fpoctl")
    args = parser.parse_args(argv)
    if args.patch_venv:
        patch_venv()
    elif args.check_fpoctl is not None:
        text, ok = check_folder(args.check_fpoctl, args.golden)
        print(text)
        return 0 if ok else 1
    else:
        make_fixture(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

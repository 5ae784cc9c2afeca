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

The LeRobot-side helpers (venv and run-time patches, stand-in tokenizers, weight randomisation, the
load check) live in tools/lerobot_oracle.py, shared with tools/make_lerobot_pi05_fixture.py.

`--patch-venv` edits that venv's site-packages in place (idempotent):
  * the five lerobot files with PEP 695 syntax (processor/pipeline.py, utils/io_utils.py,
    motors/motors_bus.py, datasets/streaming_dataset.py, datasets/aggregate.py): `class X[T]` ->
    `class X(Generic[T])` with a module-level TypeVar, `def f[T: B]` -> a plain TypeVar, `type X = Y`
    -> `X = Y`;
  * torchvision/_meta_registrations.py: its two `@torch.library.register_fake("torchvision::nms"/"qnms")`
    registrations fail beside the CPU torch (torchvision's C ops do not load), so they become
    `@(register_fake(...) if torchvision.extension._has_ops() else (lambda fn: fn))`.

What the script patches in LeRobot AT RUN TIME (nothing on disk), see `lerobot_oracle.patch_lerobot`:
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
import sys
from pathlib import Path
from typing import Any

import torch
from lerobot_oracle import (
    ACTION_DIM,
    CAMERAS,
    CHUNK,
    IMAGE,
    MAX_DIM,
    REPO,
    SEED,
    STATE_DIM,
    TOLERANCE,
    VOCAB,
    B,
    Capture,
    StandInTokenizer,
    as_saved,
    check_sizes_against_fpoctl,
    dataset_stats,
    fixture_config,
    load_with_lerobot,
    max_diff,
    patch_lerobot,
    patch_venv,
    policy_outputs,
    randomise,
)
from torch import Tensor

FIXTURE = REPO / "tests" / "fixtures" / "lerobot_pi0"
GOLDEN = "golden.safetensors"
TOKENS = 16
PROMPTS = ("put the black bowl on the plate", "open it")  # 33 ids -> truncated to 16; 9 ids -> padded
POLICY_CAMERAS = CAMERAS[:2]  # right_wrist_0_rgb stays out of the policy-level batch: an empty camera


# -- building the fixture -------------------------------------------------------------------------------
def make_config() -> Any:
    """The LeRobot PI0Config of the fixture."""
    from lerobot.policies.pi0.configuration_pi0 import PI0Config

    return fixture_config(PI0Config, TOKENS)


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


def model_outputs(model: Any, x: dict[str, Tensor]) -> dict[str, Tensor]:
    """LeRobot PI0Pytorch's outputs on the model-level inputs."""
    images, masks = list(x["images"]), list(x["image_masks"])
    args = (images, masks, x["lang_tokens"], x["lang_masks"], x["state"])
    with torch.no_grad():
        with Capture(model.action_out_proj) as cap:
            loss = model.forward(*args, x["actions"], x["noise"], x["time"])
        assert len(cap.outputs) == 1
        v_t = cap.outputs[0]
        t = x["time"][:, None, None]
        x_t = t * x["noise"] + (1 - t) * x["actions"]
        torch.testing.assert_close(loss, (x["noise"] - x["actions"] - v_t) ** 2, rtol=0, atol=0)
        embs, pad, _ = model.embed_prefix(images, masks, x["lang_tokens"], x["lang_masks"])
        with Capture(model.action_out_proj) as cap:
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
    golden |= {**px, **policy_outputs(policy, pre, post, px, PROMPTS, POLICY_CAMERAS)}
    import lerobot
    import transformers

    # one metadata key: safetensors writes several in a random order (the file would not be reproducible)
    meta = {"fixture": json.dumps({"prompts": PROMPTS, "seed": SEED, "lerobot": lerobot.__version__,
                                   "transformers": transformers.__version__, "torch": torch.__version__})}
    save_file(as_saved(golden), str(out / GOLDEN), metadata=meta)
    for name in sorted(golden):
        print(f"  {name:32s} {golden[name].dtype!s:14s} {list(golden[name].shape)}")

    text, ok = check_folder(out, out / GOLDEN, quiet=True)
    print(text)
    if not ok:
        raise SystemExit("the folder just written does not reproduce its own golden outputs")


# -- checking a folder with LeRobot ---------------------------------------------------------------------
def load_pi0(folder: Path) -> Any:
    """LeRobot's PI0Policy.from_pretrained, every key loaded (else exit)."""
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy

    patch_lerobot("pi0")
    return load_with_lerobot(PI0Policy, folder)


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
            policy = load_pi0(folder)
    else:
        policy = load_pi0(folder)
    lines = [f"LeRobot on {folder} vs {golden_path} (max abs diff, tolerance {TOLERANCE:g}):"]
    ok = True

    def report(got: dict[str, Tensor]) -> None:
        nonlocal ok
        for k, v in got.items():
            diff = max_diff(v, golden[k])
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
        pout = policy_outputs(policy, pre, post, px, PROMPTS, POLICY_CAMERAS)
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

"""Golden pi0.5 fixture made with LeRobot 0.6.1's own pi05 code (issue 15, step 2).

Run BY HAND in the LeRobot virtualenv (set up as tools/make_lerobot_fixture.py's docstring says; never
in CI, never imported by tests). It builds a small random LeRobot `PI05Policy` at fpoctl's `tiny_8h` /
`tiny_8h_expert` sizes (the run-time patches of tools/lerobot_oracle.py), saves it with LeRobot's own
`save_pretrained` and processor pipelines into `tests/fixtures/lerobot_pi05/`, and records fixed
inputs and LeRobot's outputs in `golden.safetensors`.

    python tools/make_lerobot_pi05_fixture.py [--out DIR]         # write the fixture
    python tools/make_lerobot_pi05_fixture.py --check-fpoctl DIR  # load a folder fpoctl wrote with
                                                                  # LeRobot's PI05Policy, compare with
                                                                  # golden.safetensors (exit 1 past TOLERANCE)

Tokenizer: the real processor pipeline runs (quantile normalizer -> LeRobot's state-into-prompt step ->
tokenizer step); its `AutoTokenizer` gets a toy SentencePiece model (tests/pi05_helpers.py
`train_pi05_tokenizer`: PaliGemma's special ids, digits split as Gemma splits them), saved into the
fixture as `paligemma_tokenizer.model` (fpoctl reads it from there; LeRobot ignores the file).

Model: LeRobot PI05Pytorch, fp32, sizes as the pi0 fixture (VLM width 64 / depth 2, expert width 32 /
depth 2, 8 heads, 1 kv head, head_dim 8, SigLIP 32 wide, vocab 512, 32x32 images), chunk_size =
n_action_steps = 10, tokenizer_max_length 56, max_state_dim = max_action_dim = 32. Every parameter is
drawn from one generator (seed 0, sorted names; `lerobot_oracle.randomise`): the adaRMS `dense`
layers are matrices like any other (LeRobot zero-initialises their weights, which would leave the
time modulation untested), embed_tokens and lm_head are two different tables. Stats: QUANTILES
(q01 / q99, plus mean / std / min / max) for state [8] and action [7].

golden.safetensors (B = 2; metadata "fixture": JSON with the tasks, the state prompts LeRobot's step
wrote, the seed and library versions):
  model level (PI05Pytorch.forward / sample_actions / embed_suffix):
    images [3, B, 3, 32, 32], image_masks [3, B]   slot 1 of element 1 masked; slot 2 empty for the batch
    lang_tokens, lang_masks [B, 56]                 = policy_lang_tokens / _masks (the pipeline's ids)
    actions, noise [B, 10, 32], time [B]            actions zero past dim 7
    x_t, loss, v_t [B, 10, 32]                      loss = per-element MSE, v_t by a hook on action_out_proj
    adarms_cond [B, 32]                             embed_suffix's condition at `time`
    prefix_embs [B, 104, 64], prefix_pad_masks [B, 104]  3 x 16 image tokens, then 56 prompt slots
    sample_noise, sampled_actions [B, 10, 32], sample_velocities [10, B, 10, 32]
  policy level (preprocessor -> predict_action_chunk with fixed noise -> postprocessor):
    policy_raw_state [B, 8]                         some states normalise outside [-1, 1] (bins -1 / 255)
    policy_image_{base_0_rgb,left_wrist_0_rgb} [B, 3, 32, 32] in [0, 1]; right_wrist_0_rgb absent
    policy_noise [B, 10, 32], policy_norm_state [B, 8], policy_lang_tokens / _masks [B, 56]
    policy_actions_norm, policy_actions [B, 10, 7]
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
    SentencePieceStandIn,
    as_saved,
    check_sizes_against_fpoctl,
    dataset_stats,
    fixture_config,
    load_with_lerobot,
    max_diff,
    patch_lerobot,
    policy_outputs,
    randomise,
)
from torch import Tensor

FIXTURE = REPO / "tests" / "fixtures" / "lerobot_pi05"
GOLDEN = "golden.safetensors"
TOKENIZER = "paligemma_tokenizer.model"
TOKENS = 56
PROMPTS = ("put the black bowl on the plate", "open it")  # 61 prompt ids: cut at 56; 52: padded
POLICY_CAMERAS = CAMERAS[:2]


def patch(folder: Path) -> None:
    """The tiny sizes and the toy SentencePiece tokenizer of `folder` for LeRobot's pi05."""
    patch_lerobot("pi05", lambda: SentencePieceStandIn(folder / TOKENIZER))


def make_config() -> Any:
    """The LeRobot PI05Config of the fixture."""
    from lerobot.policies.pi05.configuration_pi05 import PI05Config

    return fixture_config(PI05Config, TOKENS)


def build_policy() -> Any:
    """A random LeRobot PI05Policy at the fixture's sizes (adaRMS dense weights random too)."""
    from lerobot.policies.pi05.modeling_pi05 import PI05Policy

    torch.manual_seed(SEED)
    policy = PI05Policy(make_config())
    dense = policy.model.paligemma_with_expert.gemma_expert.model.norm.dense.weight
    assert dense.abs().sum() == 0  # LeRobot's zero init, which randomise replaces
    randomise(policy.model, torch.Generator().manual_seed(SEED))
    assert dense.abs().sum() > 0
    pg = policy.model.paligemma_with_expert.paligemma
    embed, head = pg.model.language_model.embed_tokens.weight, pg.lm_head.weight
    assert tuple(embed.shape) == (VOCAB, 64) and embed.data_ptr() != head.data_ptr()
    policy.eval()
    return policy


def policy_inputs(gen: torch.Generator, stats: dict[str, dict[str, Tensor]]) -> dict[str, Tensor]:
    """Raw env-space inputs; states spread 1.5 std, so some normalise outside [-1, 1]."""
    s = stats["observation.state"]
    out = {"policy_raw_state": s["mean"] + 1.5 * s["std"] * torch.randn((B, STATE_DIM), generator=gen)}
    for cam in POLICY_CAMERAS:
        out[f"policy_image_{cam}"] = torch.rand((B, 3, IMAGE, IMAGE), generator=gen)
    out["policy_noise"] = torch.randn((B, CHUNK, MAX_DIM), generator=gen)
    return out


def state_prompts(pre: Any, x: dict[str, Tensor]) -> list[str]:
    """The prompts LeRobot's pipeline made of the tasks and states (its tokenizer step keeps them)."""
    batch: dict[str, Any] = {"observation.state": x["policy_raw_state"].clone(), "task": list(PROMPTS)}
    for cam in POLICY_CAMERAS:
        batch[f"observation.images.{cam}"] = x[f"policy_image_{cam}"].clone()
    return list(pre(batch)["task"])


def model_inputs(gen: torch.Generator, tokens: Tensor, masks: Tensor) -> dict[str, Tensor]:
    """Fixed model-level inputs; the prompt ids are those the pipeline made (pi0.5 has no state input)."""
    images = torch.rand((len(CAMERAS), B, 3, IMAGE, IMAGE), generator=gen) * 2 - 1
    img_masks = torch.ones((len(CAMERAS), B), dtype=torch.bool)
    img_masks[1, 1] = False  # left wrist of element 1: a real image, masked
    images[2], img_masks[2] = -1.0, False  # right wrist: empty for the whole batch
    actions = torch.zeros((B, CHUNK, MAX_DIM))
    actions[..., :ACTION_DIM] = torch.randn((B, CHUNK, ACTION_DIM), generator=gen)
    return {"images": images, "image_masks": img_masks, "lang_tokens": tokens.clone(),
            "lang_masks": masks.clone().bool(), "actions": actions,
            "noise": torch.randn((B, CHUNK, MAX_DIM), generator=gen), "time": torch.tensor([0.3, 0.85]),
            "sample_noise": torch.randn((B, CHUNK, MAX_DIM), generator=gen)}


def model_outputs(model: Any, x: dict[str, Tensor]) -> dict[str, Tensor]:
    """LeRobot PI05Pytorch's outputs on the model-level inputs."""
    images, masks = list(x["images"]), list(x["image_masks"])
    args = (images, masks, x["lang_tokens"], x["lang_masks"])
    with torch.no_grad():
        with Capture(model.action_out_proj) as cap:
            loss = model.forward(*args, x["actions"], x["noise"], x["time"])
        assert len(cap.outputs) == 1
        v_t = cap.outputs[0]
        t = x["time"][:, None, None]
        x_t = t * x["noise"] + (1 - t) * x["actions"]
        torch.testing.assert_close(loss, (x["noise"] - x["actions"] - v_t) ** 2, rtol=0, atol=0)
        *_, cond = model.embed_suffix(x_t, x["time"])
        embs, pad, _ = model.embed_prefix(*args)
        with Capture(model.action_out_proj) as cap:
            sampled = model.sample_actions(*args, noise=x["sample_noise"].clone(), num_steps=10)
        assert len(cap.outputs) == 10
    return {"x_t": x_t, "loss": loss, "v_t": v_t, "adarms_cond": cond, "prefix_embs": embs,
            "prefix_pad_masks": pad, "sampled_actions": sampled,
            "sample_velocities": torch.stack(cap.outputs)}


def make_fixture(out: Path) -> None:
    """Write the LeRobot-saved folder, its toy tokenizer and golden.safetensors into `out`."""
    from lerobot.policies.pi05.processor_pi05 import make_pi05_pre_post_processors
    from pi05_helpers import train_pi05_tokenizer
    from safetensors.torch import save_file

    check_sizes_against_fpoctl()
    out.mkdir(parents=True, exist_ok=True)
    train_pi05_tokenizer(out, TOKENIZER)
    patch(out)
    policy = build_policy()
    gen = torch.Generator().manual_seed(SEED + 1)
    stats = dataset_stats(gen, quantiles=True)
    pre, post = make_pi05_pre_post_processors(policy.config, dataset_stats=stats)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)

    px = policy_inputs(gen, stats)
    golden = {**px, **policy_outputs(policy, pre, post, px, PROMPTS, POLICY_CAMERAS)}
    prompts = state_prompts(pre, px)
    mx = model_inputs(gen, golden["policy_lang_tokens"], golden["policy_lang_masks"])
    golden |= {**mx, **model_outputs(policy.model, mx)}
    import lerobot
    import transformers

    meta = {"fixture": json.dumps({"prompts": PROMPTS, "state_prompts": prompts, "seed": SEED,
                                   "lerobot": lerobot.__version__, "transformers": transformers.__version__,
                                   "torch": torch.__version__})}
    save_file(as_saved(golden), str(out / GOLDEN), metadata=meta)
    for name in sorted(golden):
        print(f"  {name:32s} {golden[name].dtype!s:14s} {list(golden[name].shape)}")
    print("state prompts:", json.dumps(prompts))
    print("prompt ids used:", golden["policy_lang_masks"].sum(dim=1).tolist(), f"of {TOKENS}")

    text, ok = check_folder(out, out / GOLDEN, quiet=True)
    print(text)
    if not ok:
        raise SystemExit("the folder just written does not reproduce its own golden outputs")


# -- checking a folder with LeRobot ---------------------------------------------------------------------
def check_folder(folder: Path, golden_path: Path | None = None, quiet: bool = False) -> tuple[str, bool]:
    """Max abs differences between LeRobot's outputs for `folder` (loaded by its PI05Policy, every key)
    and golden.safetensors, and whether all are within TOLERANCE. The tokenizer is the fixture's."""
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.pi05.modeling_pi05 import PI05Policy
    from safetensors import safe_open
    from safetensors.torch import load_file

    golden_path = golden_path or FIXTURE / GOLDEN
    patch(golden_path.parent)
    golden = {k: v.clone() for k, v in load_file(str(golden_path)).items()}
    with safe_open(str(golden_path), "pt") as f:
        meta = json.loads(f.metadata()["fixture"])
    if tuple(meta["prompts"]) != PROMPTS:
        raise SystemExit(f"{golden_path} holds other prompts than this script: {meta['prompts']}")
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        policy = load_with_lerobot(PI05Policy, folder)
    lines = [f"LeRobot PI05Policy on {folder} vs {golden_path} (max abs diff, tolerance {TOLERANCE:g}):"]
    ok = True

    def report(got: dict[str, Tensor]) -> None:
        nonlocal ok
        for k, v in got.items():
            diff = max_diff(v, golden[k])
            ok = ok and diff <= TOLERANCE
            flag = "" if diff <= TOLERANCE else "  <-- FAIL"
            lines.append(f"  {k:22s} {diff:.3g}  (scale {float(golden[k].float().abs().max()):.3g}){flag}")

    names = ("images", "image_masks", "lang_tokens", "lang_masks", "actions", "noise", "time", "sample_noise")
    report(model_outputs(policy.model, {k: golden[k] for k in names}))
    try:
        pre, post = make_pre_post_processors(policy.config, pretrained_path=str(folder))
        px = {k: golden[k] for k in golden if k in ("policy_raw_state", "policy_noise")
              or k.startswith("policy_image_")}
        report(policy_outputs(policy, pre, post, px, PROMPTS, POLICY_CAMERAS))
        same = state_prompts(pre, px) == meta["state_prompts"]
        ok = ok and same
        lines.append(f"  state prompts          {'equal' if same else 'DIFFER  <-- FAIL'}")
        lines.append(f"  processors loaded: pre {[type(s).__name__ for s in pre.steps]}; "
                     f"post {[type(s).__name__ for s in post.steps]}")
    except Exception as exc:  # report, do not hide, a processor folder LeRobot cannot use
        ok = False
        lines.append(f"  processors: LeRobot failed: {type(exc).__name__}: {exc}  <-- FAIL")
    lines.append("OK" if ok else "FAIL")
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO / "tests"))  # pi05_helpers (the venv has an unrelated `tests` package)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-fpoctl", type=Path, metavar="DIR",
                        help="load DIR with LeRobot's PI05Policy, compare its outputs with the golden ones")
    parser.add_argument("--out", type=Path, default=FIXTURE, help="fixture folder to write")
    parser.add_argument("--golden", type=Path, default=None, help="golden.safetensors for --check-fpoctl")
    args = parser.parse_args(argv)
    if args.check_fpoctl is not None:
        text, ok = check_folder(args.check_fpoctl, args.golden)
        print(text)
        return 0 if ok else 1
    make_fixture(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

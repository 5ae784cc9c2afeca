"""Golden parity with LeRobot 0.6.1's own pi0.5: a small random model LeRobot built, saved and ran
through its real processor pipeline (tests/fixtures/lerobot_pi05, made by
tools/make_lerobot_pi05_fixture.py) loads in fpoctl and gives the same prefix, adaRMS condition,
velocities, per-element losses, 10-step actions, state prompts and ids (fp32, 1e-5); what fpoctl
saves has LeRobot's keys, config and processor layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

from policies.pi0 import gemma
from policies.pi0.io import EMBED, LM_HEAD
from policies.pi05 import Pi05Policy
from policies.registry import make_policy

FIXTURE = Path(__file__).parent / "fixtures" / "lerobot_pi05"
ATOL = 1e-5
KEPT = torch.cat([torch.arange(0, 32), torch.arange(48, 104)])
"""Prefix columns fpoctl keeps: camera slot 2 is empty for the whole batch, and fpoctl leaves such a
slot out (its tokens are invalid either way, and positions count valid tokens only)."""


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    # cloned: tensors mapped straight from the file take other SIMD paths (differences of ~5e-6)
    return {k: v.clone() for k, v in load_file(str(FIXTURE / "golden.safetensors")).items()}


@pytest.fixture(scope="module")
def meta() -> dict:
    with safe_open(str(FIXTURE / "golden.safetensors"), "pt") as f:
        return json.loads(f.metadata()["fixture"])


@pytest.fixture
def policy() -> Pi05Policy:
    policy = make_policy(FIXTURE)  # the toy tokenizer ships in the folder as paligemma_tokenizer.model
    assert isinstance(policy, Pi05Policy) and policy.load_warnings == [] and policy.tokenizer is not None
    return policy


def model_batch(g: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LeRobot's per-camera lists [C, B, ...] as fpoctl's batch [B, C, ...] (pi0.5 reads no state)."""
    return {"images": g["images"].transpose(0, 1).contiguous(),
            "image_masks": g["image_masks"].T.contiguous(), "tokens": g["lang_tokens"],
            "token_masks": g["lang_masks"]}


def sample_with_velocities(policy: Pi05Policy, batch: dict, noise: torch.Tensor) -> tuple[torch.Tensor, list]:
    """10-step actions and the velocity of each step (action_out_proj's outputs)."""
    seen: list[torch.Tensor] = []
    hook = policy.action_out_proj.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    try:
        actions = policy.sample(batch, noise=noise.clone(), steps=10)
    finally:
        hook.remove()
    return actions, seen


def test_model_outputs_equal_lerobots(policy: Pi05Policy, golden: dict[str, torch.Tensor]) -> None:
    g, batch = golden, model_batch(golden)
    with torch.no_grad():
        prefix = policy.embed_prefix(batch)
        torch.testing.assert_close(prefix[0], g["prefix_embs"][:, KEPT], atol=ATOL, rtol=0)
        assert torch.equal(prefix[1], g["prefix_pad_masks"][:, KEPT])
        *_, cond = policy.embed_suffix(g["x_t"], g["time"])
        torch.testing.assert_close(cond, g["adarms_cond"], atol=ATOL, rtol=0)
        v_full = policy.velocity_full(prefix, g["x_t"], g["time"])
        v_cached = policy.velocity_cached(policy.prefix_cache(prefix), prefix[1], g["x_t"], g["time"])
        loss = policy.cfm_loss(batch, g["actions"], g["time"][:, None], g["noise"][:, None])
    for v in (v_full, v_cached):
        torch.testing.assert_close(v, g["v_t"], atol=ATOL, rtol=0)
    torch.testing.assert_close((g["noise"] - g["actions"] - v_cached) ** 2, g["loss"], atol=ATOL, rtol=0)
    torch.testing.assert_close(loss[:, 0], g["loss"].mean(dim=(1, 2)), atol=ATOL, rtol=0)
    sampled, velocities = sample_with_velocities(policy, batch, g["sample_noise"])
    torch.testing.assert_close(torch.stack(velocities), g["sample_velocities"], atol=ATOL, rtol=0)
    torch.testing.assert_close(sampled, g["sampled_actions"], atol=ATOL, rtol=0)


def test_state_prompts_and_their_ids_equal_lerobots(policy: Pi05Policy, golden: dict[str, torch.Tensor],
                                                    meta: dict) -> None:
    """Raw state -> quantile normalisation -> 256 bins in the prompt -> ids, against LeRobot's
    normalizer, pi05_prepare_state_tokenizer_processor_step and tokenizer step (element 0 is cut
    at 56 ids, element 1 is padded; some states lie outside [-1, 1]: bins -1 and 255)."""
    g = golden
    norm = policy.processors.state.normalize(g["policy_raw_state"])
    torch.testing.assert_close(norm, g["policy_norm_state"], atol=ATOL, rtol=0)
    prompts = policy.prompts(list(meta["prompts"]), norm)
    assert prompts == meta["state_prompts"]
    assert "255" in prompts[1] and prompts[1].endswith(" -1;\nAction: ")
    tokens, masks = policy.prompt_tokens(list(meta["prompts"]), norm)
    assert torch.equal(tokens, g["policy_lang_tokens"]) and torch.equal(masks, g["policy_lang_masks"])
    assert masks.sum(dim=1).tolist() == [56, 52]


def test_policy_actions_equal_lerobots_through_its_processors(policy: Pi05Policy,
                                                               golden: dict[str, torch.Tensor],
                                                               meta: dict) -> None:
    """fpoctl's own prompt path and normalisers, then sampling with LeRobot's noise, against LeRobot's
    preprocessor -> predict_action_chunk -> postprocessor (images given in [0, 1], already 32 px)."""
    g = golden
    b = g["policy_raw_state"].shape[0]
    state = policy.processors.state.normalize(g["policy_raw_state"])
    tokens, masks = policy.prompt_tokens(list(meta["prompts"]), state)
    images = torch.full((b, 3, 3, 32, 32), -1.0)
    images[:, 0] = g["policy_image_base_0_rgb"] * 2 - 1
    images[:, 1] = g["policy_image_left_wrist_0_rgb"] * 2 - 1
    batch = {"images": images, "image_masks": torch.tensor([[True, True, False]] * b), "tokens": tokens,
             "token_masks": masks, "state": F.pad(state, (0, 32 - state.shape[1]))}
    chunk = policy.sample(batch, noise=g["policy_noise"].clone(), steps=policy.config.num_inference_steps)
    torch.testing.assert_close(chunk[..., :7], g["policy_actions_norm"], atol=ATOL, rtol=0)
    torch.testing.assert_close(torch.as_tensor(policy.to_env_actions(chunk, 7)), g["policy_actions"],
                               atol=ATOL, rtol=0)


def test_the_fixture_catches_an_ungated_residual(policy: Pi05Policy, golden: dict[str, torch.Tensor],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """With the adaRMS gate left out of the residuals (h + out instead of h + out * gate), the
    velocities and sampled actions are far from LeRobot's: the fixture pins the gate."""
    real = gemma._gated
    monkeypatch.setattr(gemma, "_gated", lambda h, out, gate: real(h, out, None))
    g, batch = golden, model_batch(golden)
    with torch.no_grad():
        v = policy.velocity_full(policy.embed_prefix(batch), g["x_t"], g["time"])
    sampled, _ = sample_with_velocities(policy, batch, g["sample_noise"])
    assert (v - g["v_t"]).abs().max() > 0.1 and (sampled - g["sampled_actions"]).abs().max() > 0.1


def test_fpoctl_saves_lerobots_keys_config_and_processor_layout(policy: Pi05Policy, tmp_path: Path) -> None:
    policy.save_pretrained(tmp_path)
    ours = load_file(str(tmp_path / "model.safetensors"))
    theirs = load_file(str(FIXTURE / "model.safetensors"))
    assert set(ours) == set(theirs) and len(ours) == 93  # every key under `model.`, both tables, 74 + 4 new
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert not torch.equal(ours[f"model.{EMBED}"], ours[f"model.{LM_HEAD}"])
    our_cfg = json.loads((tmp_path / "config.json").read_text())
    their_cfg = json.loads((FIXTURE / "config.json").read_text())
    assert {k: our_cfg.get(k) for k in their_cfg} == their_cfg
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        assert json.loads((tmp_path / name).read_text()) == json.loads((FIXTURE / name).read_text()), name
        for step in json.loads((FIXTURE / name).read_text())["steps"]:
            if "state_file" in step:
                mine, ref = load_file(str(tmp_path / step["state_file"])), load_file(
                    str(FIXTURE / step["state_file"]))
                assert {k for k in ref if k.startswith(("observation.state.", "action."))
                        and k.endswith((".q01", ".q99"))} == set(mine)
                assert all(torch.equal(mine[k], ref[k]) for k in mine)

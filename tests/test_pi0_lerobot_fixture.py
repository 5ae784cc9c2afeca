"""Golden parity with LeRobot 0.6.1's own pi0: a small random model LeRobot built, saved and ran
(tests/fixtures/lerobot_pi0, made by tools/make_lerobot_fixture.py) loads in fpoctl and gives the
same embeddings, velocities, per-element losses, sampled and unnormalised actions (fp32, 1e-5);
what fpoctl saves has LeRobot's keys, config and processor layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from policies.pi0 import Pi0Policy
from policies.pi0.io import EMBED, LM_HEAD
from policies.registry import make_policy
from tests.conftest import run_cli
from tests.test_cli_foundation import assert_one_line_error

FIXTURE = Path(__file__).parent / "fixtures" / "lerobot_pi0"
ATOL = 1e-5
KEPT = torch.cat([torch.arange(0, 32), torch.arange(48, 64)])
"""Prefix columns fpoctl keeps: slot 2 is empty for the whole batch, and fpoctl leaves such a slot out
(its tokens are invalid either way, and positions count valid tokens only)."""


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    # cloned: tensors mapped straight from the file take other SIMD paths (differences of ~5e-6)
    return {k: v.clone() for k, v in load_file(str(FIXTURE / "golden.safetensors")).items()}


@pytest.fixture
def policy() -> Pi0Policy:
    policy = make_policy(FIXTURE)
    assert isinstance(policy, Pi0Policy) and policy.load_warnings == []
    return policy


def model_batch(g: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LeRobot's per-camera lists [C, B, ...] as fpoctl's batch [B, C, ...]."""
    return {"images": g["images"].transpose(0, 1).contiguous(),
            "image_masks": g["image_masks"].T.contiguous(), "tokens": g["lang_tokens"],
            "token_masks": g["lang_masks"], "state": g["state"]}


def test_model_outputs_equal_lerobots(policy: Pi0Policy, golden: dict[str, torch.Tensor]) -> None:
    g, batch = golden, model_batch(golden)
    with torch.no_grad():
        prefix = policy.embed_prefix(batch)
        torch.testing.assert_close(prefix[0], g["prefix_embs"][:, KEPT], atol=ATOL, rtol=0)
        assert torch.equal(prefix[1], g["prefix_pad_masks"][:, KEPT])
        v_full = policy.velocity_full(prefix, g["state"], g["x_t"], g["time"])
        v_cached = policy.velocity_cached(policy.prefix_cache(prefix), prefix[1], g["state"], g["x_t"],
                                          g["time"])
        sampled = policy.sample_actions(batch, g["sample_noise"].clone(), steps=10)
        loss = policy.cfm_loss(batch, g["actions"], g["time"][:, None], g["noise"][:, None])
    for v in (v_full, v_cached):
        torch.testing.assert_close(v, g["v_t"], atol=ATOL, rtol=0)
    torch.testing.assert_close((g["noise"] - g["actions"] - v_cached) ** 2, g["loss"], atol=ATOL, rtol=0)
    torch.testing.assert_close(loss[:, 0], g["loss"].mean(dim=(1, 2)), atol=ATOL, rtol=0)
    torch.testing.assert_close(sampled, g["sampled_actions"], atol=ATOL, rtol=0)


def test_policy_actions_equal_lerobots_through_its_processors(policy: Pi0Policy,
                                                               golden: dict[str, torch.Tensor]) -> None:
    """Raw state -> normalise -> sample with LeRobot's noise -> unnormalise, against LeRobot's
    preprocessor -> predict_action_chunk -> postprocessor (images given in [0, 1], already 32 px)."""
    g = golden
    b = g["policy_raw_state"].shape[0]
    state = policy.processors.state.normalize(g["policy_raw_state"])
    torch.testing.assert_close(state, g["policy_norm_state"], atol=ATOL, rtol=0)
    images = torch.full((b, 3, 3, 32, 32), -1.0)
    images[:, 0] = g["policy_image_base_0_rgb"] * 2 - 1
    images[:, 1] = g["policy_image_left_wrist_0_rgb"] * 2 - 1
    batch = {"images": images, "image_masks": torch.tensor([[True, True, False]] * b),
             "tokens": g["policy_lang_tokens"], "token_masks": g["policy_lang_masks"],
             "state": F.pad(state, (0, 32 - state.shape[1]))}
    chunk = policy.sample(batch, noise=g["policy_noise"].clone(), steps=policy.config.num_inference_steps)
    torch.testing.assert_close(chunk[..., :7], g["policy_actions_norm"], atol=ATOL, rtol=0)
    torch.testing.assert_close(torch.as_tensor(policy.to_env_actions(chunk, 7)), g["policy_actions"],
                               atol=ATOL, rtol=0)


def test_the_fixture_catches_prompts_embedded_with_lm_head(policy: Pi0Policy,
                                                           golden: dict[str, torch.Tensor]) -> None:
    """The bug this fixture was made for: with lm_head's table the sampled actions are far off."""
    with torch.no_grad():
        policy.language_model.embed_tokens.weight.copy_(policy.state_dict()[LM_HEAD])
        sampled = policy.sample_actions(model_batch(golden), golden["sample_noise"].clone(), steps=10)
    assert (sampled - golden["sampled_actions"]).abs().max() > 0.1


def test_fpoctl_saves_lerobots_keys_config_and_processor_layout(policy: Pi0Policy, tmp_path: Path) -> None:
    policy.save_pretrained(tmp_path)
    ours = load_file(str(tmp_path / "model.safetensors"))
    theirs = load_file(str(FIXTURE / "model.safetensors"))
    assert set(ours) == set(theirs)  # every key under `model.`, both token tables, the expert lm_head
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
                        and k.endswith((".mean", ".std"))} == set(mine)
                assert all(torch.equal(mine[k], ref[k]) for k in mine)


def test_eval_refuses_a_relative_actions_checkpoint_in_one_line(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "relative"
    shutil.copytree(FIXTURE, folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "use_relative_actions": True}))
    proc = run_cli("eval", str(folder), "--task", "fast-goal", "--episodes", "2")
    assert_one_line_error(proc, "use_relative_actions is true")
    assert proc.returncode == 1 and proc.stdout.strip() == ""

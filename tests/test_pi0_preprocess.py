"""pi0 preprocessing: resize-with-pad, camera slots, prompt tokens, normalisation, env action mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pi0_helpers import env_obs, tiny_policy

from policies.errors import PolicyError
from policies.pi0 import Pi0Policy
from policies.pi0.preprocess import MeanStd, PromptTokenizer, resize_with_pad


@pytest.fixture
def policy(tokenizer: Path) -> Pi0Policy:
    return tiny_policy(tokenizer)


def test_resize_with_pad_keeps_aspect_and_pads_black_centred() -> None:
    img = torch.full((1, 2, 4, 3), 255, dtype=torch.uint8)  # 2 x 4 white image
    out = resize_with_pad(img, 8)  # -> 4 x 8 white, 2 black rows above and below
    assert out.shape == (1, 3, 8, 8)
    assert (out[0, :, 2:6] == 1.0).all() and (out[0, :, :2] == -1.0).all() and (out[0, :, 6:] == -1.0).all()
    odd = resize_with_pad(torch.zeros(1, 3, 8, 3, dtype=torch.uint8) + 128, 8)  # 3 x 8: pad 2 top, 3 bottom
    assert (odd[0, 0, :, 0] > -1.0).tolist() == [False, False, True, True, True, False, False, False]
    same = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    assert torch.equal(resize_with_pad(same, 8), same.permute(0, 3, 1, 2).float() / 127.5 - 1.0)


def test_prompt_tokens_are_lerobots_raw_task_plus_newline_right_padded(tokenizer: Path) -> None:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    tok = PromptTokenizer(tokenizer, max_length=16)
    tokens, mask = tok(["  pick_up the bowl", "turn on the stove\n"])
    want = [2, *sp.encode("  pick_up the bowl\n")]  # raw text, no strip or '_' cleaning (LeRobot)
    assert tokens[0, :len(want)].tolist() == want and mask[0].sum() == len(want)
    assert (tokens[0, len(want):] == 0).all() and not mask[0, len(want):].any()
    assert tokens[1, :mask[1].sum()].tolist() == [2, *sp.encode("turn on the stove\n")]  # not twice
    long_tokens, long_mask = tok(["put the cream cheese in the bowl " * 5])
    assert long_mask.all() and long_tokens[0, 0] == 2


def test_cameras_fill_their_slots_and_missing_slots_are_masked(policy: Pi0Policy) -> None:
    batch = policy.prepare(env_obs(2, cameras=("agentview",), size=(32, 32)), "cpu")
    assert batch["images"].shape == (2, 3, 3, 32, 32)
    assert batch["image_masks"].tolist() == [[True, False, False]] * 2
    assert (batch["images"][:, 1:] == -1.0).all() and batch["images"][:, 0].min() >= -1.0
    top = policy.prepare(env_obs(1, cameras=("top",)), "cpu")  # ALOHA's camera -> base slot
    assert top["image_masks"].tolist() == [[True, False, False]]
    wrist = policy.prepare(env_obs(1, cameras=("wrist",)), "cpu")
    assert wrist["image_masks"].tolist() == [[False, True, False]]


def test_camera_map_errors_are_clear(policy: Pi0Policy) -> None:
    with pytest.raises(PolicyError, match="camera 'side' has no model slot"):
        policy.prepare(env_obs(1, cameras=("side",)), "cpu")
    with pytest.raises(PolicyError, match="both map to base_0_rgb"):
        policy.prepare(env_obs(1, cameras=("agentview", "top")), "cpu")
    with pytest.raises(PolicyError, match="not model cameras"):
        policy.set_camera_map({"side": "left_eye"})
    policy.set_camera_map({"side": "right_wrist_0_rgb"})
    side = policy.prepare(env_obs(1, cameras=("side",)), "cpu")
    assert side["image_masks"].tolist() == [[False, False, True]]


def test_state_is_normalised_and_padded(policy: Pi0Policy) -> None:
    obs = env_obs(2)
    policy.set_stats(state=MeanStd(np.ones(8), np.full(8, 2.0)))
    state = policy.prepare(obs, "cpu")["state"]
    assert state.shape == (2, 32) and (state[:, 8:] == 0).all()
    torch.testing.assert_close(state[:, :8], (torch.as_tensor(obs["state"]) - 1) / (2 + 1e-8))
    with pytest.raises(PolicyError, match="9 dims but the normalisation stats only 8"):
        policy.prepare({**obs, "state": np.zeros((2, 9))}, "cpu")
    policy.set_stats(state=MeanStd())
    with pytest.raises(PolicyError, match="state has 40 dims; this pi0 takes at most 32"):
        policy.prepare({**obs, "state": np.zeros((2, 40))}, "cpu")


def test_env_actions_round_trip_through_model_space(policy: Pi0Policy) -> None:
    policy.set_stats(action=MeanStd(np.arange(7.0), np.linspace(0.5, 2.0, 7)))
    env = np.random.default_rng(0).normal(size=(2, 10, 7)).astype(np.float32)
    model = policy.from_env_actions(env)
    assert model.shape == (2, 10, 32) and (model[..., 7:] == 0).all()
    np.testing.assert_allclose(policy.to_env_actions(model, 7), env, atol=1e-5)
    critic = policy.critic_features(policy.prepare(env_obs(2), "cpu"))
    assert critic.shape == (2, policy.critic_feature_dim) and not critic.requires_grad


def test_missing_tokenizer_and_bad_inputs_fail_clearly(tokenizer: Path, tmp_path: Path) -> None:
    bare = Pi0Policy.create(tiny_policy(tokenizer).config)
    with pytest.raises(PolicyError, match="no tokenizer"):
        bare.prepare(env_obs(1), "cpu")
    with pytest.raises(PolicyError, match="uint8"):
        resize_with_pad(torch.zeros(1, 8, 8, 3), 8)
    (tmp_path / "bad.model").write_bytes(b"nonsense")
    with pytest.raises(PolicyError, match="not a SentencePiece model"):
        PromptTokenizer(tmp_path / "bad.model", 8)

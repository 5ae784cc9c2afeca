"""pi0.5 folders in the LeRobot layout: bit-exact round trip, quantile stats in pi0.5's processor
files, the key fixes LeRobot's loader makes (and a strict error for anything else)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pi0_helpers import env_obs
from pi05_helpers import tiny_pi05, train_pi05_tokenizer
from safetensors.torch import load_file, save_file

from policies.checkpoint import inspect_checkpoint
from policies.pi0.io import EMBED, LM_HEAD
from policies.pi0.preprocess import MeanStd, Quantiles
from policies.pi05 import Pi05Policy
from policies.registry import PolicyError, make_policy

WEIGHTS = "model.safetensors"
E = "paligemma_with_expert.gemma_expert.model"


@pytest.fixture(scope="module")
def tokenizer05(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_pi05_tokenizer(tmp_path_factory.mktemp("tok05"))


@pytest.fixture
def saved(tmp_path: Path, tokenizer05: Path) -> tuple[Pi05Policy, Path]:
    """A tiny pi0.5 with quantile stats fitted to data and a camera map, saved."""
    policy = tiny_pi05(tokenizer05, camera_map={"frontview": "right_wrist_0_rgb"})
    rng = np.random.default_rng(0)
    policy.fit_normalization(rng.normal(size=(200, 8)), rng.normal(size=(20, 10, 7)) * 2)
    folder = tmp_path / "pi05"
    policy.save_pretrained(folder)
    return policy, folder


def _rewrite_weights(folder: Path, edit) -> None:
    tensors = load_file(str(folder / WEIGHTS))
    edit(tensors)
    save_file(tensors, str(folder / WEIGHTS))


def test_save_writes_pi05s_lerobot_layout(saved) -> None:
    policy, folder = saved
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["type"] == "pi05" and cfg["tokenizer_max_length"] == 80
    assert cfg["normalization_mapping"] == {"VISUAL": "IDENTITY", "STATE": "QUANTILES", "ACTION": "QUANTILES"}
    assert set(load_file(str(folder / WEIGHTS))) == {f"model.{k}" for k in policy.state_dict()}
    pre = json.loads((folder / "policy_preprocessor.json").read_text())["steps"]
    post = json.loads((folder / "policy_postprocessor.json").read_text())["steps"]
    assert [s["registry_name"] for s in pre] == [  # LeRobot 0.6.1's make_pi05_pre_post_processors
        "rename_observations_processor", "to_batch_processor", "relative_actions_processor",
        "normalizer_processor", "pi05_prepare_state_tokenizer_processor_step", "tokenizer_processor",
        "device_processor"]
    assert [s["registry_name"] for s in post] == [
        "unnormalizer_processor", "absolute_actions_processor", "device_processor"]
    assert pre[3]["state_file"] == "policy_preprocessor_step_3_normalizer_processor.safetensors"
    assert post[0]["state_file"] == "policy_postprocessor_step_0_unnormalizer_processor.safetensors"
    assert pre[3]["config"]["norm_map"]["STATE"] == "QUANTILES" and pre[5]["config"]["max_length"] == 80
    stats = load_file(str(folder / pre[3]["state_file"]))
    assert set(stats) == {"observation.state.q01", "observation.state.q99", "action.q01", "action.q99"}


def test_quantiles_map_q01_q99_to_minus_one_one_as_lerobot(saved) -> None:
    policy, _ = saved
    q = policy.processors.action
    assert isinstance(q, Quantiles) and isinstance(policy.processors.state, Quantiles)
    x = torch.stack([q.q01, q.q99, (q.q01 + q.q99) / 2])
    torch.testing.assert_close(q.normalize(x), torch.tensor([-1.0, 1.0, 0.0])[:, None].expand(3, 7))
    y = torch.randn(4, 7) * 2  # not clipped, either way
    torch.testing.assert_close(q.unnormalize(y), (y + 1.0) * (q.q99 - q.q01) / 2.0 + q.q01)
    flat = Quantiles(torch.ones(2), torch.ones(2))  # q99 == q01: the range is eps
    assert torch.equal(flat.normalize(torch.ones(1, 2)), torch.full((1, 2), -1.0))


def test_save_load_round_trip_is_bit_exact(saved) -> None:
    policy, folder = saved
    back = make_policy(folder)
    assert isinstance(back, Pi05Policy) and back.load_warnings == []
    a, b = policy.state_dict(), back.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    obs = env_obs(2, cameras=("agentview", "frontview"))
    noise = torch.randn(2, 10, 32)
    batch_a, batch_b = policy.prepare(obs, "cpu"), back.prepare(obs, "cpu")
    assert all(torch.equal(batch_a[k], batch_b[k]) for k in batch_a)
    assert torch.equal(policy.sample(batch_a, noise=noise), back.sample(batch_b, noise=noise))
    assert np.array_equal(policy.to_env_actions(noise, 7), back.to_env_actions(noise, 7))
    assert inspect_checkpoint(folder).policy_type == "pi05"


def test_bf16_round_trip_is_bit_exact(tmp_path: Path, tokenizer05: Path) -> None:
    policy = tiny_pi05(tokenizer05, dtype="bfloat16", scope="full")
    policy.save_pretrained(tmp_path)
    back = make_policy(tmp_path, scope="full")
    a, b = policy.state_dict(), back.state_dict()
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def test_a_mean_std_override_loads_with_its_stats(saved) -> None:
    """LIBERO fine-tunes override pi0.5's mapping to MEAN_STD (LeRobot's docs recipe)."""
    _, folder = saved
    rng = np.random.default_rng(1)
    mean, std = rng.normal(size=8), rng.uniform(0.5, 2, 8)
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        data = json.loads((folder / name).read_text())
        for step in data["steps"]:
            if "norm_map" in step.get("config", {}):
                step["config"]["norm_map"] = {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
                save_file({"observation.state.mean": torch.tensor(mean, dtype=torch.float32),
                           "observation.state.std": torch.tensor(std, dtype=torch.float32),
                           "action.mean": torch.zeros(7), "action.std": torch.ones(7)},
                          str(folder / step["state_file"]))
        (folder / name).write_text(json.dumps(data))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["normalization_mapping"] = {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
    (folder / "config.json").write_text(json.dumps(cfg))
    back = make_policy(folder)
    assert isinstance(back.processors.state, MeanStd)
    torch.testing.assert_close(back.processors.state.mean, torch.tensor(mean, dtype=torch.float32))


def test_quantile_mode_without_quantile_stats_is_an_error(saved) -> None:
    _, folder = saved
    pre = json.loads((folder / "policy_preprocessor.json").read_text())
    save_file({"observation.state.mean": torch.zeros(8), "observation.state.std": torch.ones(8)},
              str(folder / pre["steps"][3]["state_file"]))
    with pytest.raises(PolicyError, match=r"QUANTILES normalisation of observation\.state needs q01, q99"):
        make_policy(folder)


def test_openpi_style_keys_load_with_lerobots_fixes(saved) -> None:
    """An un-prefixed file (lerobot/pi05_base style): action_time_mlp_* names, a pi0 state_proj,
    plain expert norm weights, lm_head without embed_tokens -> loads as LeRobot loads it."""
    policy, folder = saved

    def edit(t: dict) -> None:
        for key in list(t):
            t[key[len("model."):]] = t.pop(key)
        for part in ("weight", "bias"):
            for io in ("in", "out"):
                t[f"action_time_mlp_{io}.{part}"] = t.pop(f"time_mlp_{io}.{part}")
            t[f"state_proj.{part}"] = torch.zeros(32 if part == "bias" else (32, 32))
        t[f"{E}.layers.0.input_layernorm.weight"] = torch.zeros(32)
        t[f"{E}.norm.weight"] = torch.zeros(32)
        del t[EMBED]
    _rewrite_weights(folder, edit)
    back = make_policy(folder)
    sd, ref = back.state_dict(), policy.state_dict()
    assert torch.equal(sd["time_mlp_in.weight"], ref["time_mlp_in.weight"])
    assert torch.equal(sd[EMBED], ref[LM_HEAD]) and sd[EMBED].data_ptr() != sd[LM_HEAD].data_ptr()
    assert len(back.load_warnings) == 1 and "4 stored keys left out" in back.load_warnings[0]
    assert inspect_checkpoint(folder).policy_type == "pi05"


@pytest.mark.parametrize(("key", "error"), [
    ("model.state_proj.weight", r"1 unexpected: state_proj\.weight"),  # LeRobot drops un-prefixed ones only
    ("model.action_time_mlp_in.weight", r"1 unexpected: action_time_mlp_in\.weight"),
    (f"model.{E}.norm.weight", r"1 unexpected: .*gemma_expert\.model\.norm\.weight"),
    ("extra.weight", r"1 unexpected: extra\.weight"),
])
def test_anything_else_is_a_strict_error(saved, key: str, error: str) -> None:
    _, folder = saved
    _rewrite_weights(folder, lambda t: t.__setitem__(key, torch.zeros(32)))
    for load in (make_policy, inspect_checkpoint):
        with pytest.raises(PolicyError, match=error):
            load(folder)


def test_missing_adarms_layer_and_wrong_shape_fail_naming_them(saved) -> None:
    _, folder = saved

    def edit(t: dict) -> None:
        del t[f"model.{E}.layers.1.post_attention_layernorm.dense.weight"]
        t["model.time_mlp_out.bias"] = torch.zeros(31)
    _rewrite_weights(folder, edit)
    with pytest.raises(PolicyError, match=r"1 missing: .*layers\.1\.post_attention_layernorm\.dense\.weight; "
                                          r"1 wrong shape: time_mlp_out\.bias \[31\] != \[32\]"):
        make_policy(folder)


def test_a_pi0_folder_is_not_a_pi05_one(tmp_path: Path, tokenizer05: Path) -> None:
    make_policy("pi0-tiny", tokenizer=tokenizer05).save_pretrained(tmp_path)
    with pytest.raises(PolicyError, match="type is 'pi0', not 'pi05'"):
        Pi05Policy.from_pretrained(tmp_path)

"""pi0 folders in the LeRobot layout: bit-exact round trip, strict loading, key renames, inspection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pi0_helpers import env_obs, tiny_policy
from safetensors.torch import load_file, save_file

from policies.base import FlowPolicy
from policies.checkpoint import inspect_checkpoint
from policies.mlp import MLPFlowConfig, MLPFlowPolicy
from policies.pi0 import Pi0Policy
from policies.pi0.io import EMBED, LM_HEAD
from policies.pi0.preprocess import MeanStd
from policies.registry import PolicyError, make_policy

WEIGHTS = "model.safetensors"


@pytest.fixture
def saved(tmp_path: Path, tokenizer: Path) -> tuple[Pi0Policy, Path]:
    """A tiny pi0 with stats and a camera map, saved."""
    policy = tiny_policy(tokenizer, camera_map={"frontview": "right_wrist_0_rgb"})
    rng = np.random.default_rng(0)
    policy.set_stats(MeanStd(rng.normal(size=8), rng.uniform(0.5, 2, 8)),
                     MeanStd(rng.normal(size=7), rng.uniform(0.5, 2, 7)))
    folder = tmp_path / "pi0"
    policy.save_pretrained(folder)
    return policy, folder


def _rewrite_weights(folder: Path, edit) -> None:
    tensors = load_file(str(folder / WEIGHTS))
    edit(tensors)
    save_file(tensors, str(folder / WEIGHTS))


def test_save_writes_the_lerobot_layout(saved) -> None:
    policy, folder = saved
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", WEIGHTS, "policy_preprocessor.json", "policy_postprocessor.json",
            "paligemma_tokenizer.model", "fpoctl.json"} <= names
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["type"] == "pi0" and cfg["paligemma_variant"] == "tiny"
    assert cfg["output_features"]["action"]["shape"] == [7]
    assert set(load_file(str(folder / WEIGHTS))) == {f"model.{k}" for k in policy.state_dict()}
    pre = json.loads((folder / "policy_preprocessor.json").read_text())["steps"]
    post = json.loads((folder / "policy_postprocessor.json").read_text())["steps"]
    assert [s["registry_name"] for s in pre] == [  # LeRobot 0.6.1's make_pi0_pre_post_processors
        "rename_observations_processor", "to_batch_processor", "pi0_new_line_processor",
        "tokenizer_processor", "device_processor", "relative_actions_processor", "normalizer_processor"]
    assert [s["registry_name"] for s in post] == [
        "unnormalizer_processor", "absolute_actions_processor", "device_processor"]
    assert pre[0]["config"]["rename_map"] == {}
    assert pre[6]["state_file"] == "policy_preprocessor_step_6_normalizer_processor.safetensors"
    assert post[0]["state_file"] == "policy_postprocessor_step_0_unnormalizer_processor.safetensors"
    stats = load_file(str(folder / pre[6]["state_file"]))
    assert set(stats) == {"observation.state.mean", "observation.state.std", "action.mean", "action.std"}
    assert json.loads((folder / "fpoctl.json").read_text())["camera_map"]["frontview"] == "right_wrist_0_rgb"


def test_actions_are_unnormalised_as_x_times_std_plus_mean(saved) -> None:
    policy, _ = saved
    x = torch.randn(2, 10, 32)
    want = x[..., :7] * policy.processors.action.std + policy.processors.action.mean
    torch.testing.assert_close(torch.as_tensor(policy.to_env_actions(x, 7)), want)


def test_enabled_relative_action_steps_are_refused(saved) -> None:
    _, folder = saved
    pre = json.loads((folder / "policy_preprocessor.json").read_text())
    step = next(s for s in pre["steps"] if s["registry_name"] == "relative_actions_processor")
    step["config"]["enabled"] = True
    (folder / "policy_preprocessor.json").write_text(json.dumps(pre))
    for load in (make_policy, inspect_checkpoint):
        with pytest.raises(PolicyError, match="relative_actions_processor is enabled"):
            load(folder)


def test_save_load_round_trip_is_bit_exact(saved) -> None:
    policy, folder = saved
    back = make_policy(folder)
    assert isinstance(back, Pi0Policy)
    a, b = policy.state_dict(), back.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    obs = env_obs(2, cameras=("agentview", "frontview"))
    noise = torch.randn(2, 10, 32)
    batch_a, batch_b = policy.prepare(obs, "cpu"), back.prepare(obs, "cpu")
    assert all(torch.equal(batch_a[k], batch_b[k]) for k in batch_a)
    assert torch.equal(policy.sample(batch_a, noise=noise), back.sample(batch_b, noise=noise))
    assert np.array_equal(policy.to_env_actions(noise, 7), back.to_env_actions(noise, 7))


def test_bf16_round_trip_is_bit_exact(tmp_path: Path, tokenizer: Path) -> None:
    policy = tiny_policy(tokenizer, dtype="bfloat16")
    policy.save_pretrained(tmp_path)
    back = make_policy(tmp_path)
    a, b = policy.state_dict(), back.state_dict()
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def test_state_file_is_read_from_the_processor_json_not_a_fixed_name(saved) -> None:
    policy, folder = saved
    pre = json.loads((folder / "policy_preprocessor.json").read_text())
    for step in pre["steps"]:
        if "state_file" in step:
            (folder / step["state_file"]).rename(folder / "policy_preprocessor_step_2_normalizer.safetensors")
            step["state_file"] = "policy_preprocessor_step_2_normalizer.safetensors"
    (folder / "policy_preprocessor.json").write_text(json.dumps(pre))
    back = make_policy(folder)
    assert torch.equal(back.processors.state.mean, policy.processors.state.mean)


def test_missing_key_fails_naming_it(saved) -> None:
    _, folder = saved
    key = "model.paligemma_with_expert.gemma_expert.model.layers.1.mlp.up_proj.weight"  # LeRobot's prefix
    _rewrite_weights(folder, lambda t: t.pop(key))
    with pytest.raises(PolicyError, match=r"1 missing: .*layers\.1\.mlp\.up_proj\.weight"):
        make_policy(folder)


def test_wrong_shape_and_unexpected_key_fail_naming_them(saved) -> None:
    _, folder = saved

    def edit(t: dict) -> None:
        t["model.state_proj.weight"] = torch.zeros(32, 31)
        t["extra.weight"] = torch.zeros(2)
    _rewrite_weights(folder, edit)
    with pytest.raises(PolicyError, match=r"1 unexpected: extra\.weight; 1 wrong shape: state_proj\.weight "
                                          r"\[32, 31\] != \[32, 32\]"):
        make_policy(folder)


def test_corrupt_safetensors_header_fails_clearly(saved) -> None:
    _, folder = saved
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[8:20] = b"not json !!!"
    (folder / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(PolicyError, match="corrupt safetensors header"):
        make_policy(folder)
    (folder / WEIGHTS).write_bytes(b"\x01")
    with pytest.raises(PolicyError, match="corrupt safetensors header"):
        inspect_checkpoint(folder)


def test_older_key_names_and_the_model_prefix_are_accepted_on_load(saved) -> None:
    policy, folder = saved

    def edit(t: dict) -> None:
        for k in list(t):
            t[k.removeprefix("model.")] = t.pop(k)
        for part in ("in", "out"):
            for kind in ("weight", "bias"):
                t[f"time_mlp_{part}.{kind}"] = t.pop(f"action_time_mlp_{part}.{kind}")
    _rewrite_weights(folder, edit)
    back = make_policy(folder)
    assert torch.equal(back.action_time_mlp_in.weight, policy.action_time_mlp_in.weight)
    for key, value in policy.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_token_tables_load_as_lerobot_does(saved) -> None:
    """Both stored: both kept. lm_head alone (openpi conversions): embed_tokens := lm_head, a copy
    (and embed_tokens alone gives lm_head, which pi0 never uses)."""
    policy, folder = saved
    lm_head, embed = f"model.{LM_HEAD}", f"model.{EMBED}"
    assert not torch.equal(policy.state_dict()[LM_HEAD], policy.state_dict()[EMBED])
    back = make_policy(folder)
    assert torch.equal(back.state_dict()[EMBED], policy.state_dict()[EMBED])
    assert torch.equal(back.state_dict()[LM_HEAD], policy.state_dict()[LM_HEAD])
    _rewrite_weights(folder, lambda t: t.pop(embed))
    tied = make_policy(folder, scope="full")
    assert torch.equal(tied.state_dict()[EMBED], policy.state_dict()[LM_HEAD])
    assert tied.state_dict()[EMBED].data_ptr() != tied.state_dict()[LM_HEAD].data_ptr()
    policy.save_pretrained(folder)
    _rewrite_weights(folder, lambda t: t.pop(lm_head))
    assert torch.equal(make_policy(folder).state_dict()[LM_HEAD], policy.state_dict()[EMBED])


def test_inspect_checkpoint_reads_headers_only(saved) -> None:
    policy, folder = saved
    info = inspect_checkpoint(folder)
    assert info.policy_type == "pi0"
    assert info.n_params == sum(v.numel() for v in policy.state_dict().values())
    assert "model.safetensors" in info.files and info.size_bytes > (folder / WEIGHTS).stat().st_size
    (folder / "policy_preprocessor_step_6_normalizer_processor.safetensors").unlink()
    with pytest.raises(PolicyError, match="does not exist"):
        inspect_checkpoint(folder)


def test_inspect_checkpoint_handles_mlp_flow(tmp_path: Path) -> None:
    MLPFlowPolicy(MLPFlowConfig(obs_dim=3, action_dim=2, horizon=4, hidden=16)).save_pretrained(tmp_path)
    info = inspect_checkpoint(tmp_path)
    assert info.policy_type == "mlp_flow" and info.files == ["config.json", WEIGHTS]
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "hidden": 32}))
    with pytest.raises(PolicyError, match="wrong shape"):
        inspect_checkpoint(tmp_path)


def test_bad_folders_fail_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"no config\.json"):
        inspect_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"type": "act"}))
    with pytest.raises(PolicyError, match="unknown policy type 'act'"):
        make_policy(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"type": "pi0", "paligemma_variant": "gemma_7b"}))
    with pytest.raises(PolicyError, match="unknown paligemma_variant 'gemma_7b'"):
        inspect_checkpoint(tmp_path)


def test_registry_builds_pi0_by_name(tokenizer: Path, tmp_path: Path) -> None:
    policy = make_policy("pi0-tiny", tokenizer=tokenizer, chunk_size=6, scope="lora")
    assert isinstance(policy, Pi0Policy) and isinstance(policy, FlowPolicy)
    assert policy.horizon == 6 and policy.scope == "lora"
    with pytest.raises(PolicyError, match="unknown policy 'pi1'"):
        make_policy("pi1")
    with pytest.raises(PolicyError, match="cannot build 'pi0-tiny'"):
        make_policy("pi0-tiny", wings=2)
    policy.save_pretrained(tmp_path / "p")
    with pytest.raises(PolicyError, match="cannot load"):
        make_policy(tmp_path / "p", wings=2)


def test_lerobot_config_fields_we_do_not_use_survive_a_load_save_cycle(saved, tmp_path: Path) -> None:
    _, folder = saved
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update({"use_amp": False, "optimizer_lr": 2.5e-5,
                "input_features": {"observation.images.image": {"type": "VISUAL", "shape": [3, 256, 256]}}})
    (folder / "config.json").write_text(json.dumps(cfg))
    make_policy(folder).save_pretrained(tmp_path / "again")
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    assert again["use_amp"] is False and again["optimizer_lr"] == 2.5e-5
    assert list(again["input_features"]) == ["observation.images.image"]


def _edit_config(folder: Path, **fields) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, **fields}))


def test_relative_actions_are_refused_before_any_weight_is_read(saved) -> None:
    _, folder = saved
    _edit_config(folder, use_relative_actions=True, relative_exclude_joints=["gripper"])
    for load in (make_policy, inspect_checkpoint):
        with pytest.raises(PolicyError, match="use_relative_actions is true"):
            load(folder)


def test_fields_that_would_change_behaviour_are_named_in_warnings(saved) -> None:
    _, folder = saved
    assert make_policy(folder).load_warnings == []
    _edit_config(folder, optimizer_lr=1e-3, use_relative_actions=False, time_sampling_beta_alpha=2.0,
                 rtc_config={"enabled": True}, dream_mode="on")
    warnings = make_policy(folder).load_warnings
    assert len(warnings) == 3
    assert any("'time_sampling_beta_alpha' = 2.0" in w for w in warnings)
    assert any("'rtc_config'" in w for w in warnings)
    assert any("'dream_mode' is unknown" in w for w in warnings)


def test_normalisation_other_than_mean_std_is_refused(saved) -> None:
    _, folder = saved
    _edit_config(folder, normalization_mapping={"STATE": "MIN_MAX"})
    with pytest.raises(PolicyError, match=r"normalization_mapping .* is not supported"):
        make_policy(folder)

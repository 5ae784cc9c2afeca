"""`fpoctl push` of a pi0.5 run through the local Hub server (as tests/test_hub_push.py does for pi0):
the checkpoint comes back bit-exact with `pull` in LeRobot's pi05 layout, its card names
lerobot/pi05_base, and the pulled model loads and fine-tunes by its repo name."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from policies.pi05 import Pi05Policy
from policies.registry import load_policy
from tests.conftest import run_cli
from tests.hubserver import folder_files, hub_env
from tests.pi05_helpers import tiny_pi05, train_pi05_tokenizer
from tests.test_hub_push import TOKEN, hub, make_run, push, store_of

__all__ = ["hub"]  # the fixture, imported for the tests below


def test_pi05_push_pull_keeps_lerobot_layout_and_loads_back(hub, tmp_path):
    tokenizer = train_pi05_tokenizer(tmp_path)
    run_id = make_run(tmp_path, steps=(5,), make_policy=lambda step: tiny_pi05(tokenizer, seed=step))
    with store_of(tmp_path) as store:  # a run started from the built-in alias pi05
        config = store.get_run(run_id).config
        store.update_run(run_id, policy="pi05", config={**config, "policy": "pi05"})
    proc = push(hub, tmp_path, str(run_id), "--repo", "alice/pi05-fpo")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("pull", "alice/pi05-fpo", "-q", env=hub_env(hub, tmp_path, TOKEN))
    assert proc.returncode == 0, proc.stderr
    pulled = Path(proc.stdout.strip())
    source = tmp_path / "home" / "runs" / str(run_id) / "checkpoints" / "step_000005" / "policy"
    assert folder_files(pulled) == folder_files(source)  # bit-exact, tokenizer included
    assert json.loads((pulled / "config.json").read_text())["type"] == "pi05"
    steps = json.loads((pulled / "policy_preprocessor.json").read_text())["steps"]
    assert steps[3]["state_file"] == "policy_preprocessor_step_3_normalizer_processor.safetensors"
    assert (pulled / steps[3]["state_file"]).is_file()
    back, original = load_policy(pulled), Pi05Policy.from_pretrained(source)
    assert isinstance(back, Pi05Policy) and back.tokenizer is not None
    for key, value in original.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    readme = hub.files("alice/pi05-fpo")["README.md"].decode()
    meta = yaml.safe_load(readme.split("---")[1])
    assert "pi05" in meta["tags"] and meta["base_model"] == "lerobot/pi05_base"
    assert "PI05Policy.from_pretrained(\"alice/pi05-fpo\")" in readme
    # The pulled model fine-tunes by its repo name, with the tokenizer it carries.
    proc = run_cli("finetune", "--foreground", "--init", "alice/pi05-fpo", "--task", "fast-goal",
                   "--iterations", "1",
                   *[f"--set={kv}" for kv in ("num_envs=2", "rollout_chunks=2", "eval_episodes=2",
                                              "n_mc=2", "minibatch_size=4")],
                   env=hub_env(hub, tmp_path, TOKEN))
    assert proc.returncode == 0, proc.stderr
    assert "finished" in proc.stdout

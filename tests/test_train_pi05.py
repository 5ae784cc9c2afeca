"""The pi0.5 path: a tiny-config pi0.5 fine-tunes end to end on a LIBERO task in pixels mode (CPU),
through the same train/ code as pi0 (train/ knows the family only through policies/registry.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from fpoctl.store import Store
from tests.conftest import require, run_cli
from tests.pi05_helpers import train_pi05_tokenizer


@pytest.mark.slow
@pytest.mark.sim
def test_tiny_pi05_fine_tunes_one_iteration_on_libero_pixels(home: Path, tmp_path: Path) -> None:
    require("libero")
    tokenizer = train_pi05_tokenizer(tmp_path)
    env = json.dumps({"image_size": 64, "max_steps": 40})
    proc = run_cli("finetune", "--foreground", "--task", "libero-spatial/0", "--policy", "pi05-tiny",
                   "--iterations", "1",
                   "--set", "obs_mode=pixels", "--set", f"tokenizer={tokenizer}",
                   "--set", f"env_kwargs={env}",
                   "--set", "num_envs=1", "--set", "rollout_chunks=2", "--set", "exec_steps=5",
                   "--set", "n_mc=2", "--set", "minibatch_size=2", "--set", "eval_episodes=1",
                   "--set", "critic=q_ensemble", "--set", "q_ensemble_size=2", timeout=900)
    assert proc.returncode == 0, proc.stderr
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as store:
        run = store.get_run(1)
        assert run.status == "finished" and run.policy == "pi05-tiny"
        keys = {r.key for r in store.metrics_since(run.id)}
        assert {"fpo/ratio_mean", "fpo/cfm_loss", "critic/q_std", "eval/success_rate",
                "env/steps_total"} <= keys
        ckpt = Path(store.checkpoints(run.id)[-1].path) / "policy"
    # the checkpoint is in LeRobot's pi05 layout, tokenizer included
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["type"] == "pi05" and cfg["normalization_mapping"]["STATE"] == "QUANTILES"
    pre = json.loads((ckpt / "policy_preprocessor.json").read_text())["steps"]
    assert pre[4]["registry_name"] == "pi05_prepare_state_tokenizer_processor_step"
    assert any(ckpt.glob("*tokenizer.model"))
    assert "model.time_mlp_in.weight" in load_file(str(ckpt / "model.safetensors"))

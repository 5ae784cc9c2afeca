"""The pi0 path: a tiny-config pi0 fine-tunes end to end on a LIBERO task in pixels mode (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fpoctl.store import Store
from tests.conftest import require, run_cli
from tests.pi0_helpers import finetune_one_libero_pixel_iteration, train_tokenizer


@pytest.mark.slow
@pytest.mark.sim
def test_tiny_pi0_fine_tunes_one_iteration_on_libero_pixels(home: Path, tmp_path: Path) -> None:
    require("libero")
    tokenizer = train_tokenizer(tmp_path)
    keys, ckpt = finetune_one_libero_pixel_iteration("pi0-tiny", tokenizer, home)
    assert {"fpo/ratio_mean", "critic/q_std", "eval/success_rate", "env/steps_total"} <= keys
    # the checkpoint is in LeRobot's layout, tokenizer included
    assert json.loads((ckpt / "config.json").read_text())["type"] == "pi0"
    assert (ckpt / "policy_preprocessor.json").exists() and any(ckpt.glob("*tokenizer.model"))


def test_bf16_finetune_keeps_float32_master_weights_in_its_checkpoint(home: Path, tmp_path: Path) -> None:
    """`--set dtype=bfloat16`: the run trains the expert as float32 masters over a bf16 VLM, and
    its checkpoint stores them so (LeRobot casts on load; a resume loses nothing)."""
    from safetensors import safe_open

    tokenizer = train_tokenizer(tmp_path)
    proc = run_cli("finetune", "--foreground", "--task", "fast-goal", "--policy", "pi0-tiny",
                   "--iterations", "1", "--set", f"tokenizer={tokenizer}", "--set", "dtype=bfloat16",
                   *[f"--set={kv}" for kv in ("num_envs=2", "rollout_chunks=2", "eval_episodes=2",
                                              "n_mc=2", "minibatch_size=4")], timeout=600)
    assert proc.returncode == 0, proc.stderr
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as store:
        ckpt = Path(store.checkpoints(1)[-1].path) / "policy"
    assert json.loads((ckpt / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        dtype = {k: f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118 (safe_open has no iteration)
    assert dtype["model.paligemma_with_expert.gemma_expert.model.layers.0.mlp.up_proj.weight"] == "F32"
    assert dtype["model.paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.up_proj.weight"] \
        == "BF16"
    bad = run_cli("finetune", "--foreground", "--task", "fast-goal", "--set", "dtype=float16")
    assert bad.returncode != 0 and "dtype must be one of float32, bfloat16" in bad.stderr

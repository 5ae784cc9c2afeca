"""The pi0.5 path: a tiny-config pi0.5 fine-tunes end to end on a LIBERO task in pixels mode (CPU),
through the same train/ code as pi0 (train/ knows the family only through policies/registry.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.conftest import require
from tests.pi0_helpers import finetune_one_libero_pixel_iteration
from tests.pi05_helpers import train_pi05_tokenizer


@pytest.mark.slow
@pytest.mark.sim
def test_tiny_pi05_fine_tunes_one_iteration_on_libero_pixels(home: Path, tmp_path: Path) -> None:
    require("libero")
    tokenizer = train_pi05_tokenizer(tmp_path)
    keys, ckpt = finetune_one_libero_pixel_iteration("pi05-tiny", tokenizer, home)
    assert {"fpo/ratio_mean", "fpo/cfm_loss", "critic/q_std", "eval/success_rate",
            "env/steps_total"} <= keys
    # the checkpoint is in LeRobot's pi05 layout, tokenizer included
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["type"] == "pi05" and cfg["normalization_mapping"]["STATE"] == "QUANTILES"
    pre = json.loads((ckpt / "policy_preprocessor.json").read_text())["steps"]
    assert pre[4]["registry_name"] == "pi05_prepare_state_tokenizer_processor_step"
    assert any(ckpt.glob("*tokenizer.model"))
    assert "model.time_mlp_in.weight" in load_file(str(ckpt / "model.safetensors"))

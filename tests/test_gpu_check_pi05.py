"""bench/gpu_check.py covers pi0.5: its sampling latency and N_mc cost per scope (the CPU smoke mode
on pi05-tiny), its analytic memory per scope (full size on the meta device) and its README table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import gpu_check
from tests.test_gpu_check import _gl_env, check_pi0_cells, smoke

__all__ = ["_gl_env"]  # the autouse fixture, imported for the tests below


def test_smoke_mode_times_pi05_tiny_in_every_scope(tmp_path: Path) -> None:
    results = smoke(tmp_path, "--skip", "fpo,egl", "--repeats", "1", "--steps", "2", "--models", "pi0,pi05")
    check_pi0_cells(results)  # pi0's cells as before
    cells = results["cells"]
    assert results["status_counts"] == {"ok": 36}
    for dtype in ("bfloat16", "float32"):
        assert cells[f"pi05/{dtype}/build"]["model"] == "pi05-tiny"
        for scope in ("expert", "full", "lora"):
            four = cells[f"pi05/{dtype}/cfm/{scope}/n_mc4"]
            assert four["status"] == "ok" and four["scope"] == scope and four["vs_n_mc1"] > 0
        assert cells[f"pi05/{dtype}/sample/batch2"]["ms"] > 0
    assert results["memory_analytic"]["model"] == "pi0" and results["memory_analytic_pi05"]["model"] == "pi05"
    table = gpu_check.summary_markdown(results)
    assert "| pi0, ms / peak GB |" in table and "| pi05, ms / peak GB |" in table


def test_memory_only_counts_pi05s_scopes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "mem.json"
    assert gpu_check.main(["--memory-only", "--models", "pi05", "--json", str(out)]) == 0
    assert "pi05 analytic training memory" in capsys.readouterr().out
    mem = json.loads(out.read_text())["memory_analytic_pi05"]
    for dtype in ("bfloat16", "float32"):
        rows = mem["dtypes"][dtype]
        assert rows["expert"]["parameters"] == rows["full"]["parameters"] == 4_143_404_816  # LeRobot's save
        assert rows["lora"]["parameters"] > 4_143_404_816  # + the adapters
        assert rows["lora"]["trainable"] < rows["expert"]["trainable"] < rows["full"]["trainable"]
        # expert: the 18 adaRMS layers (dense incl.) + the final norm's dense + heads
        assert rows["expert"]["groups"]["action_expert"]["trainable"] == 427_932_672
        assert rows["expert"]["groups"]["heads"]["trainable"] == 2_165_792
        assert rows["lora"]["groups"]["action_expert"]["frozen"] > 0
    bf16, fp32 = (mem["dtypes"][d]["expert"]["gb"]["total"] for d in ("bfloat16", "float32"))
    assert bf16 < fp32


def test_unknown_models_are_refused() -> None:
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--models", "pi0,pi7"])
    assert gpu_check.parse_args([]).models == ("pi0", "pi05")
    assert gpu_check.parse_args(["--tiny"]).models == ("pi0",)

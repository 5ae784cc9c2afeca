"""bench/gpu_check.py: guarded cells, the time budget, the analytic memory table, the CPU smoke mode.

The real GPU mode is never run here; the smoke mode (`--device cpu --tiny`) runs the same code on
pi0-tiny. The simulator sections (FPO on LIBERO pixels, EGL rendering) run only in the slow test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from bench import gpu_check
from fpoctl.envs.headless import can_render
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"


@pytest.fixture(autouse=True)
def _gl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() picks a headless GL backend in os.environ; undo that after each test."""
    for key in ("MUJOCO_GL", "PYOPENGL_PLATFORM"):
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)


def smoke(tmp_path: Path, *extra: str, timeout: float = 300) -> dict[str, Any]:
    """Run the script's smoke mode in a subprocess (as a user would) and read its JSON."""
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--json", str(out),
                           *extra], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=dict(os.environ))  # no CUDA_VISIBLE_DEVICES="": robosuite's EGL int()s it
    assert proc.returncode == 0, proc.stderr
    assert "memory/analytic" in proc.stdout and "pi0/float32/cfm/lora/n_mc4" in proc.stdout  # progress
    return json.loads(out.read_text())


def check_pi0_cells(results: dict[str, Any]) -> None:
    cells = results["cells"]
    for dtype in ("bfloat16", "float32"):
        assert cells[f"pi0/{dtype}/build"]["status"] == "ok"
        for b in (1, 2):
            cell = cells[f"pi0/{dtype}/sample/batch{b}"]
            assert cell["status"] == "ok" and cell["ms"] > 0 and cell["batch"] == b
        for scope in ("expert", "full", "lora"):
            one, four = cells[f"pi0/{dtype}/cfm/{scope}/n_mc1"], cells[f"pi0/{dtype}/cfm/{scope}/n_mc4"]
            assert one["status"] == four["status"] == "ok" and one["scope"] == scope
            assert four["n_mc"] == 4 and four["vs_n_mc1"] > 0 and four["trainable"] > 0
            assert "peak_gb" not in four  # no CUDA: no memory numbers rather than made-up ones
    trainable = {s: cells[f"pi0/float32/cfm/{s}/n_mc1"]["trainable"] for s in ("expert", "full", "lora")}
    assert trainable["expert"] < trainable["full"] and trainable["lora"] < trainable["full"]


def test_smoke_mode_without_simulators_writes_every_pi0_cell(tmp_path: Path) -> None:
    results = smoke(tmp_path, "--skip", "fpo,egl", "--repeats", "1", "--steps", "2")
    assert results["mode"] == "tiny" and results["schema"] == gpu_check.SCHEMA
    assert results["system"]["torch"] == torch.__version__ and results["system"]["device"] == "cpu"
    assert results["status_counts"] == {"ok": 18} and "finished" in results
    check_pi0_cells(results)
    assert not any(name.startswith(("fpo/", "egl/")) for name in results["cells"])
    assert set(results["memory_analytic"]["dtypes"]) == {"bfloat16", "float32"}
    table = gpu_check.summary_markdown(results)  # what `--summarize` prints for the README
    assert "| cfm_loss fwd+bwd, lora, N_mc 4 |" in table and "N_mc 8" not in table and "FPO" not in table


@pytest.mark.slow
@pytest.mark.sim
def test_smoke_mode_runs_fpo_on_libero_pixels_and_renders(tmp_path: Path) -> None:
    require("libero")
    results = smoke(tmp_path, "--repeats", "1", "--steps", "2", timeout=600)
    check_pi0_cells(results)
    fpo, egl = results["cells"]["fpo/libero-spatial/0/pixels"], results["cells"]["egl/render"]
    if not can_render()[0]:  # recorded, not fatal
        assert fpo["status"] == egl["status"] == "error"
        return
    assert fpo["status"] == "ok", fpo
    assert fpo["config"]["workers"] and fpo["config"]["num_envs"] == 2 and len(fpo["iterations"]) == 1
    it = fpo["iterations"][0]
    assert it["env/steps_total"] == 2 * 2 * 4 and it["perf/update_s"] > 0 and it["fpo/ratio_mean"] > 0
    assert fpo["env_steps_per_s"] > 0 and fpo["update_s"] > 0
    assert egl["status"] == "ok" and egl["scene"] == "libero-spatial/0" and egl["frames_per_s"] > 0
    assert egl["frames"] == 2 * 10 and egl["env_steps_per_s"] > 0


def test_memory_only_counts_scopes_from_the_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "mem.json"
    assert gpu_check.main(["--memory-only", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "activations EXCLUDED" in printed and "24 GB" in printed and "80 GB" in printed
    mem = json.loads(out.read_text())["memory_analytic"]
    for dtype in ("bfloat16", "float32"):
        rows = mem["dtypes"][dtype]
        for scope, row in rows.items():
            gb, n = row["gb"], row["trainable"]
            assert row["trainable"] + row["frozen"] == row["parameters"]
            assert gb["grads_fp32"] == gb["trainable_weights_fp32"] == pytest.approx(4 * n / 1e9, abs=1e-3)
            assert gb["adam_fp32"] == pytest.approx(8 * n / 1e9, abs=1e-3)
            assert gb["total"] == pytest.approx(sum(v for k, v in gb.items() if k != "total"), abs=2e-3)
            assert row["fits_gb"] == {"24": gb["total"] < 24, "80": gb["total"] < 80}, scope
            assert sum(g["trainable"] for g in row["groups"].values()) == n
        assert rows["lora"]["trainable"] < rows["expert"]["trainable"] < rows["full"]["trainable"]
        # the expert's lm_head is never trained; LoRA trains adapters and heads only
        assert all(rows[s]["groups"]["expert_lm_head"]["trainable"] == 0 for s in rows)
        assert rows["lora"]["groups"]["language_model"]["trainable"] == 0
        assert rows["full"]["groups"]["vision_tower"]["frozen"] == 0
    # fp32 stores frozen weights in 4 bytes, bf16 mostly in 2; trainable bytes do not depend on it
    bf16, fp32 = mem["dtypes"]["bfloat16"]["expert"]["gb"], mem["dtypes"]["float32"]["expert"]["gb"]
    assert bf16["frozen_weights"] < fp32["frozen_weights"]
    assert bf16["adam_fp32"] == fp32["adam_fp32"]


def test_cells_record_oom_and_errors_and_the_budget_skips(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "out.json"
    results: dict[str, Any] = {}
    check = gpu_check.Check(path, budget_s=3600, results=results)

    def oom() -> dict[str, Any]:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    def broken() -> dict[str, Any]:
        raise ValueError("shapes do not match\nsecond line")

    assert check.cell("a/ok", lambda: {"ms": 1.0}) == {"ms": 1.0}
    assert check.cell("a/oom", oom) is None
    assert check.cell("a/error", broken) is None
    assert check.cell("a/reserve", lambda: {"ms": 1.0}, reserve_s=1e9) is None
    check.budget_s = 0
    assert check.cell("a/late", lambda: {"ms": 1.0}) is None
    cells = json.loads(path.read_text())["cells"]  # written after every cell
    assert cells["a/ok"]["status"] == "ok" and cells["a/ok"]["ms"] == 1.0 and "wall_s" in cells["a/ok"]
    assert cells["a/oom"] == cells["a/oom"] | {"status": "oom",
                                               "error": "OutOfMemoryError: CUDA out of memory. Tried to "
                                                        "allocate 20.00 GiB"}
    assert cells["a/error"]["status"] == "error"
    assert cells["a/error"]["error"] == "ValueError: shapes do not match"
    assert cells["a/reserve"]["status"] == cells["a/late"]["status"] == "skipped"
    assert "time budget" in cells["a/late"]["reason"]
    printed = capsys.readouterr().out
    assert "a/oom ..." in printed and "OOM: OutOfMemoryError" in printed and "a/late: skipped" in printed


def test_gpu_mode_refuses_without_a_gpu_and_full_size_on_a_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    if not torch.cuda.is_available():
        assert gpu_check.main(["--json", str(out)]) == 2
    assert gpu_check.main(["--device", "cpu", "--json", str(out)]) == 2
    assert not out.exists()

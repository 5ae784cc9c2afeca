"""The pi0 benchmark script runs (tiny config on CPU) and prints its whole table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pi0_bench_prints_sampling_and_cfm_loss_rows() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "pi0_bench.py"), "--size", "tiny",
                          "--dtype", "float32", "--repeats", "1", "--steps", "2"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""})
    assert out.returncode == 0, out.stderr
    for row in ("sample chunk, batch 1", "sample chunk, batch 8", "N_mc 4, scope expert",
                "N_mc 1, scope full", "N_mc 4 / N_mc 1 time, scope full"):
        assert row in out.stdout

"""The kill-and-resume benchmark (bench/kill_resume.py) on a short run: every resume succeeds and
the metric history loses and duplicates nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_random_kills_then_resumes_lose_no_rows(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "kill_resume.py"), "--kills", "4",
                           "--iterations", "40", "--seed", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["kills"] == result["resumes_ok"] >= 1, proc.stdout
    assert result["final_status"] == "finished" and result["final_checkpoint_loads"]
    assert result["rows_missing"] == 0 and result["rows_duplicated"] == 0, result

"""Hub benchmark: `fpoctl pull` cold (download + verify) and warm (cache only, verify), `fpoctl push`,
and sha256 verification throughput, against the local Hub look-alike of the tests.

Run: .venv/bin/python bench/hub_bench.py [--hidden 4096]   (numbers, not pass/fail; an MLP policy of
width 4096 is ~134 MB of float32 weights)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the Hub look-alike lives in tests/

from fpoctl.hub.verify import sha256  # noqa: E402
from fpoctl.store import Store  # noqa: E402
from fpoctl.train.checkpoint import save_checkpoint  # noqa: E402
from policies.mlp import MLPFlowConfig, MLPFlowPolicy  # noqa: E402
from tests.hubserver import HubServer, folder_files, hub_env  # noqa: E402

TOKEN = "hf_bench"


def cli(env: dict[str, str], *args: str) -> float:
    """Seconds one `fpoctl` command takes (it must succeed)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fpoctl.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **env, "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hidden", type=int, default=4096)
    args = parser.parse_args()
    server = HubServer().start()
    server.add_user("bench", TOKEN)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cfg = MLPFlowConfig(obs_dim=32, action_dim=7, horizon=10, hidden=args.hidden, depth=3)
        policy = MLPFlowPolicy(cfg)
        policy.save_pretrained(tmp / "policy")
        weights = tmp / "policy" / "model.safetensors"
        mb = weights.stat().st_size / 1e6
        server.add_repo("bench/mlp", folder_files(tmp / "policy"))
        env = hub_env(server, tmp, TOKEN)

        t0 = time.perf_counter()
        sha256(weights)
        hash_s = time.perf_counter() - t0
        print(f"sha256 verification: {mb:.0f} MB in {hash_s:.2f} s = {mb / hash_s:.0f} MB/s")
        idle = cli(env, "--version")
        print(f"fpoctl start-up (--version): {idle:.2f} s")
        cold = cli(env, "pull", "bench/mlp", "-q")
        print(f"pull, cold: {mb:.0f} MB in {cold:.2f} s = {mb / cold:.0f} MB/s (incl. start-up and verify)")
        warm = cli(env, "pull", "bench/mlp", "-q")
        print(f"pull, warm (nothing to download, verify only): {warm:.2f} s")
        offline = cli({**env, "HF_HUB_OFFLINE": "1"}, "pull", "bench/mlp", "-q")
        print(f"pull, offline from the cache: {offline:.2f} s")

        with Store(f"sqlite:///{tmp / 'home' / 'fpoctl.db'}") as store:
            run = store.create_run(name="bench", task="bench", policy="mlp", config={"lr": 1e-4})
            path = tmp / "home" / "runs" / str(run.id) / "checkpoints" / "step_000001"
            sha = save_checkpoint(path, policy, None, {"step": 1})
            store.add_checkpoint(run.id, 1, str(path), sha, is_best=True)
        dry = cli(env, "push", str(run.id), "--repo", "bench/pushed", "--dry-run")
        print(f"push --dry-run (checkpoint hash, card, curves): {dry:.2f} s")
        pushed = cli(env, "push", str(run.id), "--repo", "bench/pushed")
        print(f"push: {mb:.0f} MB in {pushed:.2f} s = {mb / pushed:.0f} MB/s (regular upload, base64 NDJSON)")
    server.stop()


if __name__ == "__main__":
    main()

"""Start-up benchmark: wall time of `fpoctl --help`, `fpoctl --version` and `fpoctl runs list` (an
empty store in a fresh home) against `python -c pass`, each a whole process with its bytecode
cached, run in turn round by round so that a drift in the machine's speed hits all alike; the
ratios are taken round by round.
Targets (issue 17, an idle machine): --help and --version under 0.3 s, runs list under 0.8 s.

Run: .venv/bin/python bench/startup.py [--rounds 15]   -> bench/results/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "startup.json"
TARGETS_S = {"--help": 0.3, "--version": 0.3, "runs list": 0.8}


def fpoctl_command() -> list[str]:
    """The console script next to this interpreter (what a user runs), else `python -m fpoctl.cli`."""
    script = Path(sys.executable).parent / "fpoctl"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "fpoctl.cli"]


def wall_s(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of one process (its output thrown away; it must succeed)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def measure(rounds: int) -> dict:
    """Every command once per round (after one warm-up round, which also creates the store)."""
    fpoctl = fpoctl_command()
    commands = {"python -c pass": [sys.executable, "-c", "pass"], "--help": [*fpoctl, "--help"],
                "--version": [*fpoctl, "--version"], "runs list": [*fpoctl, "runs", "list"]}
    with tempfile.TemporaryDirectory() as tmp:
        # bytecode cached as on a normal install (in a temporary prefix: the checkout stays clean),
        # even where PYTHONDONTWRITEBYTECODE is set; the warm-up round writes it
        env = {**os.environ, "FPOCTL_HOME": str(Path(tmp) / "home"), "COLUMNS": "120",
               "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        for name in ("FPOCTL_DB", "PYTHONDONTWRITEBYTECODE"):
            env.pop(name, None)
        for cmd in commands.values():
            wall_s(cmd, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name, cmd in commands.items():
                times[name].append(wall_s(cmd, env))
    base = times["python -c pass"]
    out = {}
    for name, values in times.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        out[name] = {"min_s": round(min(values), 4), "median_s": round(statistics.median(values), 4),
                     "ratio_min": round(min(ratios), 2), "ratio_median": round(statistics.median(ratios), 2)}
        if name in TARGETS_S:
            out[name]["target_s"] = TARGETS_S[name]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = measure(args.rounds)
    report = {"what": "wall seconds of whole processes (bytecode cached); ratio = command / `python -c pass` "
                      "of the same round",
              "rounds": args.rounds, "python": platform.python_version(), "cpus": os.cpu_count(),
              "load_avg_1m_before": round(load_before[0], 2),
              "load_avg_1m_after": round(os.getloadavg()[0], 2), "commands": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for name, r in results.items():
        print(f"{name:16} min {r['min_s']:.3f} s  median {r['median_s']:.3f} s  "
              f"x{r['ratio_median']:.1f} of python -c pass" + (f"  (target {r['target_s']} s)"
                                                               if "target_s" in r else ""))
    print(f"load average (1 min) {report['load_avg_1m_before']} before, {report['load_avg_1m_after']} after "
          f"-> {RESULTS}")


if __name__ == "__main__":
    main()

"""Env speed, side by side: one env in-process vs 2 worker processes; LIBERO reset before/after.

Run: .venv/bin/python bench/envs_bench.py [--seconds 20] [--only libero-state,aloha,...]
     .venv/bin/python bench/envs_bench.py --verify-reset [--init-states 5]
Step rates count env steps (random actions in chunks of 5, autoreset included) per wall second.
--verify-reset replays the same actions after a hard and a soft reset for every libero-spatial
task and several init states, and reports whether the trajectories are bit-identical.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from fpoctl.envs import get_task, make_vector_env

CHUNK = 5


def single_rate(make: Callable[[], gym.Env], seconds: float) -> float:
    """Steps per second of one env stepped in this process (after a warm-up)."""
    env = make()
    try:
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        shape = env.action_space.shape
        for _ in range(5):
            env.step(rng.uniform(-1, 1, shape).astype(np.float32))
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, shape).astype(np.float32))
            steps += 1
            if term or trunc:
                env.reset()
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


def vector_rate(task: str, obs_mode: str | None, seconds: float, workers: int = 2, **kwargs) -> float:
    """Env steps per second of `workers` worker processes (chunks of 5, after a warm-up)."""
    spec = get_task(task)
    venv = make_vector_env(spec, workers, obs_mode=obs_mode, seed=0, workers=True, **kwargs)
    try:
        venv.reset(seed=0)
        rng = np.random.default_rng(0)
        dim = venv.single_action_space.shape[0]
        venv.step(rng.uniform(-1, 1, (workers, CHUNK, dim)).astype(np.float32))
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            *_, infos = venv.step(rng.uniform(-1, 1, (workers, CHUNK, dim)).astype(np.float32))
            steps += sum(i["executed"] for i in infos)
        return steps / (time.perf_counter() - start)
    finally:
        venv.close()


def stock_aloha() -> gym.Env:
    """gym-aloha as shipped (renders three 640x480 cameras per step)."""
    import gym_aloha  # noqa: F401  (registers the ids)

    from fpoctl.envs.headless import use_headless_gl

    use_headless_gl()
    return gym.make("gym_aloha/AlohaTransferCube-v0", obs_type="pixels_agent_pos")


def reset_times(obs_mode: str, fast: bool, resets: int) -> tuple[float, float]:
    """(first reset incl. building the sim, mean of the following resets) in seconds."""
    env = get_task("libero-spatial/0").make_env(obs_mode, seed=0, fast_reset=fast)
    try:
        start = time.perf_counter()
        env.reset(seed=0)
        first = time.perf_counter() - start
        times = []
        for i in range(resets):
            start = time.perf_counter()
            env.reset(seed=i + 1)
            times.append(time.perf_counter() - start)
        return first, float(np.mean(times))
    finally:
        env.close()


def verify_reset(init_states: int) -> None:
    """Hard vs soft reset: same init state, same actions -> identical joint trajectories?"""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (30, 7)).astype(np.float32)
    worst = 0.0
    for index in range(10):
        env = get_task(f"libero-spatial/{index}").make_env("state", seed=0)
        env.reset(seed=0)  # builds the simulator
        try:
            diffs = []
            for k in np.linspace(0, 49, init_states).astype(int):
                runs = []
                for hard in (True, False):
                    env.sim_env.env.hard_reset = hard
                    env.reset(seed=int(k), options={"init_state": int(k)})
                    traj = [env.sim_env.sim.data.qpos.copy()]
                    for a in actions:
                        env.step(a)
                        traj.append(env.sim_env.sim.data.qpos.copy())
                    runs.append(np.array(traj))
                diffs.append(float(np.abs(runs[0] - runs[1]).max()))
            worst = max(worst, *diffs)
            print(f"  libero-spatial/{index}: max |hard - soft| over {init_states} init states = "
                  f"{max(diffs):.3g}", flush=True)
        finally:
            env.close()
    verdict = "IS" if worst == 0.0 else "is NOT"
    print(f"soft reset {verdict} bit-identical to the hard reset (max {worst:.3g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    parser.add_argument("--only", default="libero-reset,libero-state,libero-pixels,aloha")
    parser.add_argument("--resets", type=int, default=5)
    parser.add_argument("--verify-reset", action="store_true")
    parser.add_argument("--init-states", type=int, default=5)
    args = parser.parse_args()
    if args.verify_reset:
        verify_reset(args.init_states)
        return
    only = set(args.only.split(","))
    rows: list[tuple[str, str]] = []

    def report(name: str, value: str) -> None:
        rows.append((name, value))
        print(f"{name:<52} {value}", flush=True)

    if "libero-reset" in only:
        for mode in ("state", "pixels"):
            for fast in (False, True):
                first, mean = reset_times(mode, fast, args.resets)
                label = "soft (fast_reset=True)" if fast else "hard (stock robosuite)"
                report(f"LIBERO {mode} reset, {label}", f"{mean:.3f} s (first, with build: {first:.1f} s)")
    if "libero-state" in only:
        spatial = get_task("libero-spatial/0")
        report("LIBERO state, 1 env in-process",
               f"{single_rate(lambda: spatial.make_env('state', seed=0), args.seconds):.1f} steps/s")
        report("LIBERO state, 2 worker processes",
               f"{vector_rate('libero-spatial/0', 'state', args.seconds):.1f} steps/s")
    if "libero-pixels" in only:
        spatial = get_task("libero-spatial/0")
        report("LIBERO pixels 224, 1 env in-process",
               f"{single_rate(lambda: spatial.make_env('pixels', seed=0), args.seconds):.1f} steps/s")
        report("LIBERO pixels 224, 2 worker processes",
               f"{vector_rate('libero-spatial/0', 'pixels', args.seconds):.1f} steps/s")
    if "aloha" in only:
        aloha = get_task("aloha-transfer-cube")
        report("ALOHA stock gym-aloha (3 cameras), 1 env",
               f"{single_rate(stock_aloha, args.seconds):.1f} steps/s")
        report("ALOHA top camera only, 1 env in-process",
               f"{single_rate(lambda: aloha.make_env(seed=0), args.seconds):.1f} steps/s")
        report("ALOHA top camera only, 2 worker processes",
               f"{vector_rate('aloha-transfer-cube', None, args.seconds):.1f} steps/s")
    print("\nsummary (one run, this machine):")
    for name, value in rows:
        print(f"  {name:<52} {value}")


if __name__ == "__main__":
    main()

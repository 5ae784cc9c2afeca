"""Test helper: a store with realistic runs (every metric of shared/DESIGN.md per iteration,
events, checkpoints) at fixed times, and a writer process that appends iterations live.

As a script it is the "trainer" of the live tests and demos:
    python -m tests.seed_store append --db URL --run ID --start 120 --count 30 --delay 0.2
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time

import sqlalchemy as sa

from fpoctl.store import Store
from fpoctl.store.models import Event
from fpoctl.train.config import FinetuneConfig, SFTConfig, as_dict

FROZEN_NOW = 1_767_225_600.0
"""The "now" the snapshot tests freeze (2026-01-01 00:00 UTC); seeded times are relative to it."""

ENV_STEPS_PER_ITER = 2048
SECONDS_PER_ITER = 30.0


def iteration_metrics(it: int, *, rng: random.Random, skill: float = 1.0,
                      critic: str = "q_ensemble") -> dict[str, float]:
    """One iteration's metrics: success rising on a logistic curve (faster with more `skill`),
    an ensemble that agrees more as it trains (a value critic instead: V mean and explained
    variance), a ratio near 1 with rare clipping, 16 episodes an iteration, 50 an evaluation."""
    progress = 1 / (1 + math.exp(-(it * skill - 60) / 18))
    noise = rng.gauss
    success = min(max(0.1 + 0.8 * progress + noise(0, 0.04), 0.0), 1.0)
    q_mean = 0.2 + 0.7 * progress + noise(0, 0.02)
    values = {
        "env/steps_total": float((it + 1) * ENV_STEPS_PER_ITER),
        "rollout/success_rate": success,
        "rollout/return": 10 * success + noise(0, 0.3),
        "rollout/episode_len": 220 - 90 * progress + noise(0, 4),
        "fpo/ratio_mean": 1 + noise(0, 0.004),
        "fpo/ratio_max": 1.05 + abs(noise(0, 0.03)),
        "fpo/clip_frac": abs(0.04 + noise(0, 0.015)),
        "fpo/approx_kl": abs(2e-3 + noise(0, 6e-4)),
        "fpo/cfm_loss": 0.35 - 0.15 * progress + noise(0, 0.01),
        "fpo/policy_loss": -0.01 + noise(0, 0.004),
        "critic/loss": 0.5 * (1 - progress) + 0.05 + abs(noise(0, 0.02)),
        "critic/q_mean": q_mean,
        "critic/q_std": 0.25 * (1 - progress) + 0.03 + abs(noise(0, 0.01)),
        "critic/q_min": q_mean - 0.3 * (1 - progress) - 0.05,
        "perf/env_steps_per_s": 1400 + noise(0, 40),
        "perf/update_s": 2.1 + noise(0, 0.1),
        "perf/gpu_mem_gb": 18.5 + 0.1 * math.sin(it / 7),
        "rollout/episodes": 16.0,
    }
    if critic == "value":
        del values["critic/q_std"], values["critic/q_min"]
        values["critic/explained_variance"] = 0.9 * progress - 0.2 + noise(0, 0.03)
    if it % 10 == 9:
        values["eval/success_rate"] = min(max(0.15 + 0.85 * progress + noise(0, 0.03), 0.0), 1.0)
        values["eval/episodes"] = 50.0
    return values


def write_iterations(store: Store, run_id: int, start: int, count: int, *, seed: int = 0,
                     skill: float = 1.0, started: float | None = None,
                     critic: str = "q_ensemble") -> None:
    """Log iterations start .. start+count-1 through the store's batched writer (`started`: the
    run's start, iteration i is logged SECONDS_PER_ITER * (i + 1) after it; else now)."""
    rng = random.Random(seed * 100_003 + start)
    it = start
    clock = time.time if started is None else lambda: started + SECONDS_PER_ITER * (it + 1)
    with store.metric_writer(run_id, max_rows=20_000, clock=clock) as writer:
        for it in range(start, start + count):
            writer.log(it, iteration_metrics(it, rng=rng, skill=skill, critic=critic))
    store.heartbeat(run_id, step=start + count)


# name, task, policy, stored status, iterations done, total, skill, started (s before now)
RUNS = [
    ("pi0-libero-spatial", "libero-spatial", "pi0", "running", 120, 300, 1.0, 120 * SECONDS_PER_ITER),
    ("mlp-fast-reach", "fast-reach", "mlp", "finished", 200, 200, 1.6, 9 * 3600.0),
    ("pi0-aloha-insertion", "aloha-insertion", "pi0", "lost", 40, 500, 0.7, 6 * 3600.0),
    ("mlp-pendulum", "gym:Pendulum-v1", "mlp", "failed", 12, 100, 1.0, 26 * 3600.0),
    ("pi0-libero-goal", "libero-goal", "pi0", "queued", 0, 300, 1.0, 0.0),
]


def seed_runs(store: Store, now: float = FROZEN_NOW) -> dict[str, int]:
    """Five runs in every state (running, finished, lost, failed, queued); returns name -> id."""
    ids = {}
    store.add_model(alias="pi0", repo="lerobot/pi0_base", commit_sha="0" * 40, path="models/pi0",
                    policy_type="pi0")
    for i, (name, task, policy, status, done, total, skill, ago) in enumerate(RUNS):
        config = as_dict(FinetuneConfig(
            task=task, policy=policy, init="pi0" if policy == "pi0" else None, seed=i,
            iterations=total, critic="q_ensemble", actor_lr=1e-5 if policy == "pi0" else 3e-4,
            critic_lr=1e-4, gamma=0.995, eval_every=10, eval_episodes=50))
        run = store.create_run(name=name, task=task, policy=policy, config=config, seed=i,
                               git_sha="0bf7876a1c2d", total_steps=total)
        ids[name] = run.id
        if status == "queued":
            store.update_run(run.id, created=now - 60)
            continue
        store.set_status(run.id, "running")
        started = now - ago
        write_iterations(store, run.id, 0, done, seed=i, skill=skill, started=started)
        for step in range(50, done + 1, 50):
            store.add_checkpoint(run.id, step, f"runs/{run.id}/ckpt/{step:06d}", "0" * 64,
                                 {"eval/success_rate": 0.5}, is_best=step == done // 50 * 50)
            store.add_event(run.id, f"saved checkpoint at iteration {step}", kind="checkpoint")
        if status == "running":
            store.add_event(run.id, "eval: 50 episodes, success 81%", kind="eval")
            store.add_event(run.id, "ratio_max 1.31 > 1.25 at iteration 97", level="warning",
                            kind="fpo")
        if status in ("finished", "failed"):
            store.set_status(run.id, status, error="CUDA error: out of memory" if status == "failed"
                             else None)
        end = started + done * SECONDS_PER_ITER
        ended = status in ("finished", "failed")
        store.update_run(run.id, created=started - 30, started=started, first_started=started,
                         active_s=end - started if ended else 0.0, pid=None, host=None,
                         finished=end if ended else None,
                         heartbeat=now - 2 if status == "running" else end)
        _space_events(store, run.id, started)
    return ids


def seed_kinds(store: Store, now: float = FROZEN_NOW) -> dict[str, int]:
    """Beside `seed_runs`: a finished SFT run (loss every 50 of 2000 steps, then its evaluation)
    and a finished value-critic fine-tune initialised from it; returns name -> id."""
    cfg = SFTConfig(task="fast-reach", policy="mlp", steps=2000, expert_episodes=40, lr=3e-4)
    sft = store.create_run(name="fast-reach-sft", kind="sft", task=cfg.task, policy=cfg.policy,
                           config=as_dict(cfg), seed=0, git_sha="0bf7876a1c2d", total_steps=cfg.steps)
    started = now - 3 * 3600.0
    store.set_status(sft.id, "running")
    steps = range(cfg.log_every, cfg.steps + 1, cfg.log_every)
    with store.metric_writer(sft.id, clock=lambda: started + 60) as writer:
        for step in steps:
            loss = 0.08 + 0.9 * math.exp(-step / 350) + 0.01 * math.sin(step / 90)
            lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
            writer.log(step, {"sft/loss": loss, "sft/lr": lr})
        writer.log(cfg.steps, {"eval/success_rate": 0.62, "eval/return": 6.1,
                               "eval/episode_len": 141.0, "eval/episodes": 32.0})
    store.heartbeat(sft.id, step=cfg.steps)
    store.add_event(sft.id, f"40 expert episodes, success 100% -> runs/{sft.id}/demos.npz", kind="demos")
    store.add_checkpoint(sft.id, cfg.steps, f"runs/{sft.id}/ckpt/{cfg.steps:06d}", "0" * 64,
                         {"eval/success_rate": 0.62}, is_best=True)
    store.set_status(sft.id, "finished")
    store.update_run(sft.id, created=started - 30, started=started, first_started=started,
                     active_s=240.0, finished=started + 240, heartbeat=started + 240, pid=None)
    _space_events(store, sft.id, started)

    ft = FinetuneConfig(task="fast-reach", policy="mlp", init=str(sft.id), critic="value",
                        iterations=60, seed=3, eval_every=10, eval_episodes=50)
    value = store.create_run(name="mlp-value-reach", task=ft.task, policy=ft.policy,
                             config=as_dict(ft), seed=ft.seed, git_sha="0bf7876a1c2d",
                             total_steps=ft.iterations)
    started = now - 2 * 3600.0
    store.set_status(value.id, "running")
    write_iterations(store, value.id, 0, ft.iterations, seed=7, skill=1.3, started=started,
                     critic="value")
    store.add_checkpoint(value.id, 50, f"runs/{value.id}/ckpt/000050", "0" * 64,
                         {"eval/success_rate": 0.8}, is_best=True)
    store.add_event(value.id, "prior: success 62%", kind="eval")
    store.set_status(value.id, "finished")
    end = started + ft.iterations * SECONDS_PER_ITER
    store.update_run(value.id, created=started - 30, started=started, first_started=started,
                     active_s=end - started, finished=end, heartbeat=end, pid=None)
    _space_events(store, value.id, started)
    return {"fast-reach-sft": sft.id, "mlp-value-reach": value.id}


def _space_events(store: Store, run_id: int, started: float) -> None:
    """Give a run's events fixed times, one minute apart from its start."""
    with store.engine.begin() as conn:
        ids = conn.execute(sa.select(Event.id).where(Event.run_id == run_id).order_by(Event.id))
        for n, (event_id,) in enumerate(ids.all()):
            conn.execute(sa.update(Event).where(Event.id == event_id).values(time=started + 60 * n))


def main(argv: list[str] | None = None) -> None:
    """`append`: a stand-in trainer that logs iterations one by one to a run."""
    parser = argparse.ArgumentParser(description="append iterations to a run, like a trainer")
    parser.add_argument("command", choices=["append"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--run", type=int, required=True)
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args(argv)
    with Store(args.db) as store:
        for it in range(args.start, args.start + args.count):
            write_iterations(store, args.run, it, 1, seed=it)
            print(f"wrote {it} at {time.time():.3f}", flush=True)
            time.sleep(args.delay)


if __name__ == "__main__":
    sys.exit(main())

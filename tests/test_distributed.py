"""Data parallelism under torchrun on the CPU (gloo, 2 processes): the ranks stay identical and
equal a single-process step on the union of their data; a run's metrics come once, from rank 0."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest
import torch

from fpoctl.store import Store
from fpoctl.train import checkpoint as ckpt
from fpoctl.train.distributed import Ranks, combine_metrics
from policies.registry import load_policy
from tests.conftest import run_cli
from tests.dist_learn import make_trainer, params, run_ranks, union
from tests.jobs_helpers import SMALL, ended, start, wait_for


def test_two_ranks_stay_identical_and_match_one_process_on_the_union(tmp_path: Path) -> None:
    run_ranks(2, tmp_path)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    # the reference: one process, rank 0's weights, both ranks' rollouts (same seeds) as one batch
    first, second = make_trainer(Ranks(rank=0)), make_trainer(Ranks(rank=1))
    before = params(first)
    first.learn(union(first.collect(), second.collect()))
    reference = params(first)
    moved = 0
    for name, value in reference.items():
        assert torch.equal(rank0[name], rank1[name]), f"ranks differ in {name}"
        assert torch.allclose(rank0[name].float(), value.float(), rtol=1e-4, atol=1e-6), name
        moved += not torch.equal(before[name], value)
    assert moved > 10  # the step changed the weights, so the comparison means something


def test_metrics_of_ranks_are_summed_or_averaged() -> None:
    out = combine_metrics([{"env/steps_total": 10.0, "fpo/ratio_max": 1.2, "critic/loss": 1.0,
                            "rollout/success_rate": 0.5},
                           {"env/steps_total": 12.0, "fpo/ratio_max": 1.1, "critic/loss": 3.0}])
    assert out == {"env/steps_total": 22.0, "fpo/ratio_max": 1.2, "critic/loss": 2.0,
                   "rollout/success_rate": 0.5}


def test_finetune_with_two_processes_logs_each_metric_once_from_rank_zero(home: Path) -> None:
    proc = run_cli("finetune", "--nproc", "2", "--foreground", "--iterations", "3", "--set", "num_envs=4",
                   "--set", "rollout_chunks=4", "--set", "eval_episodes=4", "--set", "checkpoint_every=2",
                   env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "run 1 finished" in proc.stdout
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as store:
        run = store.get_run(1)
        assert run.status == "finished" and run.config["nproc"] == 2
        rows = store.metrics_since(1)
        counts = Counter((r.step, r.key) for r in rows)
        assert max(counts.values()) == 1  # one row per (step, key): only rank 0 writes
        assert sorted({r.step for r in rows if r.key == "fpo/ratio_mean"}) == [1, 2, 3]
        steps_per_rank = 4 * 4 * 4  # envs x chunks x executed steps, when no episode ends early
        assert store.series(1, "env/steps_total")[0][1] > steps_per_rank  # both ranks' steps
        assert any("2 ranks" in e.message for e in store.events_since(1))
        last = store.checkpoints(1)[-1]
        assert last.step == 3
        ckpt.verify_checkpoint(Path(last.path), last.sha256)
        assert len(ckpt.load_trainer_state(Path(last.path))["ranks"]) == 2  # each rank's RNG
        load_policy(Path(last.path) / "policy")


@pytest.mark.slow
def test_a_dead_rank_fails_the_run_with_the_reason(store: Store) -> None:
    run_id = start("--nproc", "2", "--iterations", "500", *SMALL)
    ranks = wait_for(lambda: [e.message for e in store.events_since(run_id) if e.kind == "ranks"])
    pids = [int(where.split(":")[1]) for where in ranks[0].split("pids ")[1].rstrip(")").split(", ")]
    os.kill(pids[1], signal.SIGKILL)
    run = wait_for(lambda: ended(store, run_id))
    assert run.status == "failed"
    assert "a peer rank died" in run.error or "a rank died" in run.error, run.error


@pytest.mark.slow
def test_a_second_node_joins_the_run_of_node_zero(store: Store) -> None:
    place = ["--nnodes", "2", "--master-addr", "127.0.0.1", "--master-port", "29617"]
    run_id = start(*place, "--node-rank", "0", "--iterations", "3", *SMALL)
    joined = run_cli("finetune", *place, "--node-rank", "1", env={"OMP_NUM_THREADS": "1"})
    assert joined.returncode == 0, joined.stdout[-2000:] + joined.stderr[-2000:]
    assert "joining the run of node 0" in joined.stdout
    run = wait_for(lambda: ended(store, run_id))
    assert run.status == "finished" and len(store.list_runs()) == 1  # node 1 made no run
    assert any("2 ranks" in e.message for e in store.events_since(run_id))

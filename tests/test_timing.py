"""Elapsed time and ETA across stop / resume, `stop --now` and a lost worker, on a fake clock; and
a store made before the timing columns existed upgrades with its runs intact."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from fpoctl.commands.runs import run_summary
from fpoctl.dash.data import run_info
from fpoctl.store import Store, db, elapsed_s, eta_s

T0 = 1_800_000_000.0


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def timed(tmp_path: Path, clock: Clock) -> Store:
    with Store(f"sqlite:///{tmp_path / 'runs.db'}", clock=clock) as store:
        yield store


def iterate(store: Store, clock: Clock, run_id: int, steps: range, seconds_each: float) -> None:
    """Log one metric row and a heartbeat per iteration, `seconds_each` apart."""
    with store.metric_writer(run_id) as writer:
        for step in steps:
            clock.now += seconds_each
            writer.log(step, {"rollout/return": 1.0, "env/steps_total": 100.0 * step})
            store.heartbeat(run_id, step=step)


def test_a_resumed_run_counts_every_attempt_and_estimates_from_its_recent_rate(
        timed: Store, clock: Clock) -> None:
    run = timed.create_run(name="r", total_steps=400)
    timed.set_status(run.id, "running")
    iterate(timed, clock, run.id, range(1, 264), 390 / 263)  # 263 iterations in 6.5 min
    timed.set_status(run.id, "stopped")
    stopped = timed.get_run(run.id)
    assert stopped.active_s == pytest.approx(390) and elapsed_s(stopped, clock.now + 5) == pytest.approx(390)
    assert run_info(stopped, clock.now, {}, {}).eta is None
    assert run_summary(timed, [stopped])[0]["elapsed"] == pytest.approx(390)  # `fpoctl runs list`

    clock.now += 3600  # resumed an hour later: 10 iterations at 1.5 s each
    timed.requeue(run.id)
    timed.set_status(run.id, "running")
    clock.now += 20  # loading the policy
    iterate(timed, clock, run.id, range(264, 274), 1.5)
    clock.now += 0.5
    resumed = timed.get_run(run.id)
    info = run_info(resumed, clock.now, {}, {}, timed.step_times(run.id, since=resumed.started))
    assert info.elapsed == pytest.approx(390 + 20 + 15 + 0.5)  # not the 35 s of this attempt
    assert info.started == T0 and resumed.started == pytest.approx(T0 + 390 + 3600)
    assert info.eta == pytest.approx(127 * 1.5 - 0.5)  # 127 left at 1.5 s each, 0.5 s into one
    assert info.status == "running" and info.step == 273
    # the rate of the first attempt (1.48 s) and the hour stopped play no part
    everything = timed.step_times(run.id, limit=400)
    assert len(everything) == 273 and eta_s(resumed, clock.now, everything) == info.eta

    clock.now += 600  # an iteration that hangs (its heartbeats go on): the estimate keeps the
    timed.heartbeat(run.id)  # whole iterations left after it
    assert eta_s(timed.get_run(run.id), clock.now, timed.step_times(run.id)) == pytest.approx(126 * 1.5)
    timed.set_status(run.id, "finished")
    done = timed.get_run(run.id)
    assert done.active_s == pytest.approx(390 + 20 + 15 + 600.5) and done.first_started == T0


def test_with_one_iteration_this_attempt_the_eta_is_the_mean_over_active_time(
        timed: Store, clock: Clock) -> None:
    run = timed.create_run(name="r", total_steps=100)
    timed.set_status(run.id, "running")
    iterate(timed, clock, run.id, range(1, 41), 2.0)  # 80 s
    timed.set_status(run.id, "stopped")
    clock.now += 7200
    timed.requeue(run.id)
    timed.set_status(run.id, "running")
    iterate(timed, clock, run.id, range(41, 42), 4.0)
    run = timed.get_run(run.id)
    recent = timed.step_times(run.id, since=run.started)
    assert recent == [(clock.now, 41)]
    assert eta_s(run, clock.now, recent) == pytest.approx(84 / 41 * 59)
    assert eta_s(run, clock.now, []) == eta_s(run, clock.now, recent)


def test_stop_now_counts_to_the_kill_and_a_lost_worker_to_its_last_heartbeat(
        timed: Store, clock: Clock) -> None:
    killed = timed.create_run(name="killed", total_steps=50)
    timed.set_status(killed.id, "running")
    iterate(timed, clock, killed.id, range(1, 11), 3.0)
    clock.now += 4  # SIGKILLed mid-iteration; `fpoctl stop --now` marks it stopped
    timed.set_status(killed.id, "stopped")
    assert timed.get_run(killed.id).active_s == pytest.approx(34)

    lost = timed.create_run(name="lost", total_steps=50)
    timed.set_status(lost.id, "running")
    iterate(timed, clock, lost.id, range(1, 6), 10.0)  # last heartbeat 50 s in, then silence
    clock.now += 3 * 3600
    row = timed.get_run(lost.id)
    assert elapsed_s(row, clock.now) == pytest.approx(50)  # judged by the stale heartbeat
    assert elapsed_s(row, clock.now, alive=False) == pytest.approx(50)
    assert eta_s(row, clock.now, timed.step_times(lost.id)) is None
    timed.requeue(lost.id)  # `fpoctl resume` of the lost run
    timed.set_status(lost.id, "running")
    clock.now += 5
    row = timed.get_run(lost.id)
    assert row.active_s == pytest.approx(50) and elapsed_s(row, clock.now) == pytest.approx(55)


def test_a_status_change_clears_the_phase(timed: Store) -> None:
    run = timed.create_run(name="r", total_steps=5)
    timed.set_status(run.id, "running")
    timed.update_run(run.id, phase="evaluating the prior 3/8 episodes (2.1/s)")
    assert run_info(timed.get_run(run.id), timed.clock(), {}, {}).phase.startswith("evaluating")
    timed.set_status(run.id, "failed", error="boom")
    assert timed.get_run(run.id).phase is None


def test_a_store_at_revision_0001_upgrades_with_its_runs_intact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine, "0001")
    row = dict(kind="finetune", task="fast-reach", policy="mlp", config="{}", step=0, created=T0)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO runs (name, kind, status, task, policy, config, step, created, started, "
            "finished, heartbeat, total_steps) VALUES (:name, :kind, :status, :task, :policy, "
            ":config, :step, :created, :started, :finished, :heartbeat, 100)"),
            [{**row, "name": "done", "status": "finished", "started": T0 + 10, "finished": T0 + 400,
              "heartbeat": T0 + 400},
             {**row, "name": "lost", "status": "running", "started": T0 + 20, "finished": None,
              "heartbeat": T0 + 80},
             {**row, "name": "new", "status": "queued", "started": None, "finished": None,
              "heartbeat": None}])
    engine.dispose()
    with Store(url) as store:
        assert db.current_revision(store.engine) == db.head_revision()
        done, lost, new = (store.get_run(n) for n in ("done", "lost", "new"))
    assert (done.status, done.started, done.finished, done.task) == ("finished", T0 + 10, T0 + 400,
                                                                      "fast-reach")
    assert (done.active_s, done.first_started) == (390.0, T0 + 10)
    assert elapsed_s(done, T0 + 10_000) == 390.0 and elapsed_s(lost, T0 + 10_000) == 60.0
    assert (lost.active_s, lost.first_started, new.active_s, new.first_started) == (0.0, T0 + 20,
                                                                                     0.0, None)
    assert elapsed_s(new, T0) is None and new.phase is None

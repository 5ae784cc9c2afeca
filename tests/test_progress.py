"""Progress that shows itself: timestamped lines off a terminal (one per iteration with the recent
rate and ETA, phases as k/N with a rate, throttled), the run's phase in the store, the terminal
bar's phase line, and what a foreground job and an SFT job print when not on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from fpoctl.commands.report import Bar
from fpoctl.settings import Settings
from fpoctl.store import Store
from fpoctl.train.config import SFTConfig
from fpoctl.train.progress import JobProgress, LogLines
from fpoctl.train.sft_job import sft
from tests.conftest import run_cli
from tests.jobs_helpers import SMALL, STAMP
from tests.test_timing import T0, Clock


def test_log_lines_stamp_every_line_with_the_recent_rate_and_throttle_phases() -> None:
    clock, lines = Clock(T0), []
    out = LogLines("iter", write=lines.append, clock=clock, every=10.0)
    for step in range(1, 5):
        clock.now += 2.0
        out(step, 10, {"rollout/success_rate": 0.5, "rollout/return": 1.25})
    assert all(STAMP.match(line) for line in lines)
    text = [line[20:] for line in lines]
    assert text[0] == "iter 1/10  success 50%  return 1.25"  # no rate from one point
    assert text[3] == "iter 4/10  0.5 iter/s  ETA 12s  success 50%  return 1.25"
    lines.clear()
    for done, dt in ((0, 0.0), (1, 1.0), (2, 1.0), (3, 9.0), (4, 1.0), (5, 1.0)):
        clock.now += dt
        out.phase(f"evaluating: {done}/5 episodes", done, 5)
    out.note("=== resumed at iteration 4/10")
    assert [line[20:] for line in lines] == ["evaluating: 0/5 episodes",  # the first,
                                             "evaluating: 3/5 episodes",  # 10 s later,
                                             "evaluating: 5/5 episodes",  # the last
                                             "=== resumed at iteration 4/10"]


def test_the_runs_phase_is_set_at_most_once_a_second_and_ends_with_the_phase(store: Store) -> None:
    clock, lines = Clock(T0), []
    run = store.create_run(name="r", total_steps=10)
    store.set_status(run.id, "running")
    report = JobProgress(store, run.id, LogLines(write=lines.append, clock=clock), clock=clock)
    with report.evaluation("evaluating the prior") as episodes:
        assert store.get_run(run.id).phase == "evaluating the prior"
        clock.now += 2.0
        episodes("fast-goal", 1, 1, 1, 8)
        assert store.get_run(run.id).phase == "evaluating the prior: 1/8 episodes (0.5 episodes/s)"
        clock.now += 0.5
        episodes("fast-goal", 1, 1, 2, 8)  # within the second: not written
        assert store.get_run(run.id).phase.startswith("evaluating the prior: 1/8")
        clock.now += 1.5
        episodes("fast-goal", 1, 1, 8, 8)
        row = store.get_run(run.id)
        assert row.phase == "evaluating the prior: 8/8 episodes (2 episodes/s)"
        assert row.heartbeat == clock.now  # a phase's news is a life sign
    assert store.get_run(run.id).phase is None
    with report.evaluation("final evaluation") as episodes:
        clock.now += 50.0
        episodes("libero-spatial/2", 3, 10, 5, 50)
        assert store.get_run(run.id).phase == ("final evaluation: 105/500 episodes (2.1 episodes/s), "
                                               "task 3/10")
    report.phase("writing checkpoint step 3")
    report.step(3, 10, {})
    assert store.get_run(run.id).phase is None
    assert any(line.endswith("iter 3/10") for line in lines)
    silent = JobProgress(None, run.id, LogLines(write=lines.append))  # another rank
    count = len(lines)
    silent.phase("evaluating the prior", 1, 8, "episodes")
    silent.step(4, 10, {})
    assert len(lines) == count


def test_the_terminal_bar_shows_the_phase_under_the_iterations() -> None:
    out = Console(file=io.StringIO(), force_terminal=True, width=160, record=True)
    bar = Bar("FPO", "iter", out)
    bar(1, 10, {"env/steps_total": 2048.0, "rollout/success_rate": 0.5})
    bar.phase("evaluating at iteration 2/10: 3/8 episodes (1.4 episodes/s)", 3, 8)
    bar.note("=== resumed at iteration 1/10")
    bar.close()
    shown = out.export_text()
    assert "evaluating at iteration 2/10: 3/8 episodes (1.4 episodes/s)" in shown
    assert "iter 1/10 env steps 2,048 · success 50%" in shown and "=== resumed at iteration 1/10" in shown


def test_a_foreground_job_off_a_terminal_prints_a_timestamped_line_per_iteration_and_phase(
        settings: Settings) -> None:
    proc = run_cli("finetune", "--foreground", "--iterations", "3", "--set", "eval_every=2", *SMALL)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    text = [line[20:] for line in lines if STAMP.match(line)]
    assert [t.split("  ")[0] for t in text if t.startswith("iter ")] == ["iter 1/3", "iter 2/3",
                                                                          "iter 3/3"]
    for phase in ("evaluating the prior: 4/4 episodes (", "evaluating at iteration 2/3: 4/4 episodes (",
                  "final evaluation: 4/4 episodes (", "writing checkpoint step 3: done in"):
        assert any(t.startswith(phase) for t in text), (phase, text)
    assert "run 1 finished" in proc.stdout


def test_sft_shows_demo_collection_its_steps_and_the_final_evaluation(settings: Settings) -> None:
    lines: list[str] = []
    cfg = SFTConfig(expert_episodes=3, steps=20, log_every=10, eval_episodes=4, num_envs=2, hidden=32)
    result = sft(settings, cfg, progress=LogLines("step", write=lines.append))
    assert result.status == "finished"
    text = [line[20:] for line in lines]
    assert all(STAMP.match(line) for line in lines)
    for shown in ("collecting expert demos: 3/3 episodes (", "step 10/20  loss", "step 20/20 ",
                  "final evaluation: 4/4 episodes (", "writing the checkpoint: done in"):
        assert any(t.startswith(shown) for t in text), (shown, text)
    with Store(settings.db_url) as store:
        assert store.get_run(result.run_id).phase is None

"""`fpoctl runs show` tells where a run came from and what it changed: its config overrides, its
init chain, prior -> best -> last evaluation success, and the checkpoint each evaluation used;
`runs list --status X` with no match says so. A real store, the real CLI in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from fpoctl.store import Store
from fpoctl.train.config import FinetuneConfig, SFTConfig, as_dict
from fpoctl.train.lineage import eval_checkpoint
from tests.conftest import run_cli


def seed(home: Path) -> tuple[int, int]:
    """An SFT prior and a 20-iteration fine-tune from it, with checkpoints and two evaluations."""
    home.mkdir(parents=True)
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as s:
        prior = s.create_run(name="goal-sft", kind="sft", config=as_dict(SFTConfig(steps=50)))
        ft = s.create_run(name="goal-fpo", kind="finetune", total_steps=20,
                          config=as_dict(FinetuneConfig(init="goal-sft", iterations=20, actor_lr=1e-4)))
        with s.metric_writer(ft.id) as w:
            for step, value in ((0, 0.4), (10, 0.9), (20, 0.7)):
                w.log(step, {"eval/success_rate": value})
        ckpts = home / "runs" / str(ft.id) / "checkpoints"
        s.add_checkpoint(ft.id, 10, str(ckpts / "step_000010"), "x", is_best=True)
        s.add_checkpoint(ft.id, 20, str(ckpts / "step_000020"), "y")
        for step, rate in ((10, 0.85), (20, 0.75)):
            s.add_evaluation(run_id=ft.id, source=str(ft.id), task="fast-goal", episodes=20,
                             success_rate=rate, mean_return=0.0,
                             details={"folder": str(ckpts / f"step_{step:06d}" / "policy")})
        s.set_status(ft.id, "finished")
    return prior.id, ft.id


def test_runs_show_prints_overrides_lineage_the_success_arc_and_each_evals_checkpoint(home: Path) -> None:
    prior, ft = seed(home)
    out = run_cli("runs", "show", str(ft))
    assert out.returncode == 0, out.stderr
    lines = [line.strip() for line in out.stdout.splitlines()]
    assert "config: init=goal-sft, iterations=20, actor_lr=0.0001" in lines
    assert f"from: run {prior} goal-sft (sft)" in lines
    assert "eval success: prior 40% -> best 90% -> last 70%" in lines
    evals = [line for line in lines if line.startswith("eval ") and " on fast-goal" in line]
    assert len(evals) == 2 and evals[0].endswith("checkpoint step 20 (final weights)")
    assert evals[1].endswith("checkpoint step 10 (best)")
    data = json.loads(run_cli("runs", "show", str(ft), "--json").stdout)
    assert data["overrides"] == {"init": "goal-sft", "iterations": 20, "actor_lr": 1e-4}
    assert data["lineage"] == [f"run {prior} goal-sft (sft)"]
    assert data["success_arc"] == {"prior": 0.4, "best": 0.9, "last": 0.7}
    assert [e["checkpoint"]["step"] for e in data["evaluations"]] == [20, 10]
    shown = run_cli("runs", "show", str(prior)).stdout
    assert "config: steps=50" in shown and "from:" not in shown


def test_the_checkpoint_of_an_evaluation_that_was_removed_or_not_recorded() -> None:
    assert eval_checkpoint({}, []).label == "not recorded"
    gone = eval_checkpoint({"folder": "/h/runs/3/checkpoints/step_000040/policy"}, [])
    assert (gone.step, gone.label) == (40, "step 40 (since removed)")
    assert eval_checkpoint({"folder": "/models/pi0"}, []).label == "/models/pi0"


def test_runs_list_with_a_status_nobody_has_says_so(home: Path) -> None:
    seed(home)
    out = run_cli("runs", "list", "--status", "running")
    assert out.returncode == 0 and out.stdout.strip() == "No runs with status running."
    out = run_cli("runs", "list", "--status", "runing")
    assert out.returncode == 0 and out.stdout.strip() == (
        "No runs with status runing (statuses: queued, running, finished, failed, stopped, lost).")
    assert json.loads(run_cli("runs", "list", "--status", "running", "--json").stdout) == []

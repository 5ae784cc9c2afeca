"""A job started from a run inherits what that run was trained with (task, obs_mode, chunk, sizes)
unless the user sets it, and says so; a task of another family or another obs_mode is one line
before a run exists; `--recipe NAME` lies beneath the user's values; `sft`/`finetune` `--json`
and `-q` print the result for scripts. The CLI runs in this process, over a real store."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from fpoctl.store import Store
from fpoctl.train.configure import configure
from fpoctl.train.recipes import RECIPES
from tests.conftest import require
from tests.test_bad_input import run_main as cli

PRIOR = ["sft", "--task", "fast-goal", "--expert", "3", "--steps", "20", "--set", "horizon=8",
         "--set", "exec_steps=8", "--set", "hidden=16", "--set", "eval_episodes=4", "--set", "num_envs=4",
         "-q"]
TINY_FPO = ["--iterations", "1", "--set", "num_envs=2", "--set", "rollout_chunks=2", "--set",
            "eval_episodes=2", "--set", "minibatch_size=4", "--set", "update_epochs=1", "--set",
            "critic_epochs=1"]


def store_of(home: Path) -> Store:
    return Store(f"sqlite:///{home / 'fpoctl.db'}")


@pytest.fixture
def prior(home: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """An SFT run on fast-goal with 8-step chunks, 8 executed, width 16; its id (printed by -q)."""
    code, out, err = cli(PRIOR, capsys)
    assert code == 0, err
    assert out.strip().isdigit()
    return out.strip()


def shown(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    code, out, err = cli([*args, "--show-config"], capsys)
    assert code == 0 and not err, err
    return tomllib.loads(out), out


def test_finetune_from_a_run_inherits_its_task_chunk_and_sizes_and_says_so(
        prior: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, text = shown(["finetune", "--init", prior], capsys)
    assert (cfg["task"], cfg["horizon"], cfg["exec_steps"], cfg["hidden"], cfg["policy"]) == \
        ("fast-goal", 8, 8, 16, "mlp")
    assert f"# inherited from run {prior}: horizon=8, hidden=16, exec_steps=8\n" in text
    cfg, text = shown(["finetune", "--init", prior, "--set", "exec_steps=4", "--task", "fast-goal"], capsys)
    assert (cfg["exec_steps"], cfg["horizon"]) == (4, 8)  # the user's value wins, and is not "inherited"
    assert f"# inherited from run {prior}: horizon=8, hidden=16\n" in text


def test_a_config_file_wins_over_the_inherited_values(prior: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "ft.toml"
    file.write_text(f'init = "{prior}"\nhorizon = 4\n', encoding="utf-8")
    cfg, _ = shown(["finetune", "--config", str(file)], capsys)
    assert (cfg["horizon"], cfg["exec_steps"]) == (4, 8)


def test_an_inherited_config_shown_as_toml_reads_back_to_the_same_config(
        prior: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, text = shown(["finetune", "--init", prior, "--iterations", "3"], capsys)
    file = tmp_path / "ft.toml"
    file.write_text(text, encoding="utf-8")
    again, _ = shown(["finetune", "--config", str(file)], capsys)
    assert again == cfg and again["horizon"] == 8


def test_the_inherited_config_trains_and_is_stored(prior: str, home: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["finetune", "--foreground", "--init", prior, *TINY_FPO], capsys)
    assert code == 0, err
    assert f"inherited from run {prior}: horizon=8, hidden=16, exec_steps=8" in out
    with store_of(home) as store:
        run = store.list_runs()[0]
        assert run.status == "finished" and run.task == "fast-goal"
        assert (run.config["horizon"], run.config["exec_steps"], run.config["hidden"]) == (8, 8, 16)


def test_a_task_of_another_family_is_one_line_before_a_run_exists(
        prior: str, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["finetune", "--task", "fast-bandit", "--init", prior, *TINY_FPO], capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith(f"error: run {prior} was trained on fast-goal; its policy does not fit task "
                          "fast-bandit")
    with store_of(home) as store:
        assert [r.id for r in store.list_runs()] == [int(prior)]


def test_inheritance_reads_the_stored_run_and_a_checkpoint_folder(prior: str, home: Path) -> None:
    with store_of(home) as store:
        folder = Path(store.checkpoints(int(prior))[-1].path)
    made = configure("finetune", {"init": prior}, store=lambda: store_of(home))
    assert made.source == f"run {prior}" and made.config.horizon == 8
    made = configure("finetune", {"init": str(folder)}, store=lambda: store_of(home))
    assert made.source == f"folder {folder}" and made.inherited == {"horizon": 8, "hidden": 16,
                                                                    "exec_steps": 8}
    assert configure("finetune", {}, store=lambda: store_of(home)).inherited == {}


def test_an_sft_from_a_run_inherits_too(prior: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, text = shown(["sft", "--policy", prior], capsys)
    assert (cfg["horizon"], cfg["exec_steps"], cfg["policy"]) == (8, 8, prior)
    assert f"# inherited from run {prior}: horizon=8, hidden=16, exec_steps=8" in text


def test_a_recipe_lies_beneath_the_users_values(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, _ = shown(["finetune", "--recipe", "fast-goal"], capsys)
    assert all(cfg[k] == v for k, v in RECIPES["fast-goal"].finetune.items())
    cfg, _ = shown(["finetune", "--recipe", "fast-goal", "--iterations", "5", "--set", "explore_scale=0.1"],
                   capsys)
    assert (cfg["iterations"], cfg["explore_scale"], cfg["eval_every"]) == (5, 0.1, 10)
    cfg, _ = shown(["sft", "--recipe", "libero-state", "--task", "libero-spatial/0"], capsys)
    assert all(cfg[k] == v for k, v in RECIPES["libero-state"].sft.items())
    code, _, err = cli(["sft", "--recipe", "nope"], capsys)
    assert code == 1 and err == f"error: unknown recipe 'nope'; known: {', '.join(RECIPES)}\n"


def test_sft_and_finetune_print_json_and_quiet_results(prior: str, home: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli([*PRIOR[:-1], "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "finished" and result["run_id"] == int(prior) + 1
    assert "eval/success_rate" in result["after"] and result["checkpoint"]
    code, out, err = cli(["finetune", "--foreground", "--init", prior, *TINY_FPO, "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)  # the whole of stdout: no progress bar, no summary, no note
    assert result["status"] == "finished" and "eval/success_rate" in result["before"]
    code, out, err = cli(["finetune", "--foreground", "--init", prior, *TINY_FPO, "-q"], capsys)
    assert code == 0 and out == f"{result['run_id'] + 1}\n", (out, err)
    with store_of(home) as store:  # one more iteration to go: a resume in this process
        store.update_run(result["run_id"], total_steps=2,
                         config={**store.get_run(result["run_id"]).config, "iterations": 2})
    code, out, err = cli(["resume", str(result["run_id"]), "--foreground", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["status"] == "finished"


@pytest.mark.sim
def test_finetune_on_libero_from_a_state_mode_prior_trains(home: Path, capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    """Issue 17: `finetune --task libero-spatial/0 --init 3` made a failed run (the fine-tune built
    pixel observations for a state-mode prior). Now it inherits obs_mode and trains."""
    require("libero")
    code, out, err = cli(["sft", "--task", "libero-spatial/0", "--set", "obs_mode=state", "--expert", "1",
                          "--steps", "5", "--set", "eval_episodes=1", "--set", "num_envs=1", "--set",
                          "horizon=8", "--set", "exec_steps=8", "--set", "hidden=32", "-q"], capsys)
    assert code == 0, err
    prior = out.strip()
    code, _, err = cli(["finetune", "--task", "libero-spatial/0", "--init", prior, "--set",
                        "obs_mode=pixels"], capsys)
    assert code == 1 and "trained on state observations, this job has obs_mode=pixels" in err
    code, out, err = cli(["finetune", "--foreground", "--task", "libero-spatial/0", "--init", prior,
                          "--iterations", "1", "--set", "num_envs=1", "--set", "rollout_chunks=2",
                          "--set", "eval_episodes=1", "--set", "minibatch_size=2"], capsys)
    assert code == 0, err
    assert f"inherited from run {prior}: obs_mode=state, horizon=8, hidden=32, exec_steps=8" in out
    with store_of(home) as store:
        assert [(r.status, r.config["obs_mode"]) for r in store.list_runs()] == \
            [("finished", "state"), ("finished", "state")]

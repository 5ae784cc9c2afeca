"""`fpoctl finetune|sft --show-config` prints TOML that `--config` reads back to the same resolved
config: options, `--set` overrides, dict- and list-valued keys, inf, odd strings; None fields are
commented out. The CLI runs in this process, as the console script calls it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fpoctl.train.config import FinetuneConfig, SFTConfig, as_dict, resolve, to_toml
from tests.test_bad_input import run_main

SETS = {
    "finetune": ["actor_lr=1e-5", 'env_kwargs={"max_steps": 50, "odd key": "a \\"b\\""}', "clip_eps=Infinity",
                 "explore_steps=[0, 2]", "gpus=[0]", "norm_adv=false", "target_kl=0.02"],
    "sft": ["lr=0.0005", "horizon=8", 'env_kwargs={"max_steps": 40}', "expert_noise=0.3"],
}
OPTIONS = {  # CLI option -> (config key, value)
    "finetune": {"--task": ("task", "fast-goal"), "--iterations": ("iterations", 7), "--seed": ("seed", 3)},
    "sft": {"--task": ("task", "fast-goal"), "--expert": ("expert_episodes", 5), "--steps": ("steps", 30)},
}
CLASSES = {"finetune": FinetuneConfig, "sft": SFTConfig}


def cli_args(command: str) -> list[str]:
    """The command's options and `--set` overrides as CLI arguments."""
    options = [str(a) for option, (_, value) in OPTIONS[command].items() for a in (option, value)]
    return options + [a for item in SETS[command] for a in ("--set", item)]


def show(command: str, args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run_main([command, *args, "--show-config"], capsys)
    assert code == 0 and not err, err
    return out


@pytest.mark.parametrize("command", ["finetune", "sft"])
def test_show_config_reads_back_to_the_same_config(command: str, home: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cls = CLASSES[command]
    expected = resolve(cls, None, SETS[command], **dict(OPTIONS[command].values()))
    assert expected != cls()
    text = show(command, cli_args(command), capsys)
    assert tomllib.loads(text)["env_kwargs"] == expected.env_kwargs  # valid TOML, dicts as tables
    file = tmp_path / "run.toml"
    file.write_text(text, encoding="utf-8")
    assert resolve(cls, file) == expected
    assert show(command, ["--config", str(file)], capsys) == text


def test_options_and_overrides_still_win_over_the_file(home: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "ft.toml"
    file.write_text(show("finetune", cli_args("finetune"), capsys), encoding="utf-8")
    text = show("finetune", ["--config", str(file), "--iterations", "9", "--set", "gamma=0.9"], capsys)
    cfg = tomllib.loads(text)
    assert (cfg["iterations"], cfg["gamma"], cfg["seed"], cfg["clip_eps"], cfg["explore_steps"]) == \
        (9, 0.9, 3, float("inf"), [0, 2])


def test_none_fields_are_commented_out_and_docs_are_comments() -> None:
    text = to_toml(FinetuneConfig(), "finetune")
    data = tomllib.loads(text)
    assert "init" not in data and "obs_mode" not in data and "target_kl" not in data
    assert "# init = (not set)" in text.splitlines()
    assert "# Task name (`fpoctl tasks`)." in text.splitlines()
    assert set(data) == {k for k, v in as_dict(FinetuneConfig()).items() if v is not None}


def test_strings_that_need_escapes_survive(tmp_path: Path) -> None:
    odd = 'quote " backslash \\ tab \t newline \n del \x7f bell \x07 unicode é ✓ 🙂'
    cfg = FinetuneConfig(tokenizer=odd, env_kwargs={"nested": {"list": [1, 2.5, "x"]}, "": True})
    file = tmp_path / "odd.toml"
    file.write_text(to_toml(cfg, "finetune"), encoding="utf-8")
    assert as_dict(resolve(FinetuneConfig, file)) == as_dict(cfg)


def test_a_value_holding_null_is_commented_with_the_reason() -> None:
    text = to_toml(FinetuneConfig(env_kwargs={"max_steps": None}), "finetune")
    assert "env_kwargs" not in tomllib.loads(text)
    assert '# env_kwargs = {"max_steps": null}  (holds null, which TOML cannot write: use --set)' in text

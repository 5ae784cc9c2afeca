"""Bad input fails before a run exists (issue 18): a corpus of CLI values, configs, tasks,
checkpoints, store faults, signals and resumes. Each case asserts the exit code, exactly one
`error:` line and no traceback on stderr, and an unchanged store (the same rows in every table,
the same files in the home). The CLI runs in this process (`fpoctl.cli.main`, as the console
script calls it), so the corpus is fast; the signal cases start a real process. Finetune cases
run detached, the default: a launch that fails must fail in the pre-flight, with exit code 1."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from fpoctl.store import Store
from fpoctl.train.config import FinetuneConfig, as_dict
from policies.mlp import MLPFlowConfig, MLPFlowPolicy
from tests.conftest import require


@dataclass(frozen=True)
class Case:
    """One bad input: CLI arguments ({f}: the folder of bad checkpoints, {home}: the home), the
    fragments its error line must hold, and what it needs (environment, packages)."""

    args: tuple[str, ...]
    fragments: tuple[str, ...] = ()
    code: int = 1
    env: dict[str, str | None] = field(default_factory=dict)
    needs: str | None = None
    absent: tuple[str, ...] = ()
    """Fragments the error line must not hold (a hint that does not apply)."""


def case(*args: str, says: str | tuple[str, ...] = (), **kwargs: object) -> Case:
    return Case(args, (says,) if isinstance(says, str) else says, **kwargs)  # type: ignore[arg-type]


GOOD = "{f}/good"
CLI_VALUES = {
    "eval-episodes-0": case("eval", GOOD, "--task", "fast-goal", "--episodes", "0", says="--episodes"),
    "eval-episodes-not-a-number": case("eval", GOOD, "--task", "fast-goal", "--episodes", "abc", code=2,
                                       says=("--episodes", "fpoctl eval --help")),
    "finetune-unknown-option": case("finetune", "--iteration", "3", code=2,
                                    says=("No such option: --iteration", "fpoctl finetune --help")),
    "eval-episodes-neg": case("eval", GOOD, "--task", "fast-goal", "--episodes", "-3", says="--episodes"),
    "eval-num-envs-0": case("eval", GOOD, "--task", "fast-goal", "--num-envs", "0", says="--num-envs"),
    "eval-exec-steps-0": case("eval", GOOD, "--task", "fast-goal", "--exec-steps", "0", says="--exec-steps"),
    "eval-max-steps-0": case("eval", GOOD, "--task", "fast-goal", "--max-steps", "0", says="--max-steps"),
    "eval-seed-neg": case("eval", GOOD, "--task", "fast-goal", "--seed", "-1", says="--seed"),
    "eval-noise": case("eval", GOOD, "--task", "fast-goal", "--noise", "loud", says="--noise"),
    "eval-obs-mode": case("eval", GOOD, "--task", "fast-goal", "--obs-mode", "pixels",
                          says="no observation mode 'pixels'"),
    "eval-device": case("eval", GOOD, "--task", "fast-goal", "--device", "cuda:abc", says="unknown device"),
    "eval-device-mps": case("eval", GOOD, "--task", "fast-goal", "--device", "mps", says="unknown device"),
    "eval-record-state-task": case("eval", GOOD, "--task", "fast-goal", "--record", "{home}/videos",
                                   says="--record needs camera images"),
    "finetune-eval-videos-state-task": case("finetune", "--task", "fast-goal", "--set", "eval_videos=2",
                                            says="eval_videos needs camera images"),
    "finetune-eval-videos-neg": case("finetune", "--set", "eval_videos=-1", says="eval_videos"),
    "finetune-iterations-0": case("finetune", "--iterations", "0", says="iterations must be at least 1"),
    "finetune-iterations-neg": case("finetune", "--iterations", "-5", says="iterations"),
    "finetune-seed-neg": case("finetune", "--seed", "-1", says="seed must be 0 or more"),
    "finetune-nproc-0": case("finetune", "--nproc", "0", says="--nproc"),
    "finetune-nnodes-0": case("finetune", "--nnodes", "0", says="--nnodes"),
    "finetune-node-rank": case("finetune", "--nnodes", "2", "--node-rank", "3", "--master-addr", "h",
                               says="--node-rank"),
    "finetune-master-port": case("finetune", "--master-port", "70000", says="--master-port"),
    "finetune-gpus": case("finetune", "--gpus", "a,b", says="--gpus"),
    "finetune-device-index": case("finetune", "--device", "cuda:99", says="cuda:99"),
    "finetune-device-cuda-abc": case("finetune", "--device", "cuda:abc", says="unknown device"),
    "sft-steps-0": case("sft", "--steps", "0", says="steps must be at least 1"),
    "sft-expert-0": case("sft", "--expert", "0", says="expert_episodes must be at least 1"),
    "logs-lines-neg": case("logs", "1", "-n", "-3", says="--lines"),
    "stop-wait-neg": case("stop", "1", "--wait", "-1", says="--wait"),
    "runs-limit-0": case("runs", "list", "--limit", "0", says="--limit"),
    "runs-limit-neg": case("runs", "list", "--limit", "-2", says="--limit"),
    "demo-seed-neg": case("demo", "--seed", "-1", says="seed must be 0 or more"),
}
CONFIG_VALUES = {
    "set-num-envs-0": case("finetune", "--set", "num_envs=0", says="num_envs must be at least 1"),
    "set-minibatch-neg": case("finetune", "--set", "minibatch_size=-1", says="minibatch_size"),
    "set-exec-steps-0": case("finetune", "--set", "exec_steps=0", says="exec_steps"),
    "set-hidden-neg": case("finetune", "--set", "hidden=-4", says="hidden must be at least 1"),
    "set-horizon-0": case("finetune", "--set", "horizon=0", says="horizon"),
    "set-n-mc-0": case("finetune", "--set", "n_mc=0", says="n_mc"),
    "set-lr-0": case("finetune", "--set", "actor_lr=0", says="actor_lr must be more than 0"),
    "set-lr-nan": case("finetune", "--set", "actor_lr=NaN", says="actor_lr must be a finite number"),
    "set-explore-inf": case("finetune", "--set", "explore_scale=Infinity", says="explore_scale"),
    "set-gamma": case("finetune", "--set", "gamma=1.5", says="gamma must be between 0 and 1"),
    "set-target-kl": case("finetune", "--set", "target_kl=-0.1", says="target_kl"),
    "set-explore-steps": case("finetune", "--set", "explore_steps=[0,99]", says="explore_steps"),
    "set-ratio": case("finetune", "--set", "ratio=avg", says="ratio must be one of"),
    "set-dtype": case("finetune", "--set", "dtype=float16", says="dtype must be one of"),
    "set-shard": case("finetune", "--set", "shard=zero", says="shard must be one of"),
    "set-scope": case("finetune", "--set", "scope=everything", says="scope must be one of"),
    "set-scope-mlp": case("finetune", "--set", "scope=lora", says="does not apply to mlp_flow"),
    "set-type": case("finetune", "--set", "n_mc=abc", says="n_mc must be an integer"),
    "set-unknown": case("finetune", "--set", "nmc=3", says="unknown config key"),
    "set-env-kwargs": case("finetune", "--set", 'env_kwargs={"foo": 1}', says="env_kwargs"),
    "set-obs-mode": case("finetune", "--set", "obs_mode=pixels", says="no observation mode"),
    "set-cpu-threads": case("finetune", "--set", "cpu_threads=-1", says="cpu_threads"),
    "set-policy": case("finetune", "--policy", "transformer", says="unknown policy 'transformer'"),
    "set-pi0-no-tokenizer": case("finetune", "--policy", "pi0-tiny", says="needs a tokenizer"),
    "set-pi0-tokenizer-missing": case("finetune", "--policy", "pi0-tiny", "--set",
                                      "tokenizer={f}/missing.model", says="does not exist"),
    "set-pi0-tokenizer-garbage": case("finetune", "--policy", "pi0-tiny", "--set",
                                      "tokenizer={f}/garbage.model", says="not a SentencePiece model"),
    "sft-log-every-0": case("sft", "--set", "log_every=0", says="log_every"),
    "sft-expert-noise": case("sft", "--set", "expert_noise=-0.1", says="expert_noise"),
    "config-not-utf8": case("finetune", "--config", "{f}/latin1.toml", says="not UTF-8"),
    "config-not-toml": case("finetune", "--config", "{f}/broken.toml", says="cannot read config"),
    "config-missing": case("finetune", "--config", "{f}/nope.toml", says="cannot read config"),
    "config-folder": case("finetune", "--config", "{f}", says="cannot read config"),
    "config-unknown-key": case("finetune", "--config", "{f}/unknown.toml", says="unknown config key"),
    "config-bad-value": case("sft", "--config", "{f}/bad_value.toml", says="lr must be more than 0"),
}
TASKS = {
    "task-typo": case("finetune", "--task", "libero-spatail", says="did you mean libero-spatial"),
    "task-index-neg": case("finetune", "--task", "libero-spatial/-1", says="libero-spatial has tasks 0-9",
                           absent=("did you mean",)),
    "task-index-10": case("finetune", "--task", "libero-spatial/10", says="libero-spatial has tasks 0-9"),
    "task-discrete": case("finetune", "--task", "gym:CartPole-v1", says="Discrete action space"),
    "task-gym-unknown": case("finetune", "--task", "gym:NoSuchEnv-v0", says="unknown Gymnasium id"),
    "task-gym-bare": case("finetune", "--task", "Pendulum-v1", says="did you mean gym:Pendulum-v1"),
    "sft-discrete": case("sft", "--task", "gym:CartPole-v1", says="Discrete action space",
                         absent=("expert",)),
    "sft-no-expert": case("sft", "--task", "gym:Pendulum-v1", says="no scripted expert"),
    "demo-no-recipe": case("demo", "--task", "fast-bandit", says="no recipe"),
    "eval-discrete": case("eval", GOOD, "--task", "gym:CartPole-v1", says="Discrete action space"),
    "libero-config-paths": case("finetune", "--task", "libero-spatial/0", "--set", "obs_mode=state",
                                says="bddl_files", env={"LIBERO_CONFIG_PATH": "{f}/libero"},
                                needs="libero"),
    "glx-headless": case("finetune", "--task", "aloha-insertion", says=("MUJOCO_GL=glx", "MUJOCO_GL=egl"),
                         env={"MUJOCO_GL": "glx", "PYOPENGL_PLATFORM": None, "DISPLAY": None},
                         needs="gym_aloha"),
}
CHECKPOINTS = {f"{cmd}-{name}": case(*args, says=says) for name, says in (
    ("empty", "has no config.json"), ("config-only", "model.safetensors does not exist"),
    ("act", "unknown policy type 'act'"), ("truncated", "corrupt safetensors header"),
    ("garbage", "corrupt safetensors header"), ("wrong-shape", "wrong shape"),
    ("missing-key", "1 missing"), ("extra-key", "1 unexpected"), ("pickle-only", "does not exist"),
    ("hidden-neg", "hidden must be an integer >= 1, got -4"), ("time-dim-odd", "time_dim must be even"),
    ("depth-0", "depth must be an integer >= 1"), ("hidden-text", "hidden must be an integer"),
    ("not-json", "is not valid JSON"), ("json-list", "unknown policy type"),
    ("unknown-field", "unexpected keyword argument"), ("state-file-outside", "outside the policy folder"),
    ("state-file-absolute", "outside the policy folder"), ("meta-garbage", "meta.json"),
) for cmd, args in (
    ("finetune", ("finetune", "--init", f"{{f}}/{name}")),
    ("eval", ("eval", f"{{f}}/{name}", "--task", "fast-goal")),
    ("sft", ("sft", "--policy", f"{{f}}/{name}")),
) if (cmd, name) not in {("sft", "meta-garbage"), ("finetune", "meta-garbage")}}
CHECKPOINTS |= {
    "finetune-init-nothing": case("finetune", "--init", "nope", says="'nope' is neither"),
    "finetune-init-run-without-checkpoint": case("finetune", "--init", "done", says="has no checkpoint"),
}
STORE = {
    "home-under-a-file": case("--home", "{f}/a-file/home", "finetune",
                              says="cannot write to the fpoctl home"),
    "disk-full": case("finetune", says="free on the disk", env={"FAKE_FREE_BYTES": "1000000"}),
    "store-locked": case("finetune", says=("database is locked", "write lock"), env={"FAKE_DB": "locked"}),
    "store-read-only": case("finetune", says="readonly database", env={"FAKE_DB": "readonly"},
                            absent=("lock",)),
    "store-full": case("sft", says="database or disk is full", env={"FAKE_DB": "full"}, absent=("lock",)),
    "store-garbage": case("--db", "sqlite:///{f}/garbage.db", "finetune", says="not an SQLite database"),
    "store-bad-url": case("--db", "nonsense://", "eval", GOOD, "--task", "fast-goal"),
}
RESUMES = {
    "resume-discrete": case("resume", "stopped-discrete", says="Discrete action space"),
    "resume-old-key": case("resume", "stopped-old-key", says="does not know: old_key"),
    "resume-zero-envs": case("resume", "stopped-zero-envs", says="num_envs must be at least 1"),
    "resume-bad-init": case("resume", "stopped-bad-init", says="corrupt safetensors header"),
    "resume-finished": case("resume", "done", says="nothing to resume"),
    "finetune-resume-flag": case("finetune", "--resume", "stopped-discrete", says="Discrete"),
}
CORPUS = {**CLI_VALUES, **CONFIG_VALUES, **TASKS, **CHECKPOINTS, **STORE, **RESUMES}


def _mlp(folder: Path, **config: object) -> Path:
    policy = MLPFlowPolicy(MLPFlowConfig(obs_dim=4, action_dim=2, horizon=4, hidden=16))
    policy.save_pretrained(folder)
    if config:
        raw = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**raw, **config}))
    return folder


def _edit_weights(folder: Path, edit: object) -> None:
    tensors = load_file(str(folder / "model.safetensors"))
    edit(tensors)  # type: ignore[operator]
    save_file(tensors, str(folder / "model.safetensors"))


def _bad_checkpoints(f: Path, tokenizer: Path) -> None:
    """Every folder the checkpoint cases name, beside a good one."""
    from tests.pi0_helpers import tiny_policy

    good = _mlp(f / "good")
    (f / "empty").mkdir()
    (f / "config-only").mkdir()
    shutil.copy(good / "config.json", f / "config-only")
    _mlp(f / "act", type="act")
    weights = (good / "model.safetensors").read_bytes()
    _mlp(f / "truncated").joinpath("model.safetensors").write_bytes(weights[:len(weights) // 2])
    _mlp(f / "garbage").joinpath("model.safetensors").write_bytes(os.urandom(4096))
    _mlp(f / "wrong-shape", hidden=32)
    _edit_weights(_mlp(f / "missing-key"), lambda t: t.pop("net.0.bias"))
    _edit_weights(_mlp(f / "extra-key"), lambda t: t.update(extra=torch.zeros(1)))
    pickle_only = _mlp(f / "pickle-only")
    torch.save(load_file(str(pickle_only / "model.safetensors")), pickle_only / "pytorch_model.bin")
    (pickle_only / "model.safetensors").unlink()
    _mlp(f / "hidden-neg", hidden=-4)
    _mlp(f / "time-dim-odd", time_dim=5)
    _mlp(f / "depth-0", depth=0)
    _mlp(f / "hidden-text", hidden="wide")
    _mlp(f / "not-json").joinpath("config.json").write_text("{not json")
    _mlp(f / "json-list").joinpath("config.json").write_text("[1, 2]")
    _mlp(f / "unknown-field", colour="red")
    pi0 = f / "state-file-outside"
    tiny_policy(tokenizer).save_pretrained(pi0)
    shutil.copytree(pi0, f / "state-file-absolute")
    for name, target in (("state-file-outside", "../outside.safetensors"),
                         ("state-file-absolute", "/etc/hostname")):
        pre = f / name / "policy_preprocessor.json"
        steps = json.loads(pre.read_text())
        for step in steps["steps"]:
            if "state_file" in step:
                step["state_file"] = target
        pre.write_text(json.dumps(steps))
    shutil.copy(pi0 / "model.safetensors", f / "outside.safetensors")
    (f / "meta-garbage").mkdir()
    shutil.copytree(good, f / "meta-garbage" / "policy")
    (f / "meta-garbage" / "meta.json").write_text("[not a checkpoint")


def _other_files(f: Path) -> None:
    (f / "missing.model").unlink(missing_ok=True)
    (f / "garbage.model").write_bytes(os.urandom(256))
    (f / "latin1.toml").write_bytes("task = 'caf\xe9'\n".encode("latin-1"))
    (f / "broken.toml").write_text("iterations = = 3\n")
    (f / "unknown.toml").write_text("colour = 'red'\n")
    (f / "bad_value.toml").write_text("lr = -1.0\n")
    (f / "a-file").write_text("a file where a folder should be")
    (f / "garbage.db").write_bytes(os.urandom(4096))
    (f / "libero").mkdir()
    (f / "libero" / "config.yaml").write_text(f"bddl_files: {f}/nowhere\ninit_states: {f}/nowhere\n")


def _seed_store(home: Path, f: Path) -> None:
    """Runs the job-control cases act on: a finished one, and stopped ones whose stored config a
    resume must refuse."""
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as store:
        for name, status, config in (
                ("done", "finished", as_dict(FinetuneConfig(iterations=1))),
                ("stopped-discrete", "stopped", as_dict(FinetuneConfig(task="gym:CartPole-v1"))),
                ("stopped-old-key", "stopped", {**as_dict(FinetuneConfig()), "old_key": 1}),
                ("stopped-zero-envs", "stopped", {**as_dict(FinetuneConfig()), "num_envs": 0}),
                ("stopped-bad-init", "stopped", as_dict(FinetuneConfig(init=str(f / "garbage"))))):
            run = store.create_run(name=name, config=config, total_steps=config["iterations"])
            store.set_status(run.id, status)
            store.heartbeat(run.id, step=1 if status == "finished" else 0)
            with store.metric_writer(run.id) as writer:
                writer.log(0, {"eval/success_rate": 0.5})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tokenizer: Path) -> tuple[Path, Path]:
    """(home with a seeded store, folder of bad inputs)."""
    root = tmp_path_factory.mktemp("bad-input")
    home, f = root / "home", root / "f"
    home.mkdir()
    f.mkdir()
    _bad_checkpoints(f, tokenizer)
    _other_files(f)
    _seed_store(home, f)
    return home, f


def snapshot(home: Path) -> tuple[object, ...]:
    """Every row of every table, and every file in the home (SQLite's -wal/-shm come and go)."""
    files = sorted(p.relative_to(home).as_posix() for p in home.rglob("*")
                   if p.is_file() and not p.name.endswith(("-wal", "-shm")))
    with sqlite3.connect(home / "fpoctl.db") as conn:
        tables = [t for (t,) in conn.execute("select name from sqlite_master where type = 'table'")]
        rows = {t: conn.execute(f"select * from {t} order by rowid").fetchall() for t in sorted(tables)}
    return files, rows


def _fake_db(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every insert into the store fails as SQLite fails when the disk is full, the file read-only
    or another process holds the write lock."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from fpoctl.store import db

    message = {"full": "database or disk is full", "readonly": "attempt to write a readonly database",
               "locked": "database is locked"}[kind]
    make = db.make_engine

    def failing_engine(url: str) -> Engine:
        engine = make(url)

        def fail(conn, cursor, statement, params, context, executemany) -> None:
            if statement.lstrip().upper().startswith("INSERT"):
                raise sqlite3.OperationalError(message)

        event.listen(engine, "before_cursor_execute", fail)
        return engine

    monkeypatch.setattr(db, "make_engine", failing_engine)


def fill(text: str, f: Path, home: Path) -> str:
    """A case's argument with {f} and {home} filled in."""
    return text.replace("{f}", str(f)).replace("{home}", str(home))


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`fpoctl ARGS` in this process, as the console script runs it: (exit code, stdout, stderr)."""
    from fpoctl import cli

    old = sys.argv
    sys.argv = ["fpoctl", *args]
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main()
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    code = exited.value.code
    return code if isinstance(code, int) else (0 if code is None else 1), out, err


def assert_one_error_line(code: int, out: str, err: str, expected: Case) -> str:
    """The exit code, one `error:` line holding the fragments (and none of `absent`), no traceback."""
    lines = err.strip().splitlines()
    assert code == expected.code, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in out + err and "Exception in thread" not in err
    for fragment in expected.fragments:
        assert fragment in lines[0], lines[0]
    for fragment in expected.absent:
        assert fragment not in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_input_is_one_line_and_leaves_the_store_as_it_was(
        name: str, corpus: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home, f = corpus
    expected = CORPUS[name]
    if expected.needs:
        require(expected.needs)
    monkeypatch.setenv("FPOCTL_HOME", str(home))
    monkeypatch.delenv("FPOCTL_DB", raising=False)
    monkeypatch.setenv("FPOCTL_DB_BUSY_TIMEOUT_S", "1")
    for key, value in expected.env.items():
        if key == "FAKE_FREE_BYTES":
            from fpoctl.train import preflight

            free = shutil.disk_usage(home)._replace(free=int(value or 0))
            monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path, free=free: free)
        elif key == "FAKE_DB":
            _fake_db(str(value), monkeypatch)
        elif value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, fill(value, f, home))
    before = snapshot(home)
    code, out, err = run_main([fill(a, f, home) for a in expected.args], capsys)
    assert_one_error_line(code, out, err, expected)
    assert snapshot(home) == before


def test_the_corpus_covers_every_class_with_sixty_cases_or_more() -> None:
    sizes = {"cli values": len(CLI_VALUES), "config values": len(CONFIG_VALUES), "tasks": len(TASKS),
             "checkpoints": len(CHECKPOINTS), "store": len(STORE), "resumes": len(RESUMES),
             "signals": len(SIGNALS)}
    assert sum(sizes.values()) >= 60 and min(sizes.values()) >= 3, sizes


# --- signals: a Ctrl-C while fpoctl starts up (a real process; SIGINT arrives inside an import) ---

SIGINT_AT_IMPORT = """
import builtins, os, runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a test runner may ignore it)
real, target = builtins.__import__, sys.argv[1]
def hook(name, *args, **kwargs):
    if name == target:
        builtins.__import__ = real
        os.kill(os.getpid(), signal.SIGINT)
    return real(name, *args, **kwargs)
builtins.__import__ = hook
sys.argv = ["fpoctl", *sys.argv[2:]]
runpy.run_module("fpoctl.cli", run_name="__main__", alter_sys=True)
"""
SIGNALS = {
    "cli-imports": ("typer", "runs", "list"),  # the module imports of fpoctl.cli
    "store-imports": ("sqlalchemy", "runs", "list"),  # the store loads inside the command
    "command-imports": ("torch", "finetune", "--iterations", "1"),  # inside the command
    "eval-imports": ("fpoctl.train.eval_job", "eval", "x", "--task", "fast-goal"),
}


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_ctrl_c_while_starting_is_one_line_and_exit_130(name: str, corpus: tuple[Path, Path]) -> None:
    home, _ = corpus
    before = snapshot(home)
    module, *args = SIGNALS[name]
    proc = subprocess.run([sys.executable, "-c", SIGINT_AT_IMPORT, module, *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "FPOCTL_HOME": str(home),
                                                       "COLUMNS": "200"})
    assert_one_error_line(proc.returncode, proc.stdout, proc.stderr,
                          Case((), ("interrupted (Ctrl-C)",), code=130))
    assert snapshot(home) == before


# --- suspicious but legal ------------------------------------------------------------------

def test_nan_weights_are_a_warning_not_an_error(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = _mlp(tmp_path / "nan")
    _edit_weights(folder, lambda t: t["net.0.weight"].__setitem__((0, 0), float("nan")))
    monkeypatch.setenv("FPOCTL_HOME", str(tmp_path / "home"))
    code, out, err = run_main(["eval", str(folder), "--task", "fast-goal", "--episodes", "2"], capsys)
    assert code == 0, err
    assert "warning: the checkpoint's weights hold NaN or inf values in net.0.weight" in out
    assert "error" not in err and "Traceback" not in err


def test_a_killed_env_worker_is_a_warning_event_not_only_a_metric() -> None:
    import signal

    from fpoctl.envs import get_task
    from fpoctl.train.trainer import FPOTrainer
    from policies.registry import make_policy

    cfg = FinetuneConfig(num_envs=2, workers=True, rollout_chunks=2, minibatch_size=8, n_mc=2,
                         update_epochs=1, critic_epochs=1)
    events: list[tuple[str, str, str]] = []
    policy = make_policy("mlp", obs_dim=4, action_dim=2, horizon=4, hidden=16)
    trainer = FPOTrainer(cfg, policy, get_task("fast-goal"), torch.device("cpu"),
                         on_event=lambda *event: events.append(event))
    try:
        trainer.train_iteration()
        os.kill(trainer.venv.pids[1], signal.SIGKILL)
        metrics = trainer.train_iteration()
    finally:
        trainer.close()
    assert metrics["rollout/crashed_episodes"] >= 1
    assert [(level, kind) for level, kind, _ in events] == [("warning", "env")]
    assert "env worker 1 failed and was replaced" in events[0][2]


def test_the_dashboards_resume_key_runs_the_same_pre_flight(corpus: tuple[Path, Path]) -> None:
    from fpoctl.dash.actions import perform
    from fpoctl.errors import FpoctlError
    from fpoctl.settings import Settings

    home, _ = corpus
    before = snapshot(home)
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as store:
        run_id = store.get_run("stopped-discrete").id
    with pytest.raises(FpoctlError, match="Discrete action space"):
        perform("resume", Settings.resolve(home), run_id)
    assert snapshot(home) == before

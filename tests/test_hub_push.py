"""`fpoctl push`: a run's checkpoint (made through the store API, as the trainer will) goes to the
local Hub server through the real huggingface_hub client, and comes back bit-exact with `pull`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from fpoctl.store import Store
from fpoctl.train.checkpoint import save_checkpoint
from policies.mlp import MLPFlowConfig, MLPFlowPolicy
from policies.registry import load_policy
from tests.conftest import run_cli
from tests.hubserver import HubServer, folder_files, hub_env
from tests.test_hub_pull import assert_error

TOKEN = "hf_AliceSecretToken42"


@pytest.fixture
def hub() -> Iterator[HubServer]:
    """A Hub look-alike with one user, alice."""
    server = HubServer().start()
    server.add_user("alice", TOKEN)
    yield server
    server.stop()


def store_of(tmp_path: Path) -> Store:
    """The store the CLI subprocesses of this test use."""
    (tmp_path / "home").mkdir(exist_ok=True)
    return Store(f"sqlite:///{tmp_path / 'home' / 'fpoctl.db'}")


def mlp_policy(seed: int) -> MLPFlowPolicy:
    """A small MLP flow policy with seeded weights."""
    torch.manual_seed(seed)
    return MLPFlowPolicy(MLPFlowConfig(obs_dim=6, action_dim=3, horizon=4, hidden=64, depth=2))


def make_run(tmp_path: Path, *, steps: tuple[int, ...] = (5, 10),
             make_policy: Callable[[int], Any] = mlp_policy) -> int:
    """A finished run with metrics, an evaluation and checkpoints written the way the trainer
    writes them (fpoctl.train.checkpoint); the first step is marked best."""
    with store_of(tmp_path) as store:
        run = store.create_run(
            name="fpo-demo", task="libero-spatial", policy="pi0", seed=3, git_sha="0123456789abcdef",
            status="finished", config={"task": "libero-spatial", "policy": "pi0", "seed": 3,
                                       "fpo": {"actor_lr": 1e-5, "clip_eps": 0.05, "n_mc": 8},
                                       "hub_token": TOKEN, "notes": f"pushed with {TOKEN}"})
        with store.metric_writer(run.id) as w:
            for it in range(11):
                values = {"rollout/success_rate": 0.2 + 0.05 * it, "rollout/return": 10.0 + it,
                          "env/steps_total": 1000.0 * (it + 1)}
                if it % 5 == 0:
                    values["eval/success_rate"] = 0.25 + 0.05 * it
                w.log(it, values)
        for step in steps:
            path = tmp_path / "home" / "runs" / str(run.id) / "checkpoints" / f"step_{step:06d}"
            sha = save_checkpoint(path, make_policy(step), None, {"step": step})
            store.add_checkpoint(run.id, step, str(path), sha, {"eval/success_rate": 0.25 + 0.05 * step},
                                 is_best=step == steps[0])
        store.add_evaluation(run_id=run.id, source="checkpoint 5", task="libero-spatial", episodes=50,
                             success_rate=0.52, mean_return=0.52)
        return run.id


def push(hub: HubServer, tmp_path: Path, *args: str, token: str | None = TOKEN):
    """`fpoctl push ARGS` against `hub`."""
    return run_cli("push", *args, env=hub_env(hub, tmp_path, token))


def test_dry_run_lists_the_upload_and_sends_nothing(hub, tmp_path):
    run_id = make_run(tmp_path)
    proc = push(hub, tmp_path, str(run_id), "--repo", "alice/fpo-mlp", "--dry-run", "--json", token=None)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    names = {f["path"] for f in out["files"]}
    assert names == {"config.json", "model.safetensors", "train_config.json", "README.md",
                     "training_curves.png"}
    assert out["checkpoint_step"] == 5 and out["dry_run"] is True
    assert all(f["size"] > 0 for f in out["files"])
    assert hub.state.log == []


@dataclass
class Pushed:
    """One push of run `run_id` to alice/fpo-mlp, shared by the tests that look at its result."""

    hub: HubServer
    tmp_path: Path
    run_id: int
    proc: subprocess.CompletedProcess[str]

    @property
    def policy_dir(self) -> Path:
        """The pushed checkpoint's policy folder (iteration 5, the best)."""
        return self.tmp_path / "home" / "runs" / str(self.run_id) / "checkpoints" / "step_000005" / "policy"


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushed]:
    """Push a run once (with --json) for the round-trip, card and token tests."""
    server = HubServer().start()
    server.add_user("alice", TOKEN)
    tmp_path = tmp_path_factory.mktemp("pushed")
    run_id = make_run(tmp_path)
    proc = push(server, tmp_path, str(run_id), "--repo", "alice/fpo-mlp", "--json")
    assert proc.returncode == 0, proc.stderr
    yield Pushed(server, tmp_path, run_id, proc)
    server.stop()


def test_push_pull_round_trip_is_bit_exact_and_loads_back(pushed):
    hub, tmp_path = pushed.hub, pushed.tmp_path
    repo = hub.state.repos["alice/fpo-mlp"]
    files = hub.files("alice/fpo-mlp")
    for name, data in folder_files(pushed.policy_dir).items():
        assert files[name] == data, name
    with store_of(tmp_path) as store:
        [record] = store.pushes(pushed.run_id)
        events = [e.message for e in store.events_since(pushed.run_id)]
    assert (record.repo, record.branch, record.commit_sha) == ("alice/fpo-mlp", "main", repo.branches["main"])
    assert record.commit_url.endswith(f"/alice/fpo-mlp/commit/{record.commit_sha}")
    assert json.loads(pushed.proc.stdout)["commit_sha"] == record.commit_sha
    assert any("pushed iteration 5 to alice/fpo-mlp@main" in m for m in events)

    proc = run_cli("pull", "alice/fpo-mlp", "-q", env=hub_env(hub, tmp_path, TOKEN))
    assert proc.returncode == 0, proc.stderr
    pulled = Path(proc.stdout.strip())
    assert folder_files(pulled) == folder_files(pushed.policy_dir)  # bit-exact
    back, original = load_policy(pulled), load_policy(pushed.policy_dir)
    for key, value in original.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    assert json.loads((pulled / "config.json").read_text())["type"] == "mlp_flow"


def test_model_card_train_config_and_curves(pushed):
    files = pushed.hub.files("alice/fpo-mlp")
    readme = files["README.md"].decode()
    _, meta, body = readme.split("---", 2)
    meta = yaml.safe_load(meta)
    assert meta["library_name"] == "lerobot" and meta["pipeline_tag"] == "robotics"
    assert {"robotics", "lerobot", "fpo", "reinforcement-learning", "libero-spatial"} <= set(meta["tags"])
    assert meta["base_model"] == "lerobot/pi0_base"  # the run's policy "pi0" is the built-in alias
    assert "`libero-spatial`" in body
    assert "| 25.0% | 75.0% | 75.0% |" in body  # eval/success_rate first, last, best
    assert "checkpoint at iteration 5 (eval/success_rate 50.0%)" in body
    assert "| libero-spatial | 50 | 52.0% |" in body
    assert "| fpo.actor_lr | `1e-05` |" in body and "| fpo.clip_eps | `0.05` |" in body
    assert "![Training curves](training_curves.png)" in body
    assert files["training_curves.png"].startswith(b"\x89PNG\r\n\x1a\n")
    train_config = json.loads(files["train_config.json"])
    assert train_config["fpo"] == {"actor_lr": 1e-5, "clip_eps": 0.05, "n_mc": 8}
    assert "hub_token" not in train_config and train_config["notes"] == "pushed with <redacted>"


def test_token_never_reaches_store_card_logs_or_uploads(pushed):
    assert TOKEN not in pushed.proc.stdout + pushed.proc.stderr
    assert all(TOKEN.encode() not in body for body in pushed.hub.state.bodies)
    assert all(TOKEN.encode() not in data for data in pushed.hub.files("alice/fpo-mlp").values())
    home = pushed.tmp_path / "home"
    with store_of(pushed.tmp_path) as store:
        config = store.get_run(pushed.run_id).config
        store.update_run(pushed.run_id, config={})  # the test planted it there; the rest must be clean
        with store.engine.connect() as conn:
            conn.exec_driver_sql("VACUUM")  # drop the freed page that still holds it, then
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # move the WAL into the file
        try:
            for f in home.rglob("*"):
                if f.is_file():
                    assert TOKEN.encode() not in f.read_bytes(), f
        finally:
            store.update_run(pushed.run_id, config=config)


def test_pi0_push_pull_keeps_lerobot_layout_and_loads_back(hub, tmp_path):
    from policies.pi0 import Pi0Policy
    from tests.pi0_helpers import tiny_policy, train_tokenizer

    tokenizer = train_tokenizer(tmp_path)
    run_id = make_run(tmp_path, steps=(5,), make_policy=lambda step: tiny_policy(tokenizer, seed=step))
    proc = push(hub, tmp_path, str(run_id), "--repo", "alice/pi0-fpo")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("pull", "alice/pi0-fpo", "-q", env=hub_env(hub, tmp_path, TOKEN))
    assert proc.returncode == 0, proc.stderr
    pulled = Path(proc.stdout.strip())
    source = tmp_path / "home" / "runs" / str(run_id) / "checkpoints" / "step_000005" / "policy"
    assert folder_files(pulled) == folder_files(source)  # bit-exact, tokenizer included
    # What LeRobot reads: config type, file names, each processor step's state_file beside its JSON.
    assert json.loads((pulled / "config.json").read_text())["type"] == "pi0"
    assert {"model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json"} <= set(
        folder_files(pulled))
    state_files = [step["state_file"] for name in ("policy_preprocessor.json", "policy_postprocessor.json")
                   for step in json.loads((pulled / name).read_text())["steps"] if "state_file" in step]
    assert len(state_files) == 2 and all((pulled / f).is_file() for f in state_files)
    back, original = load_policy(pulled), Pi0Policy.from_pretrained(source)
    assert isinstance(back, Pi0Policy) and back.tokenizer is not None
    for key, value in original.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    meta = yaml.safe_load(hub.files("alice/pi0-fpo")["README.md"].decode().split("---")[1])
    assert "pi0" in meta["tags"] and meta["base_model"] == "lerobot/pi0_base"
    # The pulled model fine-tunes by its repo name, with the tokenizer it carries.
    proc = run_cli("finetune", "--foreground", "--init", "alice/pi0-fpo", "--task", "fast-goal",
                   "--iterations", "1",
                   *[f"--set={kv}" for kv in ("num_envs=2", "rollout_chunks=2", "eval_episodes=2",
                                              "n_mc=2", "minibatch_size=4")],
                   env=hub_env(hub, tmp_path, TOKEN))
    assert proc.returncode == 0, proc.stderr
    assert "finished" in proc.stdout


@pytest.mark.slow
def test_branch_private_and_checkpoint_choice(hub, tmp_path):
    run_id = make_run(tmp_path)
    proc = push(hub, tmp_path, str(run_id), "--repo", "alice/fpo-private", "--private", "--branch", "exp",
                "--checkpoint", "10")
    assert proc.returncode == 0, proc.stderr
    assert "to alice/fpo-private@exp" in proc.stdout and "model.safetensors" in proc.stdout
    assert f"pushed {hub.url}/alice/fpo-private/commit/" in proc.stdout
    repo = hub.state.repos["alice/fpo-private"]
    assert repo.private
    ckpt10 = tmp_path / "home" / "runs" / str(run_id) / "checkpoints" / "step_000010" / "policy"
    exp = hub.files("alice/fpo-private", "exp")
    assert exp["model.safetensors"] == (ckpt10 / "model.safetensors").read_bytes()
    assert "model.safetensors" not in hub.files("alice/fpo-private", "main")
    proc = push(hub, tmp_path, str(run_id), "--repo", "alice/fpo-private", "--checkpoint", "last", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["checkpoint_step"] == 10


def test_push_errors(hub, tmp_path):
    bare = make_run(tmp_path, steps=())
    assert_error(push(hub, tmp_path, str(bare), "--repo", "alice/x"), "has no checkpoint yet")
    run_id = make_run(tmp_path)
    assert_error(push(hub, tmp_path, str(run_id), "--repo", "alice/x", "--checkpoint", "7"),
                 "no checkpoint at iteration 7", "5, 10")
    assert_error(push(hub, tmp_path, "nope", "--repo", "alice/x"), "no run 'nope'")
    assert_error(push(hub, tmp_path, str(run_id), "--repo", "not a repo"), "not a valid repo id")
    assert_error(push(hub, tmp_path, str(run_id), "--repo", "alice/x", token=None), "needs a token",
                 "hf auth login")
    assert_error(push(hub, tmp_path, str(run_id), "--repo", "alice/x", token="hf_bad"), "rejected your token")
    with store_of(tmp_path) as store:
        assert store.pushes() == []


@pytest.mark.slow
def test_push_refuses_foreign_namespaces_and_corrupt_checkpoints(hub, tmp_path):
    run_id = make_run(tmp_path)
    assert_error(push(hub, tmp_path, str(run_id), "--repo", "bob/x"), "refused", "write access")
    weights = tmp_path / "home" / "runs" / str(run_id) / "checkpoints" / "step_000005" / "policy"
    weights = weights / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    assert_error(push(hub, tmp_path, str(run_id), "--repo", "alice/x"), "model.safetensors is corrupt")
    with store_of(tmp_path) as store:
        assert store.pushes() == []

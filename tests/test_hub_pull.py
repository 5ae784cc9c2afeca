"""`fpoctl pull` and `fpoctl models`: the real huggingface_hub client against the local Hub server
(tests/hubserver.py), the real CLI in a subprocess, the real store."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fpoctl.store import Store
from policies.registry import load_policy
from tests.conftest import run_cli
from tests.hubserver import Fault, HubServer, folder_files, hub_env, policy_folder

POLICY_NAMES = {
    "config.json", "model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json",
    "policy_preprocessor_step_2_normalizer_processor.safetensors",
    "policy_postprocessor_step_0_unnormalizer_processor.safetensors",
}


@pytest.fixture
def hub() -> Iterator[HubServer]:
    """A Hub look-alike on 127.0.0.1 for one test."""
    server = HubServer().start()
    yield server
    server.stop()


@pytest.fixture
def policy_files(tmp_path: Path) -> dict[str, bytes]:
    """The files of a small saved MLP policy (LeRobot layout, with processor stats)."""
    return folder_files(policy_folder(tmp_path / "policy"))


def models(tmp_path: Path) -> list:
    """The models registered in the test's store."""
    with Store(f"sqlite:///{tmp_path / 'home' / 'fpoctl.db'}") as store:
        return store.models()


def assert_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Non-zero exit, no traceback, and the last stderr line is the one 'error:' line naming `fragments`."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr
    for frag in fragments:
        assert frag in errors[0], errors[0]
    return errors[0]


def pull(hub: HubServer, tmp_path: Path, *args: str, token: str | None = None,
         **env: str) -> subprocess.CompletedProcess[str]:
    """`fpoctl pull ARGS` against `hub`."""
    return run_cli("pull", *args, env=hub_env(hub, tmp_path, token, **env))


def test_pull_by_alias_fetches_only_policy_files_and_registers(hub, tmp_path, policy_files):
    extra = {"README.md": b"# card", "optimizer.pt": b"pickle!", "old/model.safetensors": b"x" * 64,
             "train_config.json": b"{}"}
    sha = hub.add_repo("lerobot/pi0_libero_finetuned", {**policy_files, **extra})
    proc = pull(hub, tmp_path, "pi0-libero", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    folder = Path(out["path"])
    assert folder == tmp_path / "hf" / "hub" / "models--lerobot--pi0_libero_finetuned" / "snapshots" / sha
    assert {p.name for p in folder.iterdir()} == POLICY_NAMES
    for name in ("README.md", "optimizer.pt", "old/model.safetensors", "train_config.json"):
        assert hub.state.downloads(name) == 0, name
    for name in POLICY_NAMES:
        assert (folder / name).read_bytes() == policy_files[name]
    [model] = models(tmp_path)
    n_params = sum(t.numel() for t in load_file(folder / "model.safetensors").values())
    assert (model.alias, model.repo, model.revision, model.commit_sha) == (
        "pi0-libero", "lerobot/pi0_libero_finetuned", "main", sha)
    assert (model.path, model.policy_type, model.n_params) == (str(folder), "mlp_flow", n_params)
    assert model.size_bytes == sum(len(b) for n, b in policy_files.items() if n in POLICY_NAMES)
    assert isinstance(load_policy(folder), torch.nn.Module)


def test_pull_user_alias_and_repo_at_revision(hub, tmp_path, policy_files, tmp_path_factory):
    first = hub.add_repo("me/mlp", policy_files)
    v2_files = folder_files(policy_folder(tmp_path_factory.mktemp("v2"), seed=1))
    hub.add_repo("me/mlp", v2_files, branch="v2")
    second = hub.add_repo("me/mlp", v2_files, message="main moves on")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "aliases.toml").write_text('[aliases]\nold-mlp = "me/mlp@' + first + '"\n')

    assert pull(hub, tmp_path, "old-mlp", "-q").returncode == 0
    proc = pull(hub, tmp_path, "me/mlp@v2", "-q")
    assert proc.returncode == 0, proc.stderr
    v2_path = Path(proc.stdout.strip())
    assert (v2_path / "model.safetensors").read_bytes() == v2_files["model.safetensors"]
    got = {(m.alias, m.revision): m.commit_sha for m in models(tmp_path)}
    assert got == {("old-mlp", first): first, (None, "v2"): hub.state.repos["me/mlp"].branches["v2"]}
    assert second not in got.values()
    listing = run_cli("models", "list", env=hub_env(hub, tmp_path))
    assert listing.returncode == 0 and "old-mlp" in listing.stdout and "me/mlp" in listing.stdout


def test_offline_repull_uses_the_cache_only(hub, tmp_path, policy_files):
    sha = hub.add_repo("lerobot/pi0_base", policy_files)
    assert pull(hub, tmp_path, "pi0", "-q").returncode == 0
    served = len(hub.state.log)
    hub.stop()  # nothing answers any more
    proc = pull(hub, tmp_path, "pi0", "--json", HF_HUB_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["commit_sha"] == sha
    assert len(hub.state.log) == served
    [model] = models(tmp_path)
    assert model.commit_sha == sha
    assert_error(pull(hub, tmp_path, "me/never-pulled", HF_HUB_OFFLINE="1"),
                 "HF_HUB_OFFLINE", "me/never-pulled")


def test_cut_download_registers_nothing_and_a_rerun_fetches_only_the_rest(hub, tmp_path):
    files = folder_files(policy_folder(tmp_path / "policy", hidden=512))  # ~1.5 MB of weights
    hub.add_repo("me/mlp", files)
    hub.state.faults["model.safetensors"] = Fault(drop_after=100_000)
    assert_error(pull(hub, tmp_path, "me/mlp"), "cut short", "nothing was registered", "fpoctl pull")
    assert models(tmp_path) == []
    assert hub.state.downloads("config.json") == 1

    hub.state.faults.clear()
    proc = pull(hub, tmp_path, "me/mlp", "-q")
    assert proc.returncode == 0, proc.stderr
    assert (Path(proc.stdout.strip()) / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert hub.state.downloads("config.json") == 1  # completed files are not fetched again
    assert hub.state.downloads("policy_preprocessor.json") == 1
    assert len(models(tmp_path)) == 1


@pytest.mark.slow
def test_corrupted_download_is_caught_evicted_and_refetched(hub, tmp_path, policy_files):
    hub.add_repo("me/mlp", policy_files)
    hub.state.faults["model.safetensors"] = Fault(corrupt=True, times=1)
    assert_error(pull(hub, tmp_path, "me/mlp"), "model.safetensors", "hash the Hub reported")
    assert models(tmp_path) == []
    proc = pull(hub, tmp_path, "me/mlp", "-q")
    assert proc.returncode == 0, proc.stderr
    assert (Path(proc.stdout.strip()) / "model.safetensors").read_bytes() == policy_files["model.safetensors"]


def test_repo_revision_and_login_errors(hub, tmp_path, policy_files):
    hub.add_user("alice", "hf_alice_secret")
    hub.add_repo("alice/private", policy_files, private=True)
    assert_error(pull(hub, tmp_path, "alice/private"), "alice/private not found", "hf auth login")
    assert_error(pull(hub, tmp_path, "alice/private", token="hf_wrong"), "rejected your token")
    assert_error(pull(hub, tmp_path, "nobody/nothing", token="hf_alice_secret"), "nobody/nothing not found")
    assert_error(pull(hub, tmp_path, "alice/private@nope", token="hf_alice_secret"),
                 "revision 'nope' not found in alice/private")
    assert_error(pull(hub, tmp_path, "no-such-alias"), "unknown alias 'no-such-alias'", "aliases.toml")
    assert models(tmp_path) == []  # the right token gets in: test_token_never_reaches_store_or_output


def test_gated_repo_says_how_to_get_access(hub, tmp_path, policy_files):
    hub.add_user("bob", "hf_bob")
    hub.add_repo("org/gated", policy_files, gated=True)
    line = assert_error(pull(hub, tmp_path, "org/gated", token="hf_bob"), "gated", f"{hub.url}/org/gated")
    assert "hf auth login" not in line  # already logged in: only the conditions are missing
    assert_error(pull(hub, tmp_path, "org/gated"), "gated", "hf auth login")
    hub.state.repos["org/gated"].accepted.add("bob")
    assert pull(hub, tmp_path, "org/gated", token="hf_bob").returncode == 0


def test_pi0_tokenizer_comes_from_its_configured_source(hub, tmp_path):
    from policies.pi0 import Pi0Policy, tiny_config
    from tests.pi0_helpers import train_tokenizer

    Pi0Policy.create(tiny_config()).save_pretrained(tmp_path / "pi0")  # pi0 repos ship no tokenizer
    hub.add_repo("lerobot/pi0_base", folder_files(tmp_path / "pi0"))
    spm_model = train_tokenizer(tmp_path).read_bytes()
    hub.add_repo("google/paligemma-3b-pt-224", {"tokenizer.model": spm_model}, gated=True)
    hub.add_repo("me/tokenizers", {"paligemma_tokenizer.model": spm_model})

    line = assert_error(pull(hub, tmp_path, "pi0"), "google/paligemma-3b-pt-224", "gated",
                        "accept its licence", "hf auth login", "--tokenizer", "[tokenizers] pi0",
                        "aliases.toml")
    assert "paligemma_tokenizer.model" in line
    assert_error(pull(hub, tmp_path, "pi0", "--tokenizer", "hf://me/tokenizers/nope.model"),
                 "missing", "me/tokenizers")
    assert models(tmp_path) == []

    proc = pull(hub, tmp_path, "pi0", "--json", "--tokenizer", "hf://me/tokenizers/paligemma_tokenizer.model")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["policy_type"] == "pi0" and Path(out["tokenizer"]).read_bytes() == spm_model
    assert Path(out["tokenizer"]).is_relative_to(tmp_path / "hf" / "hub" / "models--me--tokenizers")
    policy = Pi0Policy.from_pretrained(out["path"], tokenizer=out["tokenizer"])
    assert policy.tokenizer is not None

    (tmp_path / "home" / "aliases.toml").write_text(f'[tokenizers]\npi0 = "{tmp_path / "tok.model"}"\n')
    proc = pull(hub, tmp_path, "pi0", "--json", HF_HUB_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tokenizer"] == str(tmp_path / "tok.model")
    assert [m.policy_type for m in models(tmp_path)] == ["pi0"]


def test_network_down_and_timeouts_retry_then_fail(hub, tmp_path, policy_files):
    hub.add_repo("me/mlp", policy_files)
    proc = pull(hub, tmp_path, "me/mlp", HF_ENDPOINT="http://127.0.0.1:9")
    assert_error(proc, "cannot reach the Hub at http://127.0.0.1:9", "ConnectError", "after 3 tries")
    assert proc.stderr.count("retrying in") == 2
    hub.state.stall_api_s = 3
    proc = pull(hub, tmp_path, "me/mlp", FPOCTL_HUB_TIMEOUT_S="0.5", FPOCTL_HUB_RETRIES="1")
    assert_error(proc, "cannot reach the Hub", "Timeout", "after 2 tries")
    assert models(tmp_path) == []


def test_disk_full_is_reported_before_and_during_the_download(hub, tmp_path, policy_files):
    import resource
    import signal
    import sys

    hub.add_repo("me/mlp", {**policy_files, "model.safetensors": b"\0" * 4_000_000})
    hub.state.faults["model.safetensors"] = Fault(reported_size=10**18)
    assert_error(pull(hub, tmp_path, "me/mlp"), "not enough disk space", "to download")
    hub.state.faults.clear()

    def small_disk() -> None:  # writes past 2 MB fail like a full disk (EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))

    proc = subprocess.run([sys.executable, "-m", "fpoctl.cli", "pull", "me/mlp"], capture_output=True,
                          text=True, timeout=300, preexec_fn=small_disk,
                          env={**__import__("os").environ, **hub_env(hub, tmp_path)})
    assert_error(proc, "disk full")
    assert models(tmp_path) == []


@pytest.mark.slow
def test_repo_file_names_cannot_escape_the_model_folder(hub, tmp_path, policy_files):
    hub.add_repo("me/sneaky", {**policy_files, "../../escape.safetensors": b"x",
                               "sub/../../../escape2.json": b"{}", "..\\..\\escape.safetensors": b"x"})
    proc = pull(hub, tmp_path, "me/sneaky", "-q")
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.rglob("*escape*"))
    assert hub.state.downloads("escape.safetensors") == hub.state.downloads("escape2.json") == 0
    pre = json.loads(policy_files["policy_preprocessor.json"])
    pre["steps"][2]["state_file"] = "../../../etc/passwd"
    hub.add_repo("me/bad-state", {**policy_files, "policy_preprocessor.json": json.dumps(pre).encode()})
    assert_error(pull(hub, tmp_path, "me/bad-state"), "state_file '../../../etc/passwd'")
    assert len(models(tmp_path)) == 1


def test_token_never_reaches_store_or_output(hub, tmp_path, policy_files):
    token = "hf_VerySecretToken123"
    hub.add_user("alice", token)
    hub.add_repo("alice/private", policy_files, private=True)
    proc = pull(hub, tmp_path, "alice/private", "--json", token=token)
    assert proc.returncode == 0, proc.stderr
    assert all(r.authorized for r in hub.state.log if "/alice/private/" in r.path)
    assert token not in proc.stdout + proc.stderr
    for f in (tmp_path / "home").rglob("*"):
        if f.is_file():
            assert token.encode() not in f.read_bytes(), f


@pytest.mark.slow
def test_models_rm_forgets_and_frees_the_cache(hub, tmp_path, policy_files):
    hub.add_repo("me/a", policy_files)
    hub.add_repo("me/b", policy_files)
    env = hub_env(hub, tmp_path)
    path_a = Path(run_cli("pull", "me/a", "-q", env=env).stdout.strip())
    path_b = Path(run_cli("pull", "me/b", "-q", env=env).stdout.strip())
    proc = run_cli("models", "rm", "me/a", "--yes", env=env)
    assert proc.returncode == 0 and "freed" in proc.stdout, proc.stderr
    assert not path_a.exists()
    proc = run_cli("models", "rm", "me/b", "--keep-files", "--yes", env=env)
    assert proc.returncode == 0, proc.stderr
    assert path_b.exists() and models(tmp_path) == []
    assert_error(run_cli("models", "rm", "me/b", "--yes", env=env), "no pulled model 'me/b'")

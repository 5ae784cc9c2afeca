"""The hub pieces that need no server: safetensors header checks, hash checks against the cache's
blob names, file-name safety, aliases and tokenizer sources, the model card and the curves PNG."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import constants, hf_hub_download
from safetensors.torch import save_file

from fpoctl.errors import FpoctlError
from fpoctl.hub import card, human_bytes, layout, verify
from fpoctl.hub.aliases import resolve
from fpoctl.hub.curves import plot_training_curves
from fpoctl.hub.errors import CorruptDownloadError, InvalidCheckpointError
from fpoctl.hub.tokenizer import fetch
from fpoctl.sources import parse_source, tokenizer_path
from tests.hubserver import git_blob_sha1, policy_folder


def raw_safetensors(path: Path, header: dict, data: bytes) -> Path:
    """A safetensors file written by hand (to build broken ones)."""
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + data)
    return path


@pytest.mark.parametrize(("header", "data"), [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
    ({"a": {"dtype": "PICKLE", "shape": [1], "data_offsets": [0, 1]}}, b"\0"),
    ({"a": {"shape": [1]}}, b""),
])
def test_broken_safetensors_are_rejected(tmp_path, header, data):
    path = raw_safetensors(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(CorruptDownloadError, match="corrupt safetensors header"):
        verify.check_safetensors(path)
    save_file({"a": torch.zeros(2, 3)}, str(tmp_path / "good.safetensors"))
    verify.check_safetensors(tmp_path / "good.safetensors")


def test_absurd_header_length_is_rejected_without_reading_it(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**60) + b"{}")
    with pytest.raises(CorruptDownloadError, match="header length"):
        verify.check_safetensors(path)


def cached(tmp_path: Path, name: str, data: bytes, etag: str) -> Path:
    """A file laid out like huggingface_hub's cache: snapshots/<sha>/name -> ../../blobs/<etag>."""
    repo = tmp_path / "models--org--name"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "blobs" / etag).write_bytes(data)
    snap = repo / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True, exist_ok=True)
    (snap / name).symlink_to(Path("../../blobs") / etag)
    return snap / name


def test_hashes_are_checked_against_the_blob_names_and_bad_blobs_evicted(tmp_path):
    good = cached(tmp_path, "config.json", b'{"type": "x"}', git_blob_sha1(b'{"type": "x"}'))
    lfs = cached(tmp_path, "w.bin.safetensors", b"abc", hashlib.sha256(b"abc").hexdigest())
    bad = cached(tmp_path, "other.json", b"{}", git_blob_sha1(b"[]"))
    verify.verify_files([good])
    with pytest.raises(CorruptDownloadError, match="hash the Hub reported"):
        verify.verify_files([good, bad])
    assert not bad.exists() and not bad.is_symlink()
    with pytest.raises(CorruptDownloadError, match="the Hub reported 4"):
        verify.verify_files([lfs], {"w.bin.safetensors": 4})


def test_links_out_of_the_cache_and_odd_names_are_refused(tmp_path):
    outside = tmp_path / "secret.json"
    outside.write_text("{}")
    snap = tmp_path / "models--a--b" / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").symlink_to(outside)
    with pytest.raises(CorruptDownloadError, match="links outside"):
        verify.check_links(snap, [snap / "config.json"])
    for name in ("../x.json", "..\\x.json", "..", ".hidden.json", "a/b.json", "x\n.json", ""):
        assert not layout.is_plain_name(name), name
        with pytest.raises(CorruptDownloadError):
            verify.check_names([name])
    assert layout.is_plain_name("policy_preprocessor_step_2_normalizer_processor.safetensors")


def test_layout_check_wants_type_weights_and_present_state_files(tmp_path):
    folder = policy_folder(tmp_path / "p")
    assert layout.check_layout(folder) == "mlp_flow"
    assert set(layout.state_files(folder)) == {"policy_preprocessor.json", "policy_postprocessor.json"}
    (folder / "policy_postprocessor_step_0_unnormalizer_processor.safetensors").unlink()
    with pytest.raises(InvalidCheckpointError, match="which is missing"):
        layout.check_layout(folder)
    (folder / "config.json").write_text("{}")
    with pytest.raises(InvalidCheckpointError, match="no policy \"type\""):
        layout.check_layout(folder)


def test_aliases_builtin_user_and_revisions(tmp_path):
    assert resolve("pi0", tmp_path).repo == "lerobot/pi0_base"
    assert resolve("pi0-libero@v2", tmp_path).revision == "v2"
    assert resolve("org/name", tmp_path).alias is None
    (tmp_path / "aliases.toml").write_text('[aliases]\npi0 = "me/pi0-fork@dev"\nmine = "me/x"\n')
    assert (resolve("pi0", tmp_path).repo, resolve("pi0", tmp_path).revision) == ("me/pi0-fork", "dev")
    assert resolve("pi0@main", tmp_path).revision == "main"
    assert resolve("mine", tmp_path).alias == "mine"
    for bad in ("nope", "a/b/c", "org/name@", "bad name/x"):
        with pytest.raises(FpoctlError):
            resolve(bad, tmp_path)
    (tmp_path / "aliases.toml").write_text("[aliases\n")
    with pytest.raises(FpoctlError, match=r"aliases\.toml"):
        resolve("pi0", tmp_path)


def test_local_tokenizer_files(tmp_path):
    with pytest.raises(FpoctlError, match="does not exist"):
        fetch(parse_source(str(tmp_path / "nope.model")), policy_type="pi0", home=tmp_path)
    (tmp_path / "tok.model").write_bytes(b"spm")
    (tmp_path / "aliases.toml").write_text(f'[tokenizers]\npi0 = "{tmp_path / "tok.model"}"\n')
    assert tokenizer_path(tmp_path, "pi0") == tmp_path / "tok.model"
    (tmp_path / "model").mkdir()
    shipped = tmp_path / "model" / "paligemma_tokenizer.model"
    shipped.write_bytes(b"spm")
    assert tokenizer_path(tmp_path, "pi0", tmp_path / "model") == shipped
    assert tokenizer_path(tmp_path, "mlp_flow") is None


def test_a_hub_tokenizer_is_read_from_the_cache_or_named_missing(tmp_path, monkeypatch):
    cache = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    (tmp_path / "aliases.toml").write_text('[tokenizers]\npi0 = "hf://me/tok/tokenizer.model"\n')
    with pytest.raises(FpoctlError, match=r"not in the local cache; `fpoctl pull pi0` fetches it"):
        tokenizer_path(tmp_path, "pi0")
    repo = cache / "models--me--tok"
    snapshot = repo / "snapshots" / ("ab" * 20)
    snapshot.mkdir(parents=True)
    (snapshot / "tokenizer.model").write_bytes(b"spm")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("ab" * 20)
    found = tokenizer_path(tmp_path, "pi0")
    assert found == snapshot / "tokenizer.model"
    assert str(found) == hf_hub_download("me/tok", "tokenizer.model", local_files_only=True)  # the same file


def test_tokenizer_sources():
    src = parse_source("hf://google/paligemma-3b-pt-224/tokenizer.model")
    assert (src.repo, src.filename, src.path) == ("google/paligemma-3b-pt-224", "tokenizer.model", None)
    assert parse_source("~/tok.model").path == Path("~/tok.model").expanduser()
    with pytest.raises(FpoctlError, match="hf://ORG/NAME/FILE"):
        parse_source("hf://google/paligemma")


def test_scrub_removes_credentials_and_the_token_itself():
    cfg = {"lr": 1e-4, "hub": {"token": "x", "api_key": "y", "url": "https://t:SECRET@h"}, "l": ["SECRET"]}
    assert card.scrub(cfg, "SECRET") == {"lr": 1e-4, "hub": {"url": "https://t:<redacted>@h"},
                                         "l": ["<redacted>"]}


def test_key_hyperparameters_prefers_known_names():
    cfg = {"fpo": {"clip_eps": 0.05, "n_mc": 8, "other": 1}, "env": {"num_envs": 16}, "name": "x"}
    assert card.key_hyperparameters(cfg) == {"fpo.clip_eps": 0.05, "fpo.n_mc": 8, "env.num_envs": 16}
    assert card.key_hyperparameters({"a": 1, "b": {"c": "d"}}) == {"a": 1, "b.c": "d"}


def test_card_metadata_without_base_model_or_metrics():
    text = card.render(card.CardFacts(repo="me/x", policy_type="mlp_flow", task="", run_name="r", run_id=1,
                                      checkpoint_step=3, n_params=1000, files=["config.json"]))
    meta = yaml.safe_load(text.split("---")[1])
    assert "base_model" not in meta and meta["library_name"] == "lerobot"
    assert "## Success" not in text and "Training curves" not in text


def test_curves_png_from_store_metrics(store, tmp_path):
    run = store.create_run(name="r")
    assert not plot_training_curves(store, run.id, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
    with store.metric_writer(run.id) as w:
        for it in range(5):
            w.log(it, {"rollout/success_rate": it / 5, "rollout/return": float(it),
                       "env/steps_total": 100.0 * it})
    assert plot_training_curves(store, run.id, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_human_bytes():
    assert [human_bytes(n) for n in (5, 1536, 7.0e9, 3e15)] == ["5 B", "1.5 KB", "7.0 GB", "3000.0 TB"]


def test_base_model_is_what_the_run_was_fine_tuned_from(store, tmp_path):
    from fpoctl.hub.push import base_model

    pulled = store.create_run(name="libero", kind="finetune", task="libero-spatial", policy="pi05",
                              config={"policy": "pi05", "init": "pi05-libero"})
    child = store.create_run(name="again", kind="finetune", task="libero-spatial", policy="pi05",
                             config={"policy": "pi05", "init": str(pulled.id)})
    fresh = store.create_run(name="fresh", kind="finetune", task="libero-spatial", policy="pi05",
                             config={"policy": "pi05"})
    assert base_model(store, tmp_path, pulled) == "lerobot/pi05_libero_finetuned"  # the init alias
    assert base_model(store, tmp_path, child) == "lerobot/pi05_libero_finetuned"  # through the run
    assert base_model(store, tmp_path, fresh) == "lerobot/pi05_base"  # the policy's own base

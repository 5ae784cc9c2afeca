"""Run lineage (fpoctl/train/lineage.py): config overrides against the kind's defaults, the
differences between configs, the prior -> best -> last success arc, and the init chain through a
real store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fpoctl.store import Store
from fpoctl.train.config import FinetuneConfig, SFTConfig, as_dict
from fpoctl.train.lineage import SuccessArc, config_diff, lineage, overrides, success_arc


def test_overrides_are_the_keys_that_differ_from_the_defaults_in_field_order() -> None:
    config = as_dict(FinetuneConfig(iterations=40, task="libero-spatial/0", actor_lr=1e-5,
                                    env_kwargs={"max_steps": 50}))
    assert list(overrides("finetune", config).items()) == [
        ("task", "libero-spatial/0"), ("env_kwargs", {"max_steps": 50}), ("iterations", 40),
        ("actor_lr", 1e-5)]
    assert overrides("finetune", as_dict(FinetuneConfig())) == {}


def test_overrides_of_an_sft_config_and_of_a_kind_without_a_class() -> None:
    assert overrides("sft", as_dict(SFTConfig(steps=10, horizon=8))) == {"horizon": 8, "steps": 10}
    assert overrides("sft", {**as_dict(SFTConfig()), "old_key": 1}) == {"old_key": 1}
    assert overrides("eval", {"episodes": 5, "noise": None}) == {"episodes": 5}


def test_config_diff_names_the_differing_keys_in_first_seen_order() -> None:
    a = {"task": "fast-goal", "iterations": 40, "seed": 0}
    b = {"task": "fast-goal", "iterations": 60, "seed": 0, "init": "3"}
    c = {"seed": 1, "task": "fast-goal", "iterations": 40}
    assert config_diff([a, b, c]) == {"iterations": [40, 60, 40], "seed": [0, 0, 1],
                                      "init": [None, "3", None]}
    assert config_diff([a, dict(a)]) == {}
    assert config_diff([]) == {}


def test_success_arc_is_prior_best_last() -> None:
    assert success_arc([(0, 0.4), (10, 0.9), (20, 0.7)]) == SuccessArc(prior=0.4, best=0.9, last=0.7)
    assert success_arc([(5, 0.5)]) == SuccessArc(0.5, 0.5, 0.5)
    assert success_arc([]) == SuccessArc(None, None, None)


def test_lineage_follows_init_through_runs_to_a_pulled_model(store: Store, tmp_path: Path) -> None:
    store.add_model(alias="pi0-libero", repo="lerobot/pi0_libero", commit_sha="abc",
                    path=str(tmp_path / "missing-model"))
    sft = store.create_run(name="fast-goal-sft", kind="sft", config=as_dict(SFTConfig()))
    first = store.create_run(name="ft-a", kind="finetune",
                             config=as_dict(FinetuneConfig(init="pi0-libero")))
    second = store.create_run(name="ft-b", kind="finetune",
                              config=as_dict(FinetuneConfig(init=str(first.id))))
    third = store.create_run(name="ft-c", kind="finetune", config=as_dict(FinetuneConfig(init="ft-b")))
    assert lineage(store, third) == [f"run {second.id} ft-b (finetune)", f"run {first.id} ft-a (finetune)",
                                     "pulled pi0-libero (lerobot/pi0_libero)"]
    assert lineage(store, sft) == []


def test_lineage_of_a_folder_a_deleted_run_and_a_cycle(store: Store, tmp_path: Path) -> None:
    folder = store.create_run(name="from-folder", config=as_dict(FinetuneConfig(init=str(tmp_path))))
    assert lineage(store, folder) == [f"folder {tmp_path}"]
    gone = store.create_run(name="gone", config={})
    orphan = store.create_run(name="orphan", config=as_dict(FinetuneConfig(init=str(gone.id))))
    store.delete_run(gone.id)
    assert lineage(store, orphan) == [f"{gone.id} (no longer in the store)"]
    a = store.create_run(name="loop-a", config={"init": "loop-b"})
    b = store.create_run(name="loop-b", config={"init": "loop-a"})
    assert lineage(store, a) == [f"run {b.id} loop-b (finetune)", f"run {a.id} (a cycle: stops here)"]


def test_lineage_of_an_sft_run_that_starts_from_another_run(store: Store) -> None:
    base = store.create_run(name="base-sft", kind="sft", config=as_dict(SFTConfig()))
    more = store.create_run(name="more-sft", kind="sft", config=as_dict(SFTConfig(policy=str(base.id))))
    assert lineage(store, more) == [f"run {base.id} base-sft (sft)"]


def test_neither_the_module_nor_the_lineage_of_fresh_policies_imports_torch(tmp_path: Path) -> None:
    code = f"""
import sys
from fpoctl.store import Store
from fpoctl.train.lineage import lineage
store = Store("sqlite:///{tmp_path / 'fpoctl.db'}")
sft = store.create_run(name="s", kind="sft", config={{"policy": "mlp"}})
ft = store.create_run(name="f", config={{"init": str(sft.id)}})
print(lineage(store, sft), len(lineage(store, ft)), "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] 1 False"

"""pi0.5 as a policy family: the registry builds and loads it (train/ learns its scopes, dtypes and
tokenizer need from there alone), Hub aliases and tokenizer source, the model card, and the blocks a
sharded run gathers one at a time."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from fpoctl.hub import card
from fpoctl.hub.aliases import resolve
from fpoctl.sources import configured_source
from policies.pi0.gemma import AdaRMSNorm
from policies.pi05 import Pi05Policy
from policies.registry import FAMILIES, family_of, make_policy


def test_the_registry_builds_pi05_and_pi05_tiny_and_names_their_needs(tokenizer: Path) -> None:
    family = family_of("pi05-tiny")
    assert family is family_of("pi05") and family in FAMILIES and family.type_name == "pi05"
    assert family.scopes == ("expert", "full", "lora") and family.dtypes == ("float32", "bfloat16")
    assert family.needs_tokenizer
    tiny = make_policy("pi05-tiny", tokenizer=tokenizer, scope="lora", dtype="bfloat16", chunk_size=6)
    assert isinstance(tiny, Pi05Policy) and tiny.scope == "lora" and tiny.horizon == 6
    assert tiny.config.tokenizer_max_length == 80 and tiny.config.dtype == "bfloat16"
    with torch.device("meta"):
        full = make_policy("pi05")
    assert full.config.tokenizer_max_length == 200 and full.horizon == 50 and len(full.state_dict()) == 813


def test_aliases_and_tokenizer_source_of_pi05(tmp_path: Path) -> None:
    assert resolve("pi05", tmp_path).repo == "lerobot/pi05_base"
    assert resolve("pi05-libero", tmp_path).repo == "lerobot/pi05_libero_finetuned"
    assert resolve("pi05-libero@a217bfd", tmp_path).revision == "a217bfd"
    # pi0.5's repos ship no SentencePiece model either: PaliGemma's (gated) one, as for pi0
    assert str(configured_source(tmp_path, "pi05")) == "hf://google/paligemma-3b-pt-224/tokenizer.model"


def test_the_card_of_a_pi05_push_names_lerobots_class_and_base_model() -> None:
    text = card.render(card.CardFacts(repo="me/pi05-fpo", policy_type="pi05", task="libero-spatial",
                                      run_name="r", run_id=1, checkpoint_step=3, n_params=10**6,
                                      base_model="lerobot/pi05_base"))
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["base_model"] == "lerobot/pi05_base" and {"robotics", "lerobot", "pi05"} <= set(meta["tags"])
    assert "from lerobot.policies.pi05.modeling_pi05 import PI05Policy" in text
    assert 'PI05Policy.from_pretrained("me/pi05-fpo")' in text


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_shard_units_cover_every_weight_once_and_keep_the_adarms_norms_float32(dtype: str) -> None:
    with torch.device("meta"):
        policy = make_policy("pi05", dtype=dtype, scope="full")
    units = policy.shard_units()
    owned: dict[int, int] = {}
    for i, (module, _, _) in enumerate(units):
        for p in module.parameters():
            owned.setdefault(id(p), i)  # innermost unit first: it owns its parameters
    norms = [i for i, (m, _, _) in enumerate(units) if isinstance(m, AdaRMSNorm)]
    if dtype == "bfloat16":
        assert len(norms) == 2 * 18 and all(units[i][1] is None for i in norms)  # own dtype: float32
        low = {i for i, (_, d, _) in enumerate(units) if d == torch.bfloat16}
        assert all(owned[id(p)] not in low for n, p in policy.named_parameters() if ".dense." in n
                   and ".model.norm." not in n)
    else:
        assert norms == [] and all(d is None for _, d, _ in units)
    layers = [m for m, _, _ in units if m in set(policy.action_expert.layers)]
    assert len(layers) == 18
    rest = [n for n, p in policy.named_parameters() if id(p) not in owned]  # the root's
    assert sorted(rest) == sorted(
        [n for n, _ in policy.named_parameters() if n.startswith(("action_", "time_mlp_"))
         or ".vision_model.embeddings." in n or ".vision_model.post_layernorm." in n
         or "multi_modal_projector" in n
         or n.endswith(("language_model.norm.weight", "gemma_expert.model.norm.dense.weight",
                        "gemma_expert.model.norm.dense.bias"))])

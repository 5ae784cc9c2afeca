"""pi0.5 architecture: LeRobot's pi05 key set (and how it differs from pi0's), the adaRMS time
conditioning, the state prompt, the shared-prefix CFM loss and the KV cache, scopes and precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pi0_helpers import env_obs
from pi05_helpers import tiny_pi05, train_pi05_tokenizer
from test_pi0_model import reference_shapes

from policies import flow
from policies.pi0.gemma import AdaRMSNorm
from policies.pi0.model import Pi0Model
from policies.pi05 import Pi05Config, Pi05Policy
from policies.pi05.model import Pi05Model
from policies.pi05.policy import discretize_state, state_prompt
from policies.registry import make_policy

P, E = "paligemma_with_expert.paligemma.model", "paligemma_with_expert.gemma_expert"


def removed_from_pi0() -> set[str]:
    """pi05.md section 2, "Removed vs pi0" (43 keys): the expert's plain-norm weights, state_proj and
    the action-time MLP."""
    out = {f"{E}.model.layers.{i}.{n}.weight" for i in range(18)
           for n in ("input_layernorm", "post_attention_layernorm")}
    out.add(f"{E}.model.norm.weight")
    out |= {f"{head}.{part}" for head in ("state_proj", "action_time_mlp_in", "action_time_mlp_out")
            for part in ("weight", "bias")}
    return out


def new_in_pi05() -> dict[str, tuple[int, ...]]:
    """pi05.md section 2, "New in pi05" (78 keys): adaRMS dense layers in every expert norm (rows
    [scale | shift | gate]) and the time MLP."""
    norms = [f"{E}.model.layers.{i}.{n}" for i in range(18)
             for n in ("input_layernorm", "post_attention_layernorm")]
    out: dict[str, tuple[int, ...]] = {}
    for norm in [*norms, f"{E}.model.norm"]:
        out[f"{norm}.dense.weight"], out[f"{norm}.dense.bias"] = (3072, 1024), (3072,)
    for head in ("time_mlp_in", "time_mlp_out"):
        out[f"{head}.weight"], out[f"{head}.bias"] = (1024, 1024), (1024,)
    return out


@pytest.fixture(scope="module")
def tokenizer05(tmp_path_factory: pytest.TempPathFactory):
    return train_pi05_tokenizer(tmp_path_factory.mktemp("tok05"))


@pytest.fixture
def policy(tokenizer05) -> Pi05Policy:
    return tiny_pi05(tokenizer05)


def test_full_size_pi05_has_lerobots_keys_and_shapes_and_differs_from_pi0_as_measured() -> None:
    with torch.device("meta"):
        pi05, pi0 = Pi05Model(Pi05Config()), Pi0Model(Pi05Config())
    got = {k: tuple(v.shape) for k, v in pi05.state_dict().items()}
    pi0_keys = {k: tuple(v.shape) for k, v in pi0.state_dict().items()}
    assert pi0_keys == reference_shapes()
    want = {k: v for k, v in reference_shapes().items() if k not in removed_from_pi0()} | new_in_pi05()
    assert sorted(set(got) ^ set(want)) == [] and {k for k in want if got[k] != want[k]} == set()
    # the differences from pi0, counted as pi05.md measured them on LeRobot 0.6.1
    assert len(set(pi0_keys) - set(got)) == 43 and set(pi0_keys) - set(got) == removed_from_pi0()
    assert len(set(got) - set(pi0_keys)) == 78 and len(set(got) & set(pi0_keys)) == 735
    assert all(got[k] == pi0_keys[k] for k in set(got) & set(pi0_keys))
    # 813 keys, 4,143,404,816 parameters as LeRobot's save holds them (both token tables, expert lm_head)
    assert len(got) == 813 and sum(v.numel() for v in pi05.state_dict().values()) == 4_143_404_816
    dense = sum(v.numel() for k, v in pi05.state_dict().items() if ".dense." in k)
    assert dense == 116_505_600


def test_bf16_frozen_weights_keep_lerobots_float32_set() -> None:
    """LeRobot's bf16 pi05: 558 float32 tensors (vision, projector, every norm incl. the adaRMS dense
    layers, heads) and 255 bf16 (layer matrices, embed_tokens, both lm_heads); fpoctl stores the same
    when nothing of the transformers trains (its trained weights are float32 masters)."""
    with torch.device("meta"):
        policy = make_policy("pi05", dtype="bfloat16", scope="lora")
    dtypes = {k: policy.stored_dtype(k) for k in policy.state_dict() if "lora_" not in k}
    assert len(dtypes) == 813
    assert sum(d == torch.float32 for d in dtypes.values()) == 558
    assert all(d == torch.float32 for k, d in dtypes.items() if ".dense." in k or k.startswith("time_mlp"))


def test_state_is_cut_into_256_bins_without_clipping() -> None:
    x = np.array([-1.333, -1.0, -0.5, 0.0, 0.333, 0.993, 1.333], dtype=np.float32)
    assert discretize_state(x).tolist() == [-1, 0, 64, 128, 170, 255, 255]  # pi05.md's measured bins
    assert state_prompt("  pick_up the\nbowl ", np.array([3, 255, -1])) == \
        "Task: pick up the bowl, State: 3 255 -1;\nAction: "


def test_prompt_carries_the_normalised_state_and_no_state_token(policy: Pi05Policy) -> None:
    obs = env_obs(2)
    batch = policy.prepare(obs, "cpu")
    prompts = policy.prompts(obs["prompt"], torch.as_tensor(obs["state"]))  # identity normalisation
    assert prompts[0].startswith(f"Task: {obs['prompt'][0]}, State: ") and prompts[0].endswith(";\nAction: ")
    ids = policy.tokenizer.encode(prompts[0])
    assert batch["tokens"][0, :len(ids)].tolist() == ids[:80] and ids[0] == 2  # BOS, no "\n" appended
    moved = dict(obs, state=obs["state"] + 0.5)
    assert not torch.equal(policy.prepare(moved, "cpu")["tokens"], batch["tokens"])
    embs, _, ar, cond = policy.embed_suffix(torch.zeros(2, 10, 32), torch.ones(2))
    assert embs.shape == (2, 10, 32) and ar[0].tolist() == [1] + [0] * 9 and cond.shape == (2, 32)


def test_time_enters_through_every_expert_norm_and_gates_the_residuals(policy: Pi05Policy) -> None:
    norms = [m for m in policy.action_expert.modules() if isinstance(m, AdaRMSNorm)]
    assert len(norms) == 2 * 2 + 1  # two per layer (tiny: 2 layers) and the final one
    assert not any(isinstance(m, AdaRMSNorm) for m in policy.language_model.modules())
    batch = policy.prepare(env_obs(2), "cpu")
    x = torch.randn(2, 10, 32)
    prefix = policy.embed_prefix(batch)
    with torch.no_grad():
        v = [policy.velocity_full(prefix, x, torch.full((2,), t)) for t in (0.2, 0.8)]
        assert not torch.allclose(v[0], v[1])
        # gate 0 everywhere: attention and MLP add nothing, so the observation no longer matters
        for norm in norms:
            norm.dense.weight[2 * 32:].zero_()
            norm.dense.bias[2 * 32:].zero_()
        other = policy.prepare(env_obs(2, seed=7), "cpu")
        gated = [policy.velocity_full(policy.embed_prefix(b), x, torch.full((2,), 0.5))
                 for b in (batch, other)]
    torch.testing.assert_close(gated[0], gated[1], atol=0, rtol=0)


def test_kv_cache_sampling_equals_no_cache_sampling(policy: Pi05Policy) -> None:
    batch = policy.prepare(env_obs(3), "cpu")
    noise = torch.randn(3, 10, 32, generator=torch.Generator().manual_seed(1))
    cached = policy.sample(batch, noise=noise)
    with torch.no_grad():
        full = policy.sample_actions(batch, noise, use_cache=False)
        prefix = policy.embed_prefix(batch)
        t = torch.tensor([0.9, 0.4, 0.1])
        v_cached = policy.velocity_cached(policy.prefix_cache(prefix), prefix[1], noise, t)
        v_full = policy.velocity_full(prefix, noise, t)
    assert cached.shape == (3, 10, 32)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v_cached, v_full, atol=1e-5, rtol=1e-5)


def test_shared_prefix_cfm_loss_equals_independent_full_passes(policy: Pi05Policy) -> None:
    """Values and gradients (of the VLM, the adaRMS layers and the time MLP) of the cfm_loss whose
    prefix runs once for all N equal N separate full joint passes."""
    policy.set_trainable("full")
    batch = policy.prepare(env_obs(2), "cpu")
    actions = torch.randn(2, 10, 32)
    t, e = flow.sample_noise_and_time(actions, 4, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(2, 10, 32, dtype=torch.bool)
    mask[:, :7, :7] = True
    shared = policy.cfm_loss(batch, actions, t, e, mask, reduction="sum")
    singles = []
    for i in range(4):
        prefix = policy.embed_prefix(batch)
        x_t = flow.interpolate(actions, e[:, i:i + 1], t[:, i:i + 1])[:, 0]
        v = policy.velocity_full(prefix, x_t, t[:, i])
        singles.append(flow.cfm_loss(v[:, None], actions, e[:, i:i + 1], mask, reduction="sum")[:, 0])
    torch.testing.assert_close(shared, torch.stack(singles, dim=1), atol=1e-4, rtol=1e-5)
    params = [policy.time_mlp_in.weight, policy.action_expert.layers[1].post_attention_layernorm.dense.weight,
              policy.action_expert.norm.dense.weight, policy.language_model.layers[0].self_attn.k_proj.weight,
              policy.language_model.embed_tokens.weight]
    g_shared = torch.autograd.grad(shared.sum(), params)
    g_single = torch.autograd.grad(torch.stack(singles).sum(), params)
    for a, b in zip(g_shared, g_single, strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_scopes_train_pi05s_heads(policy: Pi05Policy) -> None:
    heads = ("action_in_proj.", "action_out_proj.", "time_mlp_in.", "time_mlp_out.")
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}  # scope "expert"
    assert all(n.startswith((f"{E}.model.", *heads)) for n in trainable)
    assert f"{E}.model.norm.dense.weight" in trainable and "time_mlp_in.weight" in trainable
    policy.set_trainable("full")
    assert {n for n, p in policy.named_parameters() if not p.requires_grad} == {
        f"{E}.lm_head.weight", "paligemma_with_expert.paligemma.lm_head.weight"}
    policy.set_trainable("lora")
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert {n for n in trainable if "lora_" not in n} == {f"{h}{w}" for h in heads
                                                          for w in ("weight", "bias")}


def test_bf16_pi05_samples_and_trains_with_float32_masters(tokenizer05) -> None:
    policy = tiny_pi05(tokenizer05, dtype="bfloat16")
    assert policy.language_model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
    assert policy.action_expert.layers[0].mlp.up_proj.weight.dtype == torch.float32  # trained: master
    batch = policy.prepare(env_obs(2), "cpu")
    actions = policy.sample(batch, noise=torch.randn(2, 10, 32))
    loss = policy.cfm_loss(batch, actions, torch.rand(2, 2), torch.randn(2, 2, 10, 32))
    loss.mean().backward()
    assert actions.dtype == torch.float32 and torch.isfinite(actions).all() and torch.isfinite(loss).all()
    assert policy.action_expert.norm.dense.weight.grad is not None


def test_tiny_pi05_learns_to_reproduce_demonstrated_chunks(policy: Pi05Policy) -> None:
    """Training the expert with the shared-prefix cfm_loss drives zero-noise samples to the demos."""
    batch = policy.prepare(env_obs(2), "cpu")
    g = torch.Generator().manual_seed(0)
    demos = torch.randn(2, 10, 32, generator=g) * 0.5
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=3e-3)

    def sample_error() -> float:
        return (policy.sample(batch, noise=torch.zeros(2, 10, 32)) - demos).pow(2).mean().item()
    before = sample_error()
    for _ in range(150):
        t, e = flow.sample_noise_and_time(demos, 8, generator=g)
        loss = policy.cfm_loss(batch, demos, t, e).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert sample_error() < 0.3 * before

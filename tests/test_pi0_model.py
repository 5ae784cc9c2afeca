"""pi0 architecture: exact reference keys, attention mask rule, KV-cache equalities, scopes, precision."""

from __future__ import annotations

import pytest
import torch
from pi0_helpers import env_obs, tiny_policy

from policies import flow
from policies.pi0 import Pi0Config, Pi0Policy
from policies.pi0.lora import merged_state_dict
from policies.pi0.model import Pi0Model, make_attn_mask
from policies.registry import make_policy


def reference_shapes() -> dict[str, tuple[int, ...]]:
    """lerobot/pi0_base's keys and shapes, written from shared/reference/pi0.md (not from our model)."""
    p, e = "paligemma_with_expert.paligemma.model", "paligemma_with_expert.gemma_expert"
    v = f"{p}.vision_tower.vision_model"
    out = {f"{v}.embeddings.patch_embedding.weight": (1152, 3, 14, 14),
           f"{v}.embeddings.patch_embedding.bias": (1152,),
           f"{v}.embeddings.position_embedding.weight": (256, 1152),
           f"{v}.post_layernorm.weight": (1152,), f"{v}.post_layernorm.bias": (1152,),
           f"{p}.multi_modal_projector.linear.weight": (2048, 1152),
           f"{p}.multi_modal_projector.linear.bias": (2048,),
           "paligemma_with_expert.paligemma.lm_head.weight": (257152, 2048),
           f"{p}.language_model.embed_tokens.weight": (257152, 2048),
           f"{p}.language_model.norm.weight": (2048,), f"{e}.model.norm.weight": (1024,),
           f"{e}.lm_head.weight": (257152, 1024),
           "state_proj.weight": (1024, 32), "action_in_proj.weight": (1024, 32),
           "action_out_proj.weight": (32, 1024), "action_time_mlp_in.weight": (1024, 2048),
           "action_time_mlp_out.weight": (1024, 1024)}
    for head, width in [("state_proj", 1024), ("action_in_proj", 1024), ("action_out_proj", 32),
                        ("action_time_mlp_in", 1024), ("action_time_mlp_out", 1024)]:
        out[f"{head}.bias"] = (width,)
    for i in range(27):
        layer = f"{v}.encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out[f"{layer}.self_attn.{proj}.weight"] = (1152, 1152)
            out[f"{layer}.self_attn.{proj}.bias"] = (1152,)
        for norm in ("layer_norm1", "layer_norm2"):
            out[f"{layer}.{norm}.weight"], out[f"{layer}.{norm}.bias"] = (1152,), (1152,)
        out[f"{layer}.mlp.fc1.weight"], out[f"{layer}.mlp.fc1.bias"] = (4304, 1152), (4304,)
        out[f"{layer}.mlp.fc2.weight"], out[f"{layer}.mlp.fc2.bias"] = (1152, 4304), (1152,)
    for prefix, w, mlp in ((f"{p}.language_model", 2048, 16384), (f"{e}.model", 1024, 4096)):
        for i in range(18):
            layer = f"{prefix}.layers.{i}"
            out[f"{layer}.self_attn.q_proj.weight"] = (2048, w)
            out[f"{layer}.self_attn.k_proj.weight"] = (256, w)
            out[f"{layer}.self_attn.v_proj.weight"] = (256, w)
            out[f"{layer}.self_attn.o_proj.weight"] = (w, 2048)
            out[f"{layer}.mlp.gate_proj.weight"] = (mlp, w)
            out[f"{layer}.mlp.up_proj.weight"] = (mlp, w)
            out[f"{layer}.mlp.down_proj.weight"] = (w, mlp)
            out[f"{layer}.input_layernorm.weight"] = (w,)
            out[f"{layer}.post_attention_layernorm.weight"] = (w,)
    return out


@pytest.fixture
def policy(tokenizer) -> Pi0Policy:
    return tiny_policy(tokenizer)


def test_full_size_pi0_has_exactly_the_reference_keys_and_shapes() -> None:
    with torch.device("meta"):
        model = Pi0Model(Pi0Config())
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = reference_shapes()
    assert sorted(set(got) - set(want)) == [] and sorted(set(want) - set(got)) == []
    assert {k for k in want if got[k] != want[k]} == set()
    # LeRobot 0.6.1's save of pi0: 778 keys, 4,028,019,472 stored parameters (both token tables)
    assert len(got) == 778 and sum(v.numel() for v in model.state_dict().values()) == 4_028_019_472


def test_meta_device_builds_full_size_pi0_without_allocating() -> None:
    with torch.device("meta"):
        policy = make_policy("pi0")
    assert {p.device.type for p in policy.state_dict().values()} == {"meta"}
    assert len(policy.state_dict()) == 778


def test_attention_mask_matches_the_rule_on_a_hand_checked_case() -> None:
    # 2 prefix tokens (second one padding), a state token, 2 action tokens.
    valid = torch.tensor([[True, False, True, True, True]])
    ar = torch.tensor([[0, 0, 1, 1, 0]])
    want = torch.tensor([[1, 0, 0, 0, 0],   # prefix sees the (valid) prefix only
                         [0, 0, 0, 0, 0],   # padding sees nothing
                         [1, 0, 1, 0, 0],   # state: prefix + itself
                         [1, 0, 1, 1, 1],   # actions: everything valid
                         [1, 0, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(make_attn_mask(valid, ar)[0], want)
    causal = make_attn_mask(torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 3, dtype=torch.int32))[0]
    assert torch.equal(causal, torch.tril(torch.ones(3, 3, dtype=torch.bool)))


def test_suffix_mask_and_positions_follow_the_prefix_padding(policy: Pi0Policy) -> None:
    batch = policy.prepare(env_obs(2), "cpu")
    embs, _, ar = policy.embed_suffix(batch["state"], torch.zeros(2, 10, 32), torch.ones(2))
    assert embs.shape == (2, 11, 32) and ar[0].tolist() == [1, 1] + [0] * 9
    prefix = policy.embed_prefix(batch)
    # two cameras of 16 tokens each (the empty third slot is dropped), then 16 prompt slots
    assert prefix[0].shape == (2, 48, 64) and prefix[1][:, :32].all()
    assert prefix[1][0, 32:].sum() == len(policy.tokenizer.encode(env_obs(2)["prompt"][0]))


def test_tiny_pi0_forward_backward_on_cpu(policy: Pi0Policy) -> None:
    policy.set_trainable("full")
    batch = policy.prepare(env_obs(2), "cpu")
    actions = torch.randn(2, 10, 32)
    t, e = flow.sample_noise_and_time(actions, 3, generator=torch.Generator().manual_seed(0))
    loss = policy.cfm_loss(batch, actions, t, e)
    assert loss.shape == (2, 3) and torch.isfinite(loss).all()
    loss.mean().backward()
    grads = {n: p.grad for n, p in policy.named_parameters() if p.requires_grad}
    # Only the prefix's keys/values reach the expert, so the language model's last-layer query,
    # output, MLP and final norm get no gradient (as in pi0 itself).
    last = "paligemma_with_expert.paligemma.model.language_model.layers.1."
    unused = {f"{last}{n}.weight" for n in ("self_attn.q_proj", "self_attn.o_proj",
                                             "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
                                             "mlp.down_proj")}
    unused.add("paligemma_with_expert.paligemma.model.language_model.norm.weight")
    assert {n for n, g in grads.items() if g is None} == unused
    assert all(torch.isfinite(g).all() for g in grads.values() if g is not None)
    assert grads["paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings"
                 ".patch_embedding.weight"].abs().sum() > 0


def test_kv_cache_sampling_equals_no_cache_sampling(policy: Pi0Policy) -> None:
    batch = policy.prepare(env_obs(3), "cpu")
    noise = torch.randn(3, 10, 32, generator=torch.Generator().manual_seed(1))
    cached = policy.sample(batch, noise=noise)
    with torch.no_grad():
        full = policy.sample_actions(batch, noise, use_cache=False)
    assert cached.shape == (3, 10, 32)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)


def test_shared_prefix_cfm_loss_equals_independent_full_passes(policy: Pi0Policy) -> None:
    policy.set_trainable("full")
    batch = policy.prepare(env_obs(2), "cpu")
    actions = torch.randn(2, 10, 32)
    t, e = flow.sample_noise_and_time(actions, 4, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(2, 10, 32, dtype=torch.bool)
    mask[:, :7, :7] = True
    shared = policy.cfm_loss(batch, actions, t, e, mask, reduction="sum")
    prefix = policy.embed_prefix(batch)
    singles = []
    for i in range(4):
        x_t = flow.interpolate(actions, e[:, i:i + 1], t[:, i:i + 1])[:, 0]
        v = policy.velocity_full(prefix, batch["state"], x_t, t[:, i])
        singles.append(flow.cfm_loss(v[:, None], actions, e[:, i:i + 1], mask, reduction="sum")[:, 0])
    torch.testing.assert_close(shared, torch.stack(singles, dim=1), atol=1e-4, rtol=1e-5)
    # gradients agree too
    g_shared = torch.autograd.grad(shared.sum(), policy.state_proj.weight)[0]
    g_single = torch.autograd.grad(torch.stack(singles).sum(), policy.state_proj.weight)[0]
    torch.testing.assert_close(g_shared, g_single, atol=1e-4, rtol=1e-4)


def test_exploration_scale_zero_equals_plain_and_zero_noise_is_deterministic(policy: Pi0Policy) -> None:
    batch = policy.prepare(env_obs(2), "cpu")
    noise = torch.randn(2, 10, 32)
    plain = policy.sample(batch, noise=noise)
    assert torch.equal(plain, policy.sample(batch, noise=noise, explore_scale=0.0, explore_steps=[0, 5]))
    explored, again = (policy.sample(batch, noise=noise, explore_scale=0.5,
                                     generator=torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(explored, again) and not torch.equal(explored, plain)
    zeros = torch.zeros(2, 10, 32)
    assert torch.equal(policy.sample(batch, noise=zeros), policy.sample(batch, noise=zeros))


def test_expert_scope_trains_expert_and_heads_and_runs_the_prefix_without_autograd(policy: Pi0Policy) -> None:
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("paligemma_with_expert.gemma_expert.model.", "state_proj",
                                           "action_")) for n in trainable)
    batch = policy.prepare(env_obs(2), "cpu")
    prefix_grads = []
    hook = policy.language_model.layers[0].input_layernorm.register_forward_hook(
        lambda m, i, o: prefix_grads.append(torch.is_grad_enabled()))
    a = torch.randn(2, 10, 32)
    loss = policy.cfm_loss(batch, a, torch.rand(2, 2), torch.randn(2, 2, 10, 32))
    hook.remove()
    assert prefix_grads == [False] and loss.requires_grad


def test_full_scope_trains_everything_but_the_two_unused_lm_heads(policy: Pi0Policy) -> None:
    policy.set_trainable("full")
    frozen = {n for n, p in policy.named_parameters() if not p.requires_grad}
    assert frozen == {"paligemma_with_expert.gemma_expert.lm_head.weight",
                      "paligemma_with_expert.paligemma.lm_head.weight"}
    assert policy.language_model.embed_tokens.weight.requires_grad  # the table prompts are embedded with


def test_prompts_are_embedded_with_embed_tokens_not_lm_head(policy: Pi0Policy) -> None:
    batch = policy.prepare(env_obs(2), "cpu")
    noise = torch.randn(2, 10, 32)
    before = policy.sample(batch, noise=noise)
    with torch.no_grad():
        policy.paligemma_with_expert.paligemma.lm_head.weight.normal_()
    assert torch.equal(policy.sample(batch, noise=noise), before)
    with torch.no_grad():
        policy.language_model.embed_tokens.weight.normal_()
    assert not torch.allclose(policy.sample(batch, noise=noise), before)


def test_gradient_checkpointing_recomputes_layers_with_the_same_gradients(tokenizer) -> None:
    grads, calls = [], []
    for ckpt in (False, True):
        policy = tiny_policy(tokenizer, seed=5, scope="full")
        policy.config.gradient_checkpointing = ckpt
        count = [0, 0]
        vision = policy.paligemma_with_expert.paligemma.model.vision_tower.vision_model
        for i, mlp in enumerate((policy.action_expert.layers[0].mlp, vision.encoder.layers[0].mlp)):
            mlp.register_forward_pre_hook(lambda *_, c=count, i=i: c.__setitem__(i, c[i] + 1))
        batch = policy.prepare(env_obs(2), "cpu")
        loss = policy.cfm_loss(batch, torch.ones(2, 10, 32), torch.full((2, 2), 0.5),
                               torch.ones(2, 2, 10, 32))
        loss.sum().backward()
        grads.append([p.grad.clone() for p in policy.parameters() if p.grad is not None])
        calls.append(count)
    assert calls == [[1, 1], [2, 2]]  # checkpointed layers run again in the backward pass
    assert len(grads[0]) == len(grads[1])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_bf16_keeps_norms_vision_tower_projector_heads_and_trainable_weights_in_fp32(tokenizer) -> None:
    policy = tiny_policy(tokenizer, dtype="bfloat16")  # scope "expert"
    dtypes = {n: p.dtype for n, p in policy.named_parameters()}
    fp32 = {n for n, d in dtypes.items() if d == torch.float32}
    assert all(("vision_tower" in n or "multi_modal_projector" in n or "norm" in n
                or "gemma_expert.model" in n or not n.startswith("paligemma_with_expert")) for n in fp32)
    assert dtypes["paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.up_proj.weight"] \
        == torch.bfloat16  # frozen
    assert dtypes["paligemma_with_expert.gemma_expert.model.layers.1.self_attn.q_proj.weight"] \
        == torch.float32  # trained: a float32 master weight
    policy.set_trainable("lora")
    assert policy.action_expert.layers[1].self_attn.q_proj.weight.dtype == torch.bfloat16
    batch = policy.prepare(env_obs(2), "cpu")
    actions = policy.sample(batch, noise=torch.randn(2, 10, 32))
    loss = policy.cfm_loss(batch, actions, torch.rand(2, 2), torch.randn(2, 2, 10, 32))
    assert actions.dtype == torch.float32 and torch.isfinite(actions).all() and torch.isfinite(loss).all()


def test_lora_adapters_train_and_merge_into_reference_keys(policy: Pi0Policy) -> None:
    keys = set(policy.state_dict())
    batch = policy.prepare(env_obs(2), "cpu")
    noise = torch.randn(2, 10, 32)
    before = policy.sample(batch, noise=noise)
    policy.set_trainable("lora")
    assert torch.equal(policy.sample(batch, noise=noise), before)  # fresh adapters change nothing
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert any("language_model" in n and n.endswith("lora_a") for n in trainable)
    assert not any(n.endswith("proj.weight") and "paligemma_with_expert" in n for n in trainable)
    opt = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        loss = policy.cfm_loss(batch, torch.randn(2, 10, 32), torch.rand(2, 2), torch.randn(2, 2, 10, 32))
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    after = policy.sample(batch, noise=noise)
    assert not torch.allclose(after, before)
    merged = merged_state_dict(policy)
    assert set(merged) == keys
    plain = tiny_policy(policy.processors.tokenizer_file)
    plain.load_state_dict(merged)
    torch.testing.assert_close(plain.sample(batch, noise=noise), after, atol=1e-5, rtol=1e-4)


def test_tiny_pi0_learns_to_reproduce_demonstrated_chunks(policy: Pi0Policy) -> None:
    """Training the expert with the shared-prefix cfm_loss drives zero-noise samples to the demos."""
    batch = policy.prepare(env_obs(2), "cpu")  # two different images / prompts / states
    g = torch.Generator().manual_seed(0)
    demos = torch.randn(2, 10, 32, generator=g) * 0.5
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=3e-3)

    def sample_error() -> float:
        return (policy.sample(batch, noise=torch.zeros(2, 10, 32)) - demos).pow(2).mean().item()
    before, losses = sample_error(), []
    for _ in range(150):
        t, e = flow.sample_noise_and_time(demos, 8, generator=g)
        loss = policy.cfm_loss(batch, demos, t, e).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) < 0.6 * sum(losses[:10])
    assert sample_error() < 0.3 * before


def _adam_update(policy: Pi0Policy, steps: int = 10, lr: float = 1e-5) -> dict[str, torch.Tensor]:
    """Trainable weights after `steps` Adam steps on one fixed batch, minus before (float32)."""
    batch = policy.prepare(env_obs(2), "cpu")
    g = torch.Generator().manual_seed(1)
    actions, t, noise = torch.randn(2, 10, 32, generator=g), torch.rand(2, 4, generator=g), \
        torch.randn(2, 4, 10, 32, generator=g)
    params = {n: p for n, p in policy.named_parameters() if p.requires_grad}
    before = {n: p.detach().float().clone() for n, p in params.items()}
    opt = torch.optim.Adam(params.values(), lr=lr, eps=1e-5)  # the trainer's actor optimiser
    for _ in range(steps):
        opt.zero_grad()
        policy.cfm_loss(batch, actions, t, noise).mean().backward()
        opt.step()
    return {n: p.detach().float() - before[n] for n, p in params.items()}


@pytest.mark.parametrize("scope", ["expert", "full"])
def test_bf16_training_moves_the_weights_like_float32(tokenizer, scope: str) -> None:
    """Trainable weights are float32 masters in bf16 mode: 10 Adam steps at lr 1e-5 move them as in
    float32 (the compute is bf16, so the gradients differ a little); bf16 weights would not move."""
    ref = _adam_update(tiny_policy(tokenizer, seed=3, scope=scope))
    low = tiny_policy(tokenizer, seed=3, scope=scope, dtype="bfloat16")
    assert all(p.dtype == torch.float32 for p in low.parameters() if p.requires_grad)
    got = _adam_update(low)
    assert set(got) == set(ref)
    num = sum((got[n] - ref[n]).pow(2).sum() for n in ref).sqrt()
    den = sum(ref[n].pow(2).sum() for n in ref).sqrt()
    assert num / den < 0.05, f"relative update difference {num / den:.3f}"
    # bf16 weights under the same ten steps (each one rounded, as Adam on a bf16 tensor is) lose most
    name = "paligemma_with_expert.gemma_expert.model.layers.0.mlp.up_proj.weight"
    start = low.state_dict()[name].to(torch.bfloat16)
    w = start
    for _ in range(10):
        w = (w.float() + ref[name] / 10).to(torch.bfloat16)
    lost = (w.float() - start.float() - ref[name]).norm() / ref[name].norm()
    assert lost > 0.5, f"bf16 weights kept {1 - lost:.0%} of the update"

"""pi0 on a CUDA GPU: the full-size model in bf16 samples and trains; the tiny one matches the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pi0_helpers import env_obs, tiny_policy

from policies import flow
from policies.pi0 import Pi0Policy
from policies.pi0.config import full_config

pytestmark = pytest.mark.gpu


def test_tiny_pi0_on_gpu_matches_cpu(tokenizer: Path) -> None:
    cpu = tiny_policy(tokenizer)
    gpu = tiny_policy(tokenizer).to("cuda")
    obs, noise = env_obs(2), torch.randn(2, 10, 32)
    a_cpu = cpu.sample(cpu.prepare(obs, "cpu"), noise=noise)
    a_gpu = gpu.sample(gpu.prepare(obs, "cuda"), noise=noise.cuda())
    torch.testing.assert_close(a_gpu.cpu(), a_cpu, atol=1e-3, rtol=1e-3)


def test_full_size_pi0_bf16_samples_and_trains_the_expert(tokenizer: Path) -> None:
    policy = Pi0Policy.create(full_config(dtype="bfloat16"), tokenizer=tokenizer, device="cuda")
    assert round(sum(p.numel() for p in policy.state_dict().values()) / 1e9, 3) == 3.501
    batch = policy.prepare(env_obs(2, size=(256, 256)), "cuda")
    noise = torch.randn(2, 50, 32, device="cuda")
    cached = policy.sample(batch, noise=noise)
    with torch.no_grad():
        full = policy.sample_actions(batch, noise, use_cache=False)
    assert cached.shape == (2, 50, 32) and torch.isfinite(cached).all()
    torch.testing.assert_close(cached, full, atol=0.1, rtol=0.1)  # bf16: same math, other kernels
    t, e = flow.sample_noise_and_time(cached, 4)
    loss = policy.cfm_loss(batch, cached, t, e)
    loss.mean().backward()
    assert loss.shape == (2, 4) and torch.isfinite(loss).all()
    assert policy.action_expert.layers[0].mlp.up_proj.weight.grad is not None
    assert policy.language_model.layers[0].mlp.up_proj.weight.grad is None

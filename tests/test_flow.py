"""Flow-matching core: convention, masks, sampler, exploration, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policies import flow
from policies.mlp import MLPFlowConfig, MLPFlowPolicy
from policies.state_policy import OBS_CLIP, OBS_STD_FLOOR


def test_interpolation_follows_pi0_convention() -> None:
    a, e = torch.randn(2, 3, 4), torch.randn(2, 1, 3, 4)
    assert torch.allclose(flow.interpolate(a, e, torch.ones(2, 1)), e)  # t = 1 is noise
    assert torch.allclose(flow.interpolate(a, e, torch.zeros(2, 1)), a.unsqueeze(1))  # t = 0 action
    assert torch.allclose(flow.target_velocity(a, e), e - a.unsqueeze(1))


def test_time_samples_are_beta_1p5_1_in_range() -> None:
    t = flow.sample_time((200_000,), generator=torch.Generator().manual_seed(0))
    assert t.min() >= 0.001 and t.max() <= 1.0
    # Beta(1.5, 1) has mean 0.6; scaled: 0.6 * 0.999 + 0.001
    assert abs(t.mean().item() - (0.6 * 0.999 + 0.001)) < 0.003


def test_mask_excludes_padding_and_unexecuted_steps() -> None:
    a = torch.zeros(1, 2, 3)
    e = torch.zeros(1, 1, 2, 3)
    v = torch.zeros(1, 1, 2, 3)
    v[0, 0, 0, 0] = 2.0  # counted element: error 4
    v[0, 0, 1, :] = 100.0  # unexecuted step
    v[0, 0, 0, 2] = 100.0  # padding dim
    mask = torch.zeros(1, 2, 3, dtype=torch.bool)
    mask[0, 0, :2] = True  # step 0 executed, dims 0-1 used
    assert flow.cfm_loss(v, a, e, mask, "sum").item() == 4.0
    assert flow.cfm_loss(v, a, e, mask, "mean").item() == 2.0


def test_exploration_scale_zero_equals_plain_sampler() -> None:
    torch.manual_seed(0)
    pol = MLPFlowPolicy(MLPFlowConfig(obs_dim=3, action_dim=2, horizon=4, hidden=32))
    batch = {"state": torch.randn(5, 3)}
    noise = torch.randn(5, 4, 2)
    plain = pol.sample(batch, noise=noise)
    zero = pol.sample(batch, noise=noise, explore_scale=0.0, explore_steps=[0, 3, 7])
    assert torch.equal(plain, zero)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    x1 = pol.sample(batch, noise=noise, explore_scale=0.5, generator=g1)
    x2 = pol.sample(batch, noise=noise, explore_scale=0.5, generator=g2)
    assert torch.equal(x1, x2) and not torch.equal(x1, plain)


def test_zero_noise_sampling_is_deterministic() -> None:
    pol = MLPFlowPolicy(MLPFlowConfig(obs_dim=3, action_dim=2, horizon=4, hidden=32))
    batch = {"state": torch.randn(5, 3)}
    zeros = torch.zeros(5, 4, 2)
    assert torch.equal(pol.sample(batch, noise=zeros), pol.sample(batch, noise=zeros))


def test_mlp_cfm_loss_matches_per_pair_evaluation() -> None:
    pol = MLPFlowPolicy(MLPFlowConfig(obs_dim=3, action_dim=2, horizon=4, hidden=32))
    batch = {"state": torch.randn(5, 3)}
    a = torch.randn(5, 4, 2)
    t, e = flow.sample_noise_and_time(a, 6, generator=torch.Generator().manual_seed(0))
    joint = pol.cfm_loss(batch, a, t, e)
    single = torch.stack([pol.cfm_loss(batch, a, t[:, i:i + 1], e[:, i:i + 1])[:, 0]
                          for i in range(6)], dim=1)
    assert torch.allclose(joint, single, atol=1e-6)


def test_mlp_save_load_round_trip(tmp_path) -> None:
    pol = MLPFlowPolicy(MLPFlowConfig(obs_dim=3, action_dim=2, horizon=4, hidden=32))
    pol.set_obs_normalization([1, 2, 3], [2, 2, 2])
    pol.save_pretrained(tmp_path)
    back = MLPFlowPolicy.from_pretrained(tmp_path)
    for (k, v), (k2, v2) in zip(pol.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)


def test_normalisation_bounds_dims_that_never_moved_in_the_demos() -> None:
    """A dimension constant in the demonstrations (std 0) must not amplify a small bump into a
    huge input: the std has a floor and the normalised state is clipped."""
    pol = MLPFlowPolicy(MLPFlowConfig(obs_dim=2, action_dim=2, horizon=1, hidden=8))
    states = np.stack([np.linspace(-1.0, 1.0, 50), np.full(50, 0.9)], axis=1)
    pol.fit_normalization(states, np.zeros((50, 2)))
    bumped = pol.normalized_state(torch.tensor([[0.0, 0.91], [0.0, 5.0]]))
    assert bumped[0, 1] == pytest.approx(0.01 / OBS_STD_FLOOR, rel=1e-4)  # 1 cm -> 0.2, not 10
    assert bumped[1, 1] == OBS_CLIP
    fresh = MLPFlowPolicy(MLPFlowConfig(obs_dim=2, action_dim=2, horizon=1, hidden=8))
    assert fresh.normalized_state(torch.tensor([[8.0, -9.0]])).tolist() == [[8.0, -9.0]]  # no stats


def test_the_clip_of_fitted_statistics_survives_save_and_load(tmp_path) -> None:
    pol = MLPFlowPolicy(MLPFlowConfig(obs_dim=1, action_dim=1, horizon=1, hidden=8))
    pol.fit_normalization(np.array([[0.0], [1.0]]), np.zeros((2, 1)))
    pol.save_pretrained(tmp_path)
    back = MLPFlowPolicy.from_pretrained(tmp_path)
    assert back.config.obs_clip == OBS_CLIP
    assert back.normalized_state(torch.tensor([[100.0]])).item() == OBS_CLIP

"""FPO pieces on hand-made numbers: ratio, clipping, masks, GAE, critics' fits, Q-ensemble targets,
NaN safety."""

from __future__ import annotations

import math

import pytest
import torch

from fpoctl.envs import get_task
from fpoctl.train import trainer as trainer_module
from fpoctl.train.config import FinetuneConfig
from fpoctl.train.critics import QEnsemble, explained_variance, make_critic
from fpoctl.train.fpo import chunk_gae, fpo_loss
from fpoctl.train.rollout import collect_rollout
from fpoctl.train.trainer import FPOTrainer
from fpoctl.train.update import NonFiniteLoss, chunk_cfm_loss, fpo_update
from policies.mlp import MLPFlowConfig, MLPFlowPolicy


def small_trainer(*, action_dim: int = 2, events: list[tuple[str, str, str]] | None = None,
                  **overrides: object) -> FPOTrainer:
    """A fast-goal trainer (4 envs x 4 chunks) with a horizon-4 MLP policy acting in `action_dim`
    dims; `events` collects the (level, kind, message) events it reports."""
    cfg = FinetuneConfig(**{"task": "fast-goal", "num_envs": 4, "rollout_chunks": 4,
                            "minibatch_size": 8, "n_mc": 4, **overrides})
    torch.manual_seed(0)
    policy = MLPFlowPolicy(MLPFlowConfig(obs_dim=4, action_dim=action_dim, horizon=4, hidden=32))
    on_event = None if events is None else lambda *event: events.append(event)
    return FPOTrainer(cfg, policy, get_task("fast-goal"), torch.device("cpu"), on_event=on_event)


def rollout_of(tr: FPOTrainer):
    obs = tr.venv.reset(seed=0)
    rollout, _ = collect_rollout(tr.policy, tr.venv, obs, chunks=4, exec_steps=tr.exec_steps,
                                 d_env=2, n_mc=tr.cfg.n_mc, gamma=0.99, flow_steps=10,
                                 explore_scale=0.5, explore_steps=None, generator=tr.generator,
                                 device=tr.device)
    return rollout


@pytest.mark.parametrize("ratio", ["per_sample", "averaged"])
def test_ratio_is_exactly_one_on_the_first_minibatch_after_a_rollout(ratio: str) -> None:
    tr = small_trainer(ratio=ratio, update_epochs=2)
    rollout = rollout_of(tr)
    seen = {}
    adv = torch.randn(rollout.size)
    fpo_update(tr.policy, tr.actor_opt, rollout, adv, tr.cfg, tr.device, tr.cpu_generator,
               on_minibatch=lambda e, i, s: seen.setdefault((e, i), s))
    first = seen[(0, 0)]
    assert first.ratio_mean.item() == 1.0 and first.ratio_max.item() == 1.0
    assert first.clip_frac.item() == 0.0 and first.approx_kl.item() == 0.0
    later = seen[max(seen)]
    assert later.ratio_max.item() != 1.0  # the policy moved, so later ratios differ


def test_per_sample_and_averaged_ratios_on_hand_made_losses() -> None:
    l_old = torch.tensor([[1.0, 1.0]])
    l_new = torch.tensor([[0.9, 1.3]])  # diffs +0.1 and -0.3
    adv = torch.tensor([1.0])
    per = fpo_loss(l_old, l_new, adv, clip_eps=0.05, ratio="per_sample")
    r = torch.tensor([math.exp(0.1), math.exp(-0.3)])
    # positive advantage: min(r A, clip(r) A) -> [1.05 (clipped), exp(-0.3) (unclipped)]
    assert per.policy_loss.item() == pytest.approx(-(1.05 + r[1].item()) / 2)
    assert per.clip_frac.item() == 1.0  # both ratios outside [0.95, 1.05]
    avg = fpo_loss(l_old, l_new, adv, clip_eps=0.05, ratio="averaged")
    assert avg.ratio_mean.item() == pytest.approx(math.exp(-0.1))  # exp(mean(+0.1, -0.3))
    assert avg.policy_loss.item() == pytest.approx(-math.exp(-0.1))  # below 1 - eps: not clipped
    neg = fpo_loss(l_old, l_new, -adv, clip_eps=0.05, ratio="averaged")
    assert neg.policy_loss.item() == pytest.approx(0.95)  # negative A: clipped at 1 - eps


def test_losses_and_differences_are_clamped_before_exp() -> None:
    out = fpo_loss(torch.tensor([[50.0]]), torch.tensor([[0.0]]), torch.tensor([1.0]),
                   clip_eps=0.05, loss_clamp=20.0, diff_clamp=3.0)
    assert out.ratio_max.item() == pytest.approx(math.exp(3.0))
    huge = fpo_loss(torch.tensor([[0.0]]), torch.tensor([[1e6]]), torch.tensor([1.0]),
                    clip_eps=0.05, loss_clamp=20.0, diff_clamp=3.0)
    assert torch.isfinite(huge.policy_loss) and huge.ratio_mean.item() == pytest.approx(math.exp(-3))


def test_masks_keep_unexecuted_steps_and_padding_out_of_the_ratio() -> None:
    # A policy with one padding action dim (3 vs the task's 2) executing 2 of its 4 chunk steps.
    tr = small_trainer(action_dim=3, exec_steps=2)
    cfg, policy = tr.cfg, tr.policy
    rollout = rollout_of(tr)
    assert rollout.mask[:, :2, :2].all()  # executed steps x used dims count
    assert not rollout.mask[:, 2:].any() and not rollout.mask[..., 2].any()
    idx = torch.arange(8)
    got = chunk_cfm_loss(policy, rollout, idx, cfg, tr.device)
    a, t, e = rollout.actions[idx], rollout.t[idx], rollout.noise[idx]
    with torch.no_grad():
        x_t = t[..., None, None] * e + (1 - t[..., None, None]) * a[:, None]
        state = torch.as_tensor(rollout.obs["state"][idx.numpy()])[:, None].expand(-1, 4, -1)
        err = (policy.velocity(x_t, t, state) - (e - a[:, None])).pow(2)
    expected = err[:, :, :2, :2].mean(dim=(-2, -1))  # by hand: only the counted elements
    assert torch.allclose(got, expected, atol=1e-6)


def test_chunk_gae_on_hand_made_numbers() -> None:
    rewards = torch.tensor([[0.0], [1.0]])
    values = torch.tensor([[0.5], [0.5]])
    next_values = torch.tensor([[0.5], [9.0]])  # 9.0 must be ignored: the episode terminated
    discounts = torch.tensor([[0.9], [0.9]])
    term = torch.tensor([[False], [True]])
    adv, ret = chunk_gae(rewards, values, next_values, discounts, term, term, lam=0.5)
    d1 = 1.0 - 0.5
    d0 = 0.0 + 0.9 * 0.5 - 0.5
    assert adv[1, 0].item() == pytest.approx(d1)
    assert adv[0, 0].item() == pytest.approx(d0 + 0.9 * 0.5 * d1)
    assert torch.allclose(ret, adv + values)


def test_q_ensemble_td_target_uses_the_minimum_of_the_target_critics() -> None:
    q = QEnsemble(feature_dim=1, action_numel=1, size=3, hidden=8)
    for j, net in enumerate(q.target):  # target critic j returns the constant j + 1
        for p in net.parameters():
            torch.nn.init.zeros_(p)
        net[-1].bias.data.fill_(j + 1.0)
    y = q.td_target(torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.9]), torch.tensor([False, True]),
                    torch.zeros(2, 1), torch.zeros(2, 1))
    assert y.tolist() == pytest.approx([0.5 + 0.9 * 1.0, 0.5])
    before = [p.clone() for p in q.target.parameters()]
    q.polyak_update(0.5)
    assert any(not torch.equal(a, b) for a, b in zip(before, q.target.parameters(), strict=True))


def test_q_ensemble_iteration_logs_ensemble_statistics() -> None:
    metrics = small_trainer(critic="q_ensemble", q_ensemble_size=3).train_iteration()
    assert {"critic/q_mean", "critic/q_std", "critic/q_min", "critic/loss"} <= set(metrics)
    assert metrics["critic/q_min"] <= metrics["critic/q_mean"]
    assert metrics["critic/q_std"] > 0


def test_non_finite_losses_skip_updates_then_stop() -> None:
    tr = small_trainer(max_nan_updates=3)
    rollout = rollout_of(tr)
    before = [p.clone() for p in tr.policy.parameters()]
    events = []
    with pytest.raises(NonFiniteLoss):
        fpo_update(tr.policy, tr.actor_opt, rollout, torch.full((rollout.size,), float("nan")),
                   tr.cfg, tr.device, tr.cpu_generator, on_nonfinite=events.append)
    assert len(events) == 3 and "skipped" in events[0]
    assert all(torch.equal(a, b) for a, b in zip(before, tr.policy.parameters(), strict=True))


def test_critic_warmup_fits_only_the_critic_for_its_iterations() -> None:
    tr = small_trainer(critic_warmup=2)
    actor = [p.clone() for p in tr.policy.parameters()]
    critic = [p.clone() for p in tr.critic.parameters()]
    for _ in range(2):
        assert tr.train_iteration()["fpo/updates"] == 0
    assert all(torch.equal(a, b) for a, b in zip(actor, tr.policy.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(critic, tr.critic.parameters(), strict=True))
    assert tr.train_iteration()["fpo/updates"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(actor, tr.policy.parameters(), strict=True))


def test_exec_steps_beyond_the_chunk_execute_the_chunk_and_say_so() -> None:
    events: list[tuple[str, str, str]] = []
    tr = small_trainer(events=events, exec_steps=9)
    assert tr.exec_steps == 4
    assert events == [("warning", "config", "exec_steps 9 is more than the policy's chunk of 4 "
                       "steps: executing 4")]
    tr.close()


def test_critic_warmup_covering_every_iteration_is_warned_about() -> None:
    events: list[tuple[str, str, str]] = []
    tr = small_trainer(events=events, exec_steps=4, iterations=3, critic_warmup=3)
    tr.close()
    assert events == [("warning", "config", "critic_warmup 3 is not less than iterations 3: "
                       "the actor will not be updated")]


@pytest.mark.parametrize("critic", ["value", "q_ensemble"])
def test_gae_runs_once_per_iteration_for_either_critic(critic: str, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(trainer_module, "chunk_gae", lambda *a: calls.append(a) or chunk_gae(*a))
    small_trainer(critic=critic, q_ensemble_size=2).train_iteration()
    assert len(calls) == 1


def test_value_critic_regresses_on_the_returns_of_the_gae_that_gives_the_advantages() -> None:
    tr = small_trainer()
    rollout = rollout_of(tr)
    inputs = tr.critic_inputs(rollout)
    with torch.no_grad():
        before = tr.critic(inputs.features).view(rollout.rewards.shape)
    seen, first_loss = [], []

    def gae(values, next_values):
        seen.append(chunk_gae(rollout.rewards, values, next_values, rollout.discounts,
                              rollout.terminated, rollout.ended, 0.95))
        return seen[-1]

    regress = tr.critic.regression.fit

    def recording(loss_fn, size, after_step=None):  # the regression's loss before its first step
        first_loss.append(float(loss_fn(torch.arange(size)).detach()))
        return regress(loss_fn, size, after_step)

    tr.critic.regression.fit = recording
    fit = tr.critic.fit(inputs, gae)
    (adv, returns), = seen
    assert torch.equal(fit.values, before) and torch.equal(fit.advantages, adv)
    assert torch.allclose(returns, adv + before)
    assert first_loss == [pytest.approx(float((before - returns).pow(2).mean()))]  # target: returns
    assert fit.metrics["critic/explained_variance"] == pytest.approx(
        1 - adv.var(correction=0).item() / returns.var(correction=0).item())


def test_explained_variance_is_cleanrls() -> None:
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(y, y) == 1.0
    assert explained_variance(torch.full((4,), 2.5), y) == pytest.approx(0.0)
    assert math.isnan(explained_variance(y, torch.ones(4)))


def test_an_unknown_critic_is_refused() -> None:
    cfg = FinetuneConfig(critic="q-table")
    with pytest.raises(ValueError, match="critic must be one of"):
        make_critic(cfg, 4, 8, device=torch.device("cpu"), generator=torch.Generator())

"""The FPO trainer: rollout -> critic -> advantages -> FPO update, one iteration at a time.

Maps onto DESIGN.md "FPO": (1) `collect_rollout` stores each chunk with N_mc (t, noise) pairs;
(2-3) `fpo_update` forms the ratio from CFM-loss differences and the clipped surrogate; (4) the
critic (`critics.py`: value network, or the Q-ensemble with min-of-targets TD) fits itself and
gives GAE advantages, GAE computed once;
(5) masks keep only executed steps and used dims; (6) exploration noise in the sampler, zero noise
at evaluation. Under torchrun each rank has its own envs and seed; see `distributed.py` (and
`sharding.py` for `shard = "fsdp"`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fpoctl import metric_names as m
from fpoctl.envs import TaskSpec, make_vector_env
from fpoctl.train.config import CHOICES, EVAL_SEED_OFFSET, RESET_SEED_STRIDE, FinetuneConfig
from fpoctl.train.critics import CriticInputs, make_critic
from fpoctl.train.distributed import LOCAL, RANK_SEED_STRIDE, Ranks
from fpoctl.train.evaluate import check_policy_fits
from fpoctl.train.fpo import chunk_gae
from fpoctl.train.protocol import EvalProgress, Evaluator
from fpoctl.train.rollout import Rollout, collect_rollout, take
from fpoctl.train.sharding import (
    GatheredPolicy,
    full_optimizer_state,
    full_weights,
    load_full_optimizer_state,
    shard_policy,
)
from fpoctl.train.update import fpo_update
from policies.base import FlowPolicy

EventFn = Callable[[str, str, str], None]  # (level, kind, message)


class FPOTrainer:
    """Holds the policy, critic, optimisers and envs of one fine-tuning run."""

    def __init__(self, cfg: FinetuneConfig, policy: FlowPolicy, task: TaskSpec, device: torch.device,
                 on_event: EventFn | None = None, ranks: Ranks = LOCAL) -> None:
        if cfg.critic not in CHOICES["critic"]:
            raise ValueError(f"critic must be one of {CHOICES['critic']}, got {cfg.critic!r}")
        self.cfg, self.policy, self.task, self.device, self.ranks = cfg, policy, task, device, ranks
        self.on_event = on_event or (lambda level, kind, msg: None)
        self.seed = cfg.seed + RANK_SEED_STRIDE * ranks.rank  # envs and samplers of this rank
        self.venv = make_vector_env(task, cfg.num_envs, obs_mode=cfg.obs_mode, seed=self.seed,
                                    workers=cfg.workers, **(cfg.env_kwargs or {}))
        self._evaluator: Evaluator | None = None
        self.d_env = int(self.venv.single_action_space.shape[0])
        self.exec_steps = min(cfg.exec_steps, policy.horizon)
        if cfg.exec_steps > policy.horizon:
            self.on_event("warning", "config", f"exec_steps {cfg.exec_steps} is more than the "
                          f"policy's chunk of {policy.horizon} steps: executing {policy.horizon}")
        if cfg.critic_warmup >= cfg.iterations:
            self.on_event("warning", "config", f"critic_warmup {cfg.critic_warmup} is not less "
                          f"than iterations {cfg.iterations}: the actor will not be updated")
        self.generator = torch.Generator(device).manual_seed(self.seed)
        self.cpu_generator = torch.Generator().manual_seed(self.seed + 1)
        self.critic = make_critic(cfg, policy.critic_feature_dim, self.exec_steps * self.d_env,
                                  device=device, generator=self.cpu_generator, ranks=ranks)
        ranks.broadcast_([*policy.state_dict().values(), *self.critic.state_dict().values()])
        self.sharded = cfg.shard == "fsdp" and ranks.world > 1
        if self.sharded:
            shard_policy(policy, ranks, device)
        self.actor_opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad],
                                          lr=cfg.actor_lr, eps=1e-5)
        self.iteration, self.env_steps = 0, 0
        self.obs: dict[str, Any] | None = None
        self._crashes_seen = 0  # env worker failures already reported

    # -- one iteration ------------------------------------------------------------------
    def train_iteration(self) -> dict[str, float]:
        """Rollout, critic, advantages, FPO update. Returns this iteration's metrics."""
        t0 = time.perf_counter()
        rollout = self.collect()
        t_rollout = time.perf_counter() - t0
        t1 = time.perf_counter()
        learn_metrics = self.learn(rollout)
        t_update = time.perf_counter() - t1
        self.iteration += 1
        self.env_steps += rollout.env_steps
        metrics = {**self._rollout_metrics(rollout), **learn_metrics,
                   m.PERF_ENV_STEPS_PER_S: rollout.env_steps / max(t_rollout, 1e-9),
                   m.PERF_UPDATE_S: t_update, m.PERF_ROLLOUT_S: t_rollout,
                   m.ENV_STEPS: float(self.env_steps)}
        if self.device.type == "cuda":
            metrics[m.PERF_GPU_MEM_GB] = torch.cuda.max_memory_allocated(self.device) / 2**30
        return metrics

    def collect(self) -> Rollout:
        """(1) This rank's rollout: chunks with their stored (t, noise) pairs."""
        cfg = self.cfg
        if self.obs is None:  # fresh envs (start, or after a resume)
            self.obs = self.venv.reset(seed=self.seed + RESET_SEED_STRIDE * self.iteration)
            check_policy_fits(self.policy, self.obs, self.d_env, self.device)
        rollout, self.obs = collect_rollout(
            self.policy, self.venv, self.obs, chunks=cfg.rollout_chunks,
            exec_steps=self.exec_steps, d_env=self.d_env, n_mc=cfg.n_mc, gamma=cfg.gamma,
            flow_steps=cfg.flow_steps, explore_scale=cfg.explore_scale,
            explore_steps=cfg.explore_steps, generator=self.generator, device=self.device)
        crashes = getattr(self.venv, "crashes", [])  # worker envs recover from a dead simulator
        for crash in crashes[self._crashes_seen:]:
            self.on_event("warning", "env", f"env worker {crash['env']} failed and was replaced "
                          f"({crash['error']}); its episode counts as failed")
        self._crashes_seen = len(crashes)
        return rollout

    def learn(self, rollout: Rollout) -> dict[str, float]:
        """(4) Fit the critic and take GAE advantages, normalised over all ranks; (2-3, 5) the
        FPO update. GAE runs once: the critic calls `gae` when its values are ready."""
        cfg = self.cfg

        def gae(values: Tensor, next_values: Tensor) -> tuple[Tensor, Tensor]:
            return chunk_gae(rollout.rewards, values, next_values, rollout.discounts,
                             rollout.terminated, rollout.ended, cfg.gae_lambda)

        critic = self.critic.fit(self.critic_inputs(rollout), gae)
        if self.iteration < cfg.critic_warmup:
            return {**critic.metrics, m.FPO_UPDATES: 0.0}
        adv = critic.advantages.flatten()
        if cfg.norm_adv:
            adv = self.ranks.normalize(adv)
        fpo_metrics = fpo_update(self.policy, self.actor_opt, rollout, adv, cfg, self.device,
                                 self.cpu_generator,
                                 on_nonfinite=lambda msg: self.on_event("warning", "nan", msg),
                                 ranks=self.ranks)
        return {**critic.metrics, **fpo_metrics}

    @staticmethod
    def _rollout_metrics(rollout: Rollout) -> dict[str, float]:
        out = {m.ROLLOUT_CHUNK_REWARD: float(rollout.rewards.mean())}
        if rollout.episodes:
            out[m.ROLLOUT_SUCCESS] = float(np.mean([e["success"] for e in rollout.episodes]))
            out[m.ROLLOUT_RETURN] = float(np.mean([e["return"] for e in rollout.episodes]))
            out[m.ROLLOUT_EPISODE_LEN] = float(np.mean([e["length"] for e in rollout.episodes]))
            out[m.ROLLOUT_EPISODES] = float(len(rollout.episodes))
            crashed = sum(bool(e.get("crashed")) for e in rollout.episodes)
            if crashed:
                out[m.ROLLOUT_CRASHED] = float(crashed)
        return out

    # -- what the critic sees ---------------------------------------------------------------
    def critic_inputs(self, rollout: Rollout) -> CriticInputs:
        """Critic features of s and s', the executed part of each chunk, and a ~ pi on demand."""
        actions = rollout.actions[:, :self.exec_steps, :self.d_env].float().to(self.device)
        return CriticInputs(rollout, self._features(rollout.obs), self._features(rollout.next_obs),
                            actions, self._sample_actions)

    @torch.no_grad()
    def _features(self, obs: dict[str, Any], batch: int = 512) -> Tensor:
        size = len(next(iter(obs.values())))
        chunks = [self.policy.critic_features(self.policy.prepare(take(obs, idx), self.device))
                  for idx in torch.arange(size).split(batch)]
        return torch.cat(chunks).float()

    @torch.no_grad()
    def _sample_actions(self, obs: dict[str, Any], batch: int = 512) -> Tensor:
        """a ~ pi(s) without exploration noise, cut to the executed steps and used dims."""
        size = len(next(iter(obs.values())))
        out = [self.policy.sample(self.policy.prepare(take(obs, idx), self.device),
                                  steps=self.cfg.flow_steps, generator=self.generator)
               for idx in torch.arange(size).split(batch)]
        return torch.cat(out)[:, :self.exec_steps, :self.d_env].float()

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, episodes: int | None = None, progress: EvalProgress | None = None,
                 record: Path | None = None) -> dict[str, float]:
        """The evaluation protocol (`protocol.py`: init states 0..N-1; a suite: N per task and
        the mean over tasks) on separate envs, `eval_noise` sampling; `progress` hears of each
        episode done. Sharded: every rank runs the same evaluation in step (rank 0's result is
        the one recorded). `record`: a folder for videos of the first `eval_videos` episodes."""
        cfg = self.cfg
        if self._evaluator is None:
            self._evaluator = Evaluator(self.task, num_envs=cfg.num_envs, obs_mode=cfg.obs_mode,
                                        seed=cfg.seed + EVAL_SEED_OFFSET, workers=cfg.workers,
                                        env_kwargs=cfg.env_kwargs)
        return self._evaluator.run(self.policy, episodes or cfg.eval_episodes,
                                   exec_steps=self.exec_steps, flow_steps=cfg.flow_steps,
                                   device=self.device, noise=cfg.eval_noise,
                                   all_done=self.ranks.all_true if self.sharded else None,
                                   progress=progress, record=record if cfg.eval_videos else None,
                                   record_episodes=cfg.eval_videos).metrics

    def close(self) -> None:
        """Close the envs."""
        self.venv.close()
        if self._evaluator is not None:
            self._evaluator.close()

    # -- checkpoint state (weights of the policy are saved by the policy itself) ---------
    def saved_policy(self) -> Any:
        """What a checkpoint saves of the policy: the policy, or when sharded its full weights
        gathered to rank 0 (every rank must call this)."""
        return GatheredPolicy(self.policy, full_weights(self.policy)) if self.sharded else self.policy

    def state_dict(self) -> dict[str, Any]:
        """Critic, optimisers, counters, and this rank's RNG and env-step count. Sharded: the
        actor optimiser's full state by parameter name, on rank 0 (every rank must call this)."""
        actor_opt = full_optimizer_state(self.policy, self.actor_opt) if self.sharded \
            else self.actor_opt.state_dict()
        return {"critic": self.critic.state_dict(), "actor_opt": actor_opt,
                "critic_opt": self.critic.regression.optimizer.state_dict(), "iteration": self.iteration,
                **self.rank_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned; the envs start fresh episodes."""
        self.critic.load_state_dict(state["critic"])
        if self.sharded:
            load_full_optimizer_state(self.policy, self.actor_opt, state["actor_opt"])
        else:
            self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic.regression.optimizer.load_state_dict(state["critic_opt"])
        self.iteration = int(state["iteration"])
        self.load_rank_state(state)

    def rank_state(self) -> dict[str, Any]:
        """What differs between ranks: the RNG states and the env steps taken."""
        return {"generator": self.generator.get_state(), "cpu_generator": self.cpu_generator.get_state(),
                "env_steps": self.env_steps}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        """Restore `rank_state()`; the envs start fresh episodes."""
        self.generator.set_state(state["generator"])
        self.cpu_generator.set_state(state["cpu_generator"])
        self.env_steps = int(state["env_steps"])
        self.obs = None

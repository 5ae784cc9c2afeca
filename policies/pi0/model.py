"""The pi0 network: PaliGemma (SigLIP + Gemma 2B) reads the observation, a Gemma-300M action
expert predicts the flow velocity of an action chunk; module names equal `lerobot/pi0_base`'s keys.

Convention (the opposite of the pi0 paper, the same as openpi): t = 1 is noise, t = 0 the action;
x_t = t * noise + (1 - t) * a and the network predicts u = noise - a.

The paper's split: `embed_prefix` (images, then prompt tokens; bidirectional) is computed once per
observation and kept as a KV cache; `embed_suffix` (state token, then H noisy-action tokens fused
with the time) is what the expert re-runs for every Euler step and every Monte-Carlo (t, noise).
`PaliGemmaFlowModel` holds what pi0 and pi0.5 (policies/pi05) share: the prefix, the cached and the
joint velocity, the sampler and the shared-prefix CFM loss; each model says how its suffix is made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from policies import flow
from policies.pi0.config import Pi0Config
from policies.pi0.gemma import GemmaModel, KVCache, joint_forward
from policies.pi0.siglip import SiglipVisionTower

Tokens = tuple[Tensor, Tensor, Tensor]
"""A token sequence as the mask rule needs it: embeddings [B, N, W], valid [B, N], ar [B, N]."""
Suffix = tuple[Tensor, Tensor, Tensor, Tensor | None]
"""The expert's tokens (embeddings, valid, ar as in Tokens) and its adaRMS condition [B, W_expert]
(pi0.5's time embedding; None for pi0, whose expert norms are plain)."""


def make_attn_mask(valid: Tensor, ar: Tensor) -> Tensor:
    """big_vision's rule: token i attends token j iff cumsum(ar)[j] <= cumsum(ar)[i] and both are valid.

    `ar` [B, N] is 1 where a token starts a new block that earlier tokens cannot see, 0 where it
    shares the block of the token before it; `valid` [B, N] is False for padding. Returns bool
    [B, N, N] (query i, key j). Worked examples (all tokens valid):

      ar = [1 1 1 1]  -> causal: each token sees itself and the ones before it.
      ar = [0 0 1 1]  -> prefix-LM: tokens 0-1 see each other; 2 sees 0-2; 3 sees 0-3.
      ar = [0 0 0 1 1 0 0]  -> pi0 with 3 prefix tokens, a state token and 3 action tokens
            (cumsum [0 0 0 1 2 2 2]): the prefix (0-2) sees only the prefix; the state (3) sees
            the prefix and itself; each action (4-6) sees everything: prefix, state, all actions.
    A padded token is seen by nobody and sees nothing.
    """
    cum = torch.cumsum(ar.to(torch.int32), dim=1)
    mask = cum[:, None, :] <= cum[:, :, None]
    return mask & valid[:, None, :] & valid[:, :, None]


class Projector(nn.Module):
    """`multi_modal_projector.linear`: vision width -> language width (features are NOT rescaled)."""

    def __init__(self, width_in: int, width_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width_in, width_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class PaliGemmaModel(nn.Module):
    """vision_tower, multi_modal_projector, language_model (with the `embed_tokens` prompts use)."""

    def __init__(self, config: Pi0Config) -> None:
        super().__init__()
        self.vision_tower = SiglipVisionTower(config.vision, config.image_size)
        self.multi_modal_projector = Projector(config.vision.width, config.vlm.width)
        self.language_model = GemmaModel(config.vlm, config.vocab_size)


class PaliGemma(nn.Module):
    """`paligemma.model` and `paligemma.lm_head`: a table of its own, as LeRobot keeps it (openpi ties
    it to embed_tokens). pi0 never computes logits, so lm_head is stored and never trained; prompts
    are embedded with `embed_tokens`, which a full fine-tune trains."""

    def __init__(self, config: Pi0Config) -> None:
        super().__init__()
        self.model = PaliGemmaModel(config)
        self.lm_head = nn.Linear(config.vlm.width, config.vocab_size, bias=False)


class GemmaForCausalLM(nn.Module):
    """The action expert: `model` (layers, norm; adaRMS norms given `cond_dim`) and an unused
    `lm_head` kept for the key layout."""

    def __init__(self, config: Pi0Config, cond_dim: int | None = None) -> None:
        super().__init__()
        self.model = GemmaModel(config.expert, cond_dim=cond_dim)
        self.lm_head = nn.Linear(config.expert.width, config.vocab_size, bias=False)


class PaliGemmaWithExpert(nn.Module):
    """The two transformers that share attention."""

    def __init__(self, config: Pi0Config, expert_cond_dim: int | None = None) -> None:
        super().__init__()
        self.paligemma = PaliGemma(config)
        self.gemma_expert = GemmaForCausalLM(config, expert_cond_dim)


class PaliGemmaFlowModel(nn.Module):
    """`paligemma_with_expert` and the flow machinery of pi0 and pi0.5. A subclass adds its heads
    (`action_out_proj` among them) and implements `_suffix`: the expert's tokens for x_t at t, made
    from the batch entries it names in `suffix_keys` (cfm_loss repeats those N_mc times)."""

    suffix_keys: tuple[str, ...] = ()
    action_out_proj: nn.Linear

    def __init__(self, config: Pi0Config, expert_cond_dim: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.paligemma_with_expert = PaliGemmaWithExpert(config, expert_cond_dim)

    # -- parts -------------------------------------------------------------------------
    @property
    def language_model(self) -> GemmaModel:
        """The VLM's decoder stack."""
        return self.paligemma_with_expert.paligemma.model.language_model

    @property
    def action_expert(self) -> GemmaModel:
        """The action expert's decoder stack."""
        return self.paligemma_with_expert.gemma_expert.model

    def _stacks(self) -> list[GemmaModel]:
        return [self.language_model, self.action_expert]

    def _dtype_of(self, stack: GemmaModel) -> torch.dtype:
        return stack.layers[0].self_attn.q_proj.weight.dtype

    def _autocast(self, enabled: bool) -> torch.autocast:
        return torch.autocast(self.action_out_proj.weight.device.type, dtype=torch.bfloat16, enabled=enabled)

    def compute_precision(self) -> torch.autocast:
        """The entry points run under this: with dtype="bfloat16" the transformers compute in bf16
        (autocast), whatever their weights are stored in; the vision tower, projector and heads
        compute in float32 (as LeRobot's bf16 pi0 keeps them)."""
        return self._autocast(self.config.dtype == "bfloat16")

    # -- prefix: images + prompt -------------------------------------------------------
    def embed_images(self, images: Tensor) -> Tensor:
        """images [B, C, 3, S, S] in [-1, 1] -> tokens [B, C * T, W_vlm] (camera after camera)."""
        b, c = images.shape[:2]
        pg = self.paligemma_with_expert.paligemma.model
        with self._autocast(False):
            tokens = pg.vision_tower(images.flatten(0, 1).float(), self.config.gradient_checkpointing)
            feats = pg.multi_modal_projector(tokens)  # [B*C, T, W]
        return feats.reshape(b, c * feats.shape[1], feats.shape[2])

    def embed_prefix(self, batch: Mapping[str, Tensor]) -> Tokens:
        """Image tokens of every camera slot, then prompt tokens (x sqrt(width)); all ar = 0.

        Camera slots masked for the whole batch are left out: their tokens would be invalid
        anyway, and positions count valid tokens only, so the result is the same, cheaper.
        """
        images, img_valid = batch["images"], batch["image_masks"]
        keep = img_valid.any(dim=0)
        images, img_valid = images[:, keep], img_valid[:, keep]
        tokens, tok_valid = batch["tokens"], batch["token_masks"]
        dtype = self._dtype_of(self.language_model)
        lang = self.language_model.embed_tokens(tokens) * math.sqrt(self.config.vlm.width)
        parts, valid = [lang.to(dtype)], [tok_valid]
        if images.shape[1] > 0:
            img = self.embed_images(images).to(dtype)
            n_img = img.shape[1] // images.shape[1]
            parts.insert(0, img)
            valid.insert(0, img_valid.repeat_interleave(n_img, dim=1))
        embs, pad = torch.cat(parts, dim=1), torch.cat(valid, dim=1)
        return embs, pad, torch.zeros_like(pad, dtype=torch.int32)

    def prefix_cache(self, prefix: Tokens) -> KVCache:
        """Run the language model alone over the prefix; keep every layer's keys and values."""
        embs, pad, ar = prefix
        positions = torch.cumsum(pad.to(torch.int64), dim=1) - 1
        _, cache = joint_forward(self._stacks(), [embs, None], make_attn_mask(pad, ar), positions,
                                 gradient_checkpointing=self.config.gradient_checkpointing)
        return cache

    # -- velocity: the expert over a suffix ----------------------------------------------
    def _suffix(self, inputs: Mapping[str, Tensor], x_t: Tensor, t: Tensor) -> Suffix:
        """The expert's tokens for x_t [B, H, D] at t [B], from `inputs` (the suffix_keys entries)."""
        raise NotImplementedError

    def _velocity_from_expert(self, out: Tensor) -> Tensor:
        h = self.config.chunk_size
        with self._autocast(False):
            return self.action_out_proj(out[:, -h:].to(self.action_out_proj.weight.dtype))

    def _velocity_cached(self, cache: KVCache, prefix_pad: Tensor, suffix: Suffix) -> Tensor:
        """v [B, H, D] from the expert alone, attending to [prefix cache + suffix]; the suffix
        positions continue after the valid prefix tokens."""
        embs, pad, ar, cond = suffix
        b, n = pad.shape
        mask = torch.cat([prefix_pad[:, None, :].expand(b, n, prefix_pad.shape[1]),
                          make_attn_mask(pad, ar)], dim=2)
        positions = prefix_pad.sum(dim=1, keepdim=True) + torch.cumsum(pad.to(torch.int64), dim=1) - 1
        (_, out), _ = joint_forward(self._stacks(), [None, embs], mask, positions, past=cache,
                                    conds=[None, cond],
                                    gradient_checkpointing=self.config.gradient_checkpointing)
        return self._velocity_from_expert(out)

    def _velocity_full(self, prefix: Tokens, suffix: Suffix) -> Tensor:
        """v [B, H, D] from ONE joint pass over prefix + suffix (no cache; the reference path)."""
        s_embs, s_pad, s_ar, cond = suffix
        pad = torch.cat([prefix[1], s_pad], dim=1)
        ar = torch.cat([prefix[2], s_ar], dim=1)
        positions = torch.cumsum(pad.to(torch.int64), dim=1) - 1
        (_, out), _ = joint_forward(self._stacks(), [prefix[0], s_embs], make_attn_mask(pad, ar), positions,
                                    conds=[None, cond],
                                    gradient_checkpointing=self.config.gradient_checkpointing)
        return self._velocity_from_expert(out)

    # -- flow matching -----------------------------------------------------------------
    def _prefix_trainable(self) -> bool:
        return torch.is_grad_enabled() and any(
            p.requires_grad for p in self.paligemma_with_expert.paligemma.parameters())

    def sample_actions(self, batch: Mapping[str, Any], noise: Tensor, *, steps: int = 10,
                       explore_scale: float = 0.0, explore_steps: Sequence[int] | None = None,
                       generator: torch.Generator | None = None, use_cache: bool = True) -> Tensor:
        """Euler-integrate from `noise` [B, H, D] (zeros: zero-noise sampling) to action chunks.

        With the cache (default) the prefix runs once and each step runs only the expert;
        use_cache=False re-runs the whole joint model every step (same result, for checks).
        """
        with self.compute_precision():
            prefix = self.embed_prefix(batch)
            inputs = {k: batch[k] for k in self.suffix_keys}
            if use_cache:
                cache = self.prefix_cache(prefix)
                def velocity(x: Tensor, t: Tensor) -> Tensor:
                    return self._velocity_cached(cache, prefix[1], self._suffix(inputs, x, t))
            else:
                def velocity(x: Tensor, t: Tensor) -> Tensor:
                    return self._velocity_full(prefix, self._suffix(inputs, x, t))
            return flow.euler_sample(velocity, noise, steps=steps, explore_scale=explore_scale,
                                     explore_steps=explore_steps, generator=generator)

    def cfm_loss(self, batch: Mapping[str, Any], actions: Tensor, t: Tensor, noise: Tensor,
                 mask: Tensor | None = None, reduction: str = "mean") -> Tensor:
        """Per-sample CFM losses [B, N] for t [B, N], noise [B, N, H, D], actions [B, H, D].

        The prefix runs ONCE; its KV cache is repeated along the batch so the N suffix passes run
        as one batch of B * N. When no VLM parameter is trainable the prefix runs without autograd.
        """
        b, n = t.shape
        with self.compute_precision():
            with torch.set_grad_enabled(self._prefix_trainable()):
                prefix = self.embed_prefix(batch)
                cache = self.prefix_cache(prefix)
            cache = [(k.repeat_interleave(n, dim=0), v.repeat_interleave(n, dim=0)) for k, v in cache]
            inputs = {k: batch[k].repeat_interleave(n, dim=0) for k in self.suffix_keys}
            x_t = flow.interpolate(actions, noise, t).flatten(0, 1)
            v = self._velocity_cached(cache, prefix[1].repeat_interleave(n, dim=0),
                                      self._suffix(inputs, x_t, t.flatten()))
        return flow.cfm_loss(v.unflatten(0, (b, n)).float(), actions.float(), noise.float(), mask, reduction)

    def prefix_features(self, batch: Mapping[str, Any]) -> Tensor:
        """Mean over valid prefix tokens of the language model's final-normed output [B, W_vlm]."""
        with self.compute_precision():
            embs, pad, ar = self.embed_prefix(batch)
            positions = torch.cumsum(pad.to(torch.int64), dim=1) - 1
            (out, _), _ = joint_forward(self._stacks(), [embs, None], make_attn_mask(pad, ar), positions)
        w = pad.to(torch.float32)[..., None]
        return (out.float() * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)


class Pi0Model(PaliGemmaFlowModel):
    """pi0: `paligemma_with_expert` plus the state/action/time heads."""

    suffix_keys = ("state",)

    def __init__(self, config: Pi0Config) -> None:
        super().__init__(config)
        width = config.expert.width
        self.state_proj = nn.Linear(config.max_state_dim, width)
        self.action_in_proj = nn.Linear(config.max_action_dim, width)
        self.action_time_mlp_in = nn.Linear(2 * width, width)
        self.action_time_mlp_out = nn.Linear(width, width)
        self.action_out_proj = nn.Linear(width, config.max_action_dim)

    # -- suffix: state + noisy actions + time ------------------------------------------
    def embed_suffix(self, state: Tensor, x_t: Tensor, t: Tensor) -> Tokens:
        """state [B, S], x_t [B, H, D], t [B] -> 1 + H expert tokens; ar = [1, 1, 0, ..., 0].

        The state token opens a block the prefix cannot see; the first action token opens another
        one, so the state does not see the actions while every action sees all actions.
        """
        with self._autocast(False):
            state_tok = self.state_proj(state.to(self.state_proj.weight.dtype))[:, None]
            act = self.action_in_proj(x_t.to(self.action_in_proj.weight.dtype))
            temb = flow.posemb_sincos(t, act.shape[-1], self.config.min_period, self.config.max_period)
            temb = temb.to(act.dtype)[:, None].expand_as(act)
            act = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(torch.cat([act, temb], dim=-1))))
        embs = torch.cat([state_tok, act], dim=1).to(self._dtype_of(self.action_expert))
        b, n = embs.shape[:2]
        pad = torch.ones(b, n, dtype=torch.bool, device=embs.device)
        ar = torch.zeros(b, n, dtype=torch.int32, device=embs.device)
        ar[:, :2] = 1
        return embs, pad, ar

    def _suffix(self, inputs: Mapping[str, Tensor], x_t: Tensor, t: Tensor) -> Suffix:
        return (*self.embed_suffix(inputs["state"], x_t, t), None)

    def velocity_cached(self, cache: KVCache, prefix_pad: Tensor, state: Tensor, x_t: Tensor,
                        t: Tensor) -> Tensor:
        """v [B, H, D] from the expert alone, attending to [prefix cache + suffix]."""
        return self._velocity_cached(cache, prefix_pad, self._suffix({"state": state}, x_t, t))

    def velocity_full(self, prefix: Tokens, state: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """v [B, H, D] from ONE joint pass over prefix + suffix (no cache; the reference path)."""
        return self._velocity_full(prefix, self._suffix({"state": state}, x_t, t))

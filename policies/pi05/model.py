"""The pi0.5 network: pi0's PaliGemma and joint attention, with the flow time entering the action
expert through adaRMSNorm instead of the action tokens, and the state moved into the prompt.

Convention (as pi0, openpi and LeRobot): t = 1 is noise, t = 0 the action; x_t = t * noise +
(1 - t) * a and the network predicts u = noise - a.

Deltas from pi0 (shared/reference/pi05.md section 1):
- Suffix: the H action tokens alone, action_in_proj(x_t); no state token (the normalised state is
  discretised into the prompt by the policy), no time concatenated with the actions.
- Time: cond = silu(time_mlp_out(silu(time_mlp_in(sincos(t))))) [B, W_expert] (note the final silu),
  one vector per sample; it modulates every expert norm (both of each layer and the final one):
  scale and shift inside the norm, a gate on the residual after attention and after the MLP. The
  VLM's norms stay plain, so the prefix (and its KV cache) does not depend on t.
- Mask: the suffix is ONE bidirectional block, ar = [1, 0, ..., 0]: every action token sees the valid
  prefix and all action tokens; the prefix sees no action token.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from policies import flow
from policies.pi0.gemma import KVCache
from policies.pi0.model import PaliGemmaFlowModel, Suffix, Tokens
from policies.pi05.config import Pi05Config


class Pi05Model(PaliGemmaFlowModel):
    """pi0.5: `paligemma_with_expert` (adaRMS action expert) plus the action and time heads; module
    names equal LeRobot's PI05Pytorch keys."""

    suffix_keys = ()  # the suffix reads nothing of the observation: the state is in the prompt

    def __init__(self, config: Pi05Config) -> None:
        width = config.expert.width
        super().__init__(config, expert_cond_dim=width)  # adarms_cond_dim = the expert width
        self.action_in_proj = nn.Linear(config.max_action_dim, width)
        self.action_out_proj = nn.Linear(width, config.max_action_dim)
        self.time_mlp_in = nn.Linear(width, width)
        self.time_mlp_out = nn.Linear(width, width)

    # -- suffix: noisy actions, and the time as the expert's adaRMS condition ------------
    def embed_suffix(self, x_t: Tensor, t: Tensor) -> Suffix:
        """x_t [B, H, D], t [B] -> H expert tokens [B, H, W] with ar = [1, 0, ..., 0] and the
        condition [B, W] (float32: the heads and the norms' dense layers stay float32 in bf16 mode)."""
        with self._autocast(False):
            act = self.action_in_proj(x_t.to(self.action_in_proj.weight.dtype))
            temb = flow.posemb_sincos(t, act.shape[-1], self.config.min_period, self.config.max_period)
            hidden = F.silu(self.time_mlp_in(temb.to(self.time_mlp_in.weight.dtype)))
            cond = F.silu(self.time_mlp_out(hidden))
        embs = act.to(self._dtype_of(self.action_expert))
        b, n = embs.shape[:2]
        pad = torch.ones(b, n, dtype=torch.bool, device=embs.device)
        ar = torch.zeros(b, n, dtype=torch.int32, device=embs.device)
        ar[:, 0] = 1  # the first action token opens the block the prefix cannot see
        return embs, pad, ar, cond

    def _suffix(self, inputs: Mapping[str, Tensor], x_t: Tensor, t: Tensor) -> Suffix:
        return self.embed_suffix(x_t, t)

    def velocity_cached(self, cache: KVCache, prefix_pad: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """v [B, H, D] from the expert alone, attending to [prefix cache + suffix]."""
        return self._velocity_cached(cache, prefix_pad, self.embed_suffix(x_t, t))

    def velocity_full(self, prefix: Tokens, x_t: Tensor, t: Tensor) -> Tensor:
        """v [B, H, D] from ONE joint pass over prefix + suffix (no cache; the reference path)."""
        return self._velocity_full(prefix, self.embed_suffix(x_t, t))

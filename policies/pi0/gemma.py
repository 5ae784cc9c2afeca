"""Gemma decoder stacks and the joint attention of the language model and the action expert (pi0, pi0.5).

Each layer: every expert normalises its own tokens (RMSNorm, scale 1 + w, float32), computes its
own q/k/v; the sequences are concatenated for ONE attention op (RoPE on positions, MQA, scale
1/sqrt(head_dim)); each expert then applies its own o_proj, residual, RMSNorm, GeGLU MLP, residual.
pi0.5's action expert normalises with `AdaRMSNorm` instead: a per-sample condition (the flow time)
gives each norm its scale, shift and a gate that multiplies the sublayer output in the residual.
An expert whose input is None is skipped, and keys/values may come from a cache (the prefix).
A joint layer is entered through a module call of each present expert's layer (`enter_joint_layer`),
so wrappers that act on module calls (FSDP2 gathers a sharded layer's weights) see every use.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from policies.pi0.config import GemmaSpec

RMS_EPS = 1e-6
ROPE_MAX_WAVELENGTH = 10_000.0
MASKED_LOGIT = -2.3819763e38  # openpi's value for masked logits (finite: no NaN on empty rows)

KVCache = list[tuple[Tensor, Tensor]]  # per layer (k, v): [B, kv_heads, L, head_dim], RoPE applied


class RMSNorm(nn.Module):
    """Gemma RMSNorm: x / rms(x) * (1 + w), computed in float32, returned in x's dtype."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(width))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + RMS_EPS)
        return (xf * (1.0 + self.weight.float())).to(x.dtype)


class AdaRMSNorm(nn.Module):
    """pi0.5's adaptive RMSNorm (LeRobot's PiGemmaRMSNorm given a condition). It has no `weight`:
    `dense` maps the condition c [B, C] to [scale | shift | gate] [B, 3W], and
    out = x / rms(x) * (1 + scale) + shift (float32, returned in x's dtype); `gate` is returned for
    the gated residual h + sublayer(out) * gate that follows. The condition is one vector per sample,
    shared by all its tokens."""

    def __init__(self, width: int, cond_dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(cond_dim, 3 * width)
        nn.init.zeros_(self.dense.weight)  # as LeRobot: a fresh norm is modulated by the bias alone

    def forward(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        """x [B, L, W], cond [B, C] -> (normed [B, L, W], gate [B, 1, W]), both in x's dtype."""
        # The modulation is computed in float32 even under bf16 autocast (LeRobot keeps it float32).
        with torch.autocast(x.device.type, enabled=False):
            mod = self.dense(cond.to(self.dense.weight.dtype))[:, None, :]
        scale, shift, gate = mod.float().chunk(3, dim=-1)
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + RMS_EPS)
        return (xf * (1.0 + scale) + shift).to(x.dtype), gate.to(x.dtype)


Norm = RMSNorm | AdaRMSNorm


def apply_norm(norm: Norm, x: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """(normed x, residual gate or None): a plain RMSNorm ignores `cond`, an AdaRMSNorm needs it."""
    if isinstance(norm, AdaRMSNorm):
        if cond is None:
            raise ValueError("an adaRMS-normed expert needs its condition (the time embedding)")
        return norm(x, cond)
    return norm(x), None


def _gated(h: Tensor, out: Tensor, gate: Tensor | None) -> Tensor:
    """The residual h + out (pi0) or h + out * gate (pi0.5's adaRMS-normed expert)."""
    return h + (out if gate is None else out * gate.to(out.dtype)).to(h.dtype)


class GemmaAttention(nn.Module):
    """The attention projections of one expert (the attention op itself is joint)."""

    def __init__(self, spec: GemmaSpec) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = spec.num_heads, spec.num_kv_heads, spec.head_dim
        self.q_proj = nn.Linear(spec.width, spec.num_heads * spec.head_dim, bias=False)
        self.k_proj = nn.Linear(spec.width, spec.num_kv_heads * spec.head_dim, bias=False)
        self.v_proj = nn.Linear(spec.width, spec.num_kv_heads * spec.head_dim, bias=False)
        self.o_proj = nn.Linear(spec.num_heads * spec.head_dim, spec.width, bias=False)


class GemmaMLP(nn.Module):
    """GeGLU: down(gelu_tanh(gate(x)) * up(x))."""

    def __init__(self, spec: GemmaSpec) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(spec.width, spec.mlp_dim, bias=False)
        self.up_proj = nn.Linear(spec.width, spec.mlp_dim, bias=False)
        self.down_proj = nn.Linear(spec.mlp_dim, spec.width, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


def make_norm(width: int, cond_dim: int | None) -> Norm:
    """RMSNorm, or AdaRMSNorm conditioned on a `cond_dim` vector."""
    return RMSNorm(width) if cond_dim is None else AdaRMSNorm(width, cond_dim)


class GemmaDecoderLayer(nn.Module):
    """Norms, attention projections and MLP of one expert in one layer (adaRMS norms given cond_dim)."""

    def __init__(self, spec: GemmaSpec, cond_dim: int | None = None) -> None:
        super().__init__()
        self.input_layernorm = make_norm(spec.width, cond_dim)
        self.self_attn = GemmaAttention(spec)
        self.post_attention_layernorm = make_norm(spec.width, cond_dim)
        self.mlp = GemmaMLP(spec)

    def forward(self, inner: Sequence[GemmaDecoderLayer], layers: Sequence[GemmaDecoderLayer],
                hiddens: Sequence[Tensor | None], conds: Sequence[Tensor | None], mask: Tensor,
                positions: Tensor, past: tuple[Tensor, Tensor] | None
                ) -> tuple[list[Tensor | None], tuple[Tensor, Tensor]]:
        """One step into the joint layer `layers`: call the next present expert's layer (`inner`), or,
        inside the last one, compute the layer. See `enter_joint_layer`."""
        if inner:
            return inner[0](inner[1:], layers, hiddens, conds, mask, positions, past)
        return _joint_layer(layers, hiddens, conds, mask, positions, past)


class GemmaModel(nn.Module):
    """A decoder stack: `layers.N`, the final `norm` and, given a vocabulary, the `embed_tokens` table
    (the language model has one; the action expert embeds no tokens). With `cond_dim` every norm,
    the final one included, is an AdaRMSNorm (pi0.5's action expert)."""

    def __init__(self, spec: GemmaSpec, vocab_size: int | None = None, cond_dim: int | None = None) -> None:
        super().__init__()
        if vocab_size is not None:
            self.embed_tokens = nn.Embedding(vocab_size, spec.width)
        self.layers = nn.ModuleList(GemmaDecoderLayer(spec, cond_dim) for _ in range(spec.depth))
        self.norm = make_norm(spec.width, cond_dim)


def apply_rope(x: Tensor, positions: Tensor) -> Tensor:
    """Rotary embedding (Gemma's half-split form) of x [B, H, L, D] at integer positions [B, L]."""
    half = x.shape[-1] // 2
    exponents = torch.arange(half, device=x.device, dtype=torch.float32) * (2.0 / x.shape[-1])
    timescale = ROPE_MAX_WAVELENGTH ** exponents
    radians = positions.to(torch.float32)[:, None, :, None] / timescale  # [B, 1, L, D/2]
    sin, cos = torch.sin(radians), torch.cos(radians)
    x1, x2 = x.float().split(half, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def _joint_layer(layers: Sequence[GemmaDecoderLayer], hiddens: Sequence[Tensor | None],
                 conds: Sequence[Tensor | None], mask: Tensor, positions: Tensor,
                 past: tuple[Tensor, Tensor] | None) -> tuple[list[Tensor | None], tuple[Tensor, Tensor]]:
    """One layer over all present experts. conds: each expert's adaRMS condition [B, C] (None for
    plain norms); mask: additive [B, 1, Q, K]. Returns outputs and new (k, v)."""
    qs, ks, vs, gates = [], [], [], []
    for layer, h, cond in zip(layers, hiddens, conds, strict=True):
        if h is None:
            gates.append(None)
            continue
        attn = layer.self_attn
        x, gate = apply_norm(layer.input_layernorm, h, cond)
        gates.append(gate)
        b, n = x.shape[:2]
        qs.append(attn.q_proj(x).view(b, n, attn.num_heads, attn.head_dim).transpose(1, 2))
        ks.append(attn.k_proj(x).view(b, n, attn.num_kv_heads, attn.head_dim).transpose(1, 2))
        vs.append(attn.v_proj(x).view(b, n, attn.num_kv_heads, attn.head_dim).transpose(1, 2))
    dtype = qs[0].dtype
    q = apply_rope(torch.cat([t.to(dtype) for t in qs], dim=2), positions)
    k = apply_rope(torch.cat([t.to(dtype) for t in ks], dim=2), positions)
    v = torch.cat([t.to(dtype) for t in vs], dim=2)
    new_kv = (k, v)
    if past is not None:
        k, v = torch.cat([past[0].to(dtype), k], dim=2), torch.cat([past[1].to(dtype), v], dim=2)
    groups = q.shape[1] // k.shape[1]  # multi-query: every query head shares the kv head(s)
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(dtype))  # scale 1/sqrt(head_dim)
    out = out.transpose(1, 2).flatten(2)  # [B, Q, H * D]

    outputs: list[Tensor | None] = []
    start = 0
    for layer, h, cond, gate in zip(layers, hiddens, conds, gates, strict=True):
        if h is None:
            outputs.append(None)
            continue
        o = layer.self_attn.o_proj(out[:, start:start + h.shape[1]].to(layer.self_attn.o_proj.weight.dtype))
        start += h.shape[1]
        h = _gated(h, o, gate)
        x, gate = apply_norm(layer.post_attention_layernorm, h, cond)
        h = _gated(h, layer.mlp(x), gate)
        outputs.append(h)
    return outputs, new_kv


def enter_joint_layer(layers: Sequence[GemmaDecoderLayer], hiddens: Sequence[Tensor | None],
                      conds: Sequence[Tensor | None], mask: Tensor, positions: Tensor,
                      past: tuple[Tensor, Tensor] | None
                      ) -> tuple[list[Tensor | None], tuple[Tensor, Tensor]]:
    """`_joint_layer` run inside nested module calls of the present experts' layers (the first
    calls the second, which computes): the joint op reads both experts' weights between its
    projections, so each layer's call must span the whole joint layer. Absent experts are not called."""
    present = [layer for layer, h in zip(layers, hiddens, strict=True) if h is not None]
    return present[0](present[1:], layers, hiddens, conds, mask, positions, past)


def additive_mask(mask: Tensor) -> Tensor:
    """bool [B, Q, K] (True = may attend) -> additive float [B, 1, Q, K]."""
    zero = torch.zeros((), dtype=torch.float32, device=mask.device)
    return torch.where(mask, zero, torch.tensor(MASKED_LOGIT, device=mask.device))[:, None]


def joint_forward(stacks: Sequence[GemmaModel], hiddens: Sequence[Tensor | None], mask: Tensor,
                  positions: Tensor, past: KVCache | None = None, *,
                  conds: Sequence[Tensor | None] | None = None, gradient_checkpointing: bool = False
                  ) -> tuple[list[Tensor | None], KVCache]:
    """Run all layers; hiddens [B, L_i, W_i] per expert (None = skip), mask bool [B, Q, past + Q],
    positions [B, Q], conds the adaRMS condition [B, C] per expert (None: plain norms). Returns
    final-normed outputs per expert (the final norm's gate is unused) and this call's KV cache."""
    add_mask = additive_mask(mask)
    conds = [None] * len(stacks) if conds is None else list(conds)
    cache: KVCache = []
    hs = list(hiddens)
    for i in range(len(stacks[0].layers)):
        layers = [s.layers[i] for s in stacks]
        layer_past = None if past is None else past[i]
        if gradient_checkpointing and torch.is_grad_enabled():
            hs, kv = checkpoint(enter_joint_layer, layers, hs, conds, add_mask, positions, layer_past,
                                use_reentrant=False)
        else:
            hs, kv = enter_joint_layer(layers, hs, conds, add_mask, positions, layer_past)
        cache.append(kv)
    return [None if h is None else apply_norm(s.norm, h, c)[0]
            for s, h, c in zip(stacks, hs, conds, strict=True)], cache

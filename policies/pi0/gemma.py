"""Gemma decoder stacks and pi0's joint attention of the language model and the action expert.

Each layer: every expert normalises its own tokens (RMSNorm, scale 1 + w, float32), computes its
own q/k/v; the sequences are concatenated for ONE attention op (RoPE on positions, MQA, scale
1/sqrt(head_dim)); each expert then applies its own o_proj, residual, RMSNorm, GeGLU MLP, residual.
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


class GemmaDecoderLayer(nn.Module):
    """Norms, attention projections and MLP of one expert in one layer."""

    def __init__(self, spec: GemmaSpec) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(spec.width)
        self.self_attn = GemmaAttention(spec)
        self.post_attention_layernorm = RMSNorm(spec.width)
        self.mlp = GemmaMLP(spec)

    def forward(self, inner: Sequence[GemmaDecoderLayer], layers: Sequence[GemmaDecoderLayer],
                hiddens: Sequence[Tensor | None], mask: Tensor, positions: Tensor,
                past: tuple[Tensor, Tensor] | None) -> tuple[list[Tensor | None], tuple[Tensor, Tensor]]:
        """One step into the joint layer `layers`: call the next present expert's layer (`inner`), or,
        inside the last one, compute the layer. See `enter_joint_layer`."""
        if inner:
            return inner[0](inner[1:], layers, hiddens, mask, positions, past)
        return _joint_layer(layers, hiddens, mask, positions, past)


class GemmaModel(nn.Module):
    """A decoder stack: `layers.N`, the final `norm` and, given a vocabulary, the `embed_tokens` table
    (the language model has one; the action expert embeds no tokens)."""

    def __init__(self, spec: GemmaSpec, vocab_size: int | None = None) -> None:
        super().__init__()
        if vocab_size is not None:
            self.embed_tokens = nn.Embedding(vocab_size, spec.width)
        self.layers = nn.ModuleList(GemmaDecoderLayer(spec) for _ in range(spec.depth))
        self.norm = RMSNorm(spec.width)


def apply_rope(x: Tensor, positions: Tensor) -> Tensor:
    """Rotary embedding (Gemma's half-split form) of x [B, H, L, D] at integer positions [B, L]."""
    half = x.shape[-1] // 2
    exponents = torch.arange(half, device=x.device, dtype=torch.float32) * (2.0 / x.shape[-1])
    timescale = ROPE_MAX_WAVELENGTH ** exponents
    radians = positions.to(torch.float32)[:, None, :, None] / timescale  # [B, 1, L, D/2]
    sin, cos = torch.sin(radians), torch.cos(radians)
    x1, x2 = x.float().split(half, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def _joint_layer(layers: Sequence[GemmaDecoderLayer], hiddens: Sequence[Tensor | None], mask: Tensor,
                 positions: Tensor, past: tuple[Tensor, Tensor] | None
                 ) -> tuple[list[Tensor | None], tuple[Tensor, Tensor]]:
    """One layer over all present experts. mask: additive [B, 1, Q, K]. Returns outputs and new (k, v)."""
    qs, ks, vs = [], [], []
    for layer, h in zip(layers, hiddens, strict=True):
        if h is None:
            continue
        attn = layer.self_attn
        x = layer.input_layernorm(h)
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
    for layer, h in zip(layers, hiddens, strict=True):
        if h is None:
            outputs.append(None)
            continue
        o = layer.self_attn.o_proj(out[:, start:start + h.shape[1]].to(layer.self_attn.o_proj.weight.dtype))
        start += h.shape[1]
        h = h + o.to(h.dtype)
        h = h + layer.mlp(layer.post_attention_layernorm(h)).to(h.dtype)
        outputs.append(h)
    return outputs, new_kv


def enter_joint_layer(layers: Sequence[GemmaDecoderLayer], hiddens: Sequence[Tensor | None], mask: Tensor,
                      positions: Tensor, past: tuple[Tensor, Tensor] | None
                      ) -> tuple[list[Tensor | None], tuple[Tensor, Tensor]]:
    """`_joint_layer` run inside nested module calls of the present experts' layers (the first
    calls the second, which computes): the joint op reads both experts' weights between its
    projections, so each layer's call must span the whole joint layer. Absent experts are not called."""
    present = [layer for layer, h in zip(layers, hiddens, strict=True) if h is not None]
    return present[0](present[1:], layers, hiddens, mask, positions, past)


def additive_mask(mask: Tensor) -> Tensor:
    """bool [B, Q, K] (True = may attend) -> additive float [B, 1, Q, K]."""
    zero = torch.zeros((), dtype=torch.float32, device=mask.device)
    return torch.where(mask, zero, torch.tensor(MASKED_LOGIT, device=mask.device))[:, None]


def joint_forward(stacks: Sequence[GemmaModel], hiddens: Sequence[Tensor | None], mask: Tensor,
                  positions: Tensor, past: KVCache | None = None, *, gradient_checkpointing: bool = False
                  ) -> tuple[list[Tensor | None], KVCache]:
    """Run all layers; hiddens [B, L_i, W_i] per expert (None = skip), mask bool [B, Q, past + Q],
    positions [B, Q]. Returns final-normed outputs per expert and this call's KV cache."""
    add_mask = additive_mask(mask)
    cache: KVCache = []
    hs = list(hiddens)
    for i in range(len(stacks[0].layers)):
        layers = [s.layers[i] for s in stacks]
        layer_past = None if past is None else past[i]
        if gradient_checkpointing and torch.is_grad_enabled():
            hs, kv = checkpoint(enter_joint_layer, layers, hs, add_mask, positions, layer_past,
                                use_reentrant=False)
        else:
            hs, kv = enter_joint_layer(layers, hs, add_mask, positions, layer_past)
        cache.append(kv)
    return [None if h is None else s.norm(h) for s, h in zip(stacks, hs, strict=True)], cache

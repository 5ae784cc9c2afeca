"""SigLIP vision tower (PaliGemma's, without pooling head), named like HF's `SiglipVisionModel`.

images [B, 3, S, S] in [-1, 1] -> patch tokens [B, (S/patch)^2, width]. Pre-norm transformer,
LayerNorm eps 1e-6, tanh-GELU MLP, bidirectional attention, post LayerNorm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from policies.pi0.config import VisionSpec

LN_EPS = 1e-6


class SiglipEmbeddings(nn.Module):
    """Conv patch embedding plus a learned position embedding per patch."""

    def __init__(self, spec: VisionSpec, image_size: int) -> None:
        super().__init__()
        self.patch_embedding = nn.Conv2d(3, spec.width, spec.patch_size, stride=spec.patch_size)
        self.position_embedding = nn.Embedding((image_size // spec.patch_size) ** 2, spec.width)

    def forward(self, images: Tensor) -> Tensor:
        x = self.patch_embedding(images.to(self.patch_embedding.weight.dtype))  # [B, W, s, s]
        x = x.flatten(2).transpose(1, 2)  # [B, s*s, W]
        return x + self.position_embedding.weight[None]


class SiglipAttention(nn.Module):
    """Multi-head self-attention with biased projections."""

    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        self.num_heads = spec.num_heads
        self.q_proj = nn.Linear(spec.width, spec.width)
        self.k_proj = nn.Linear(spec.width, spec.width)
        self.v_proj = nn.Linear(spec.width, spec.width)
        self.out_proj = nn.Linear(spec.width, spec.width)

    def forward(self, x: Tensor) -> Tensor:
        b, n, w = x.shape
        q, k, v = (p(x).view(b, n, self.num_heads, -1).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head_dim)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, w))


class SiglipMLP(nn.Module):
    """fc1 -> tanh-GELU -> fc2."""

    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        self.fc1 = nn.Linear(spec.width, spec.mlp_dim)
        self.fc2 = nn.Linear(spec.mlp_dim, spec.width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SiglipEncoderLayer(nn.Module):
    """x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(spec.width, eps=LN_EPS)
        self.self_attn = SiglipAttention(spec)
        self.layer_norm2 = nn.LayerNorm(spec.width, eps=LN_EPS)
        self.mlp = SiglipMLP(spec)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class SiglipEncoder(nn.Module):
    """The stack of encoder layers."""

    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        self.layers = nn.ModuleList(SiglipEncoderLayer(spec) for _ in range(spec.depth))


class SiglipVisionModel(nn.Module):
    """embeddings -> encoder -> post_layernorm."""

    def __init__(self, spec: VisionSpec, image_size: int) -> None:
        super().__init__()
        self.embeddings = SiglipEmbeddings(spec, image_size)
        self.encoder = SiglipEncoder(spec)
        self.post_layernorm = nn.LayerNorm(spec.width, eps=LN_EPS)

    def forward(self, images: Tensor, gradient_checkpointing: bool = False) -> Tensor:
        x = self.embeddings(images)
        for layer in self.encoder.layers:
            if gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return self.post_layernorm(x)


class SiglipVisionTower(nn.Module):
    """Wrapper giving the `vision_tower.vision_model.` key prefix."""

    def __init__(self, spec: VisionSpec, image_size: int) -> None:
        super().__init__()
        self.vision_model = SiglipVisionModel(spec, image_size)

    def forward(self, images: Tensor, gradient_checkpointing: bool = False) -> Tensor:
        return self.vision_model(images, gradient_checkpointing)

"""Observation preprocessing for pi0 and pi0.5: images, prompts (SentencePiece), normalisation.

Images: uint8 [B, H, W, 3] -> resized without distortion and centre padded (black) to S x S,
scaled to [-1, 1], channels first. Prompts as LeRobot's pi0 processor writes them: the raw task
with "\\n" appended when missing (no strip, no '_' replacement: openpi cleans, LeRobot does not),
BOS + tokens, cut to max_length, right padded with id 0 (mask False); pi0.5's prompts are complete
already (no "\\n" appended). State and actions, LeRobot's normalizer / unnormalizer pairs:
MEAN_STD (x - mean) / (std + eps) in, x * std + mean out (pi0); QUANTILES 2 (x - q01) / (q99 - q01) - 1
in, (y + 1) (q99 - q01) / 2 + q01 out (pi0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from policies.errors import PolicyError


def resize_with_pad(images: Tensor, size: int) -> Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, size, size] in [-1, 1], aspect ratio kept, black padding.

    Follows openpi's torch path: bilinear resize of the uint8 values (rounded back to integers),
    padding split evenly (the odd pixel goes to the bottom / right).
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise PolicyError(f"images must be uint8 [B, H, W, 3], got {images.dtype} {list(images.shape)}")
    x = images.permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        ratio = max(w / size, h / size)
        rh, rw = int(h / ratio), int(w / ratio)
        x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False).round().clamp(0, 255)
        top, left = (size - rh) // 2, (size - rw) // 2
        x = F.pad(x, (left, size - rw - left, top, size - rh - top), value=0.0)
    return x / 127.5 - 1.0


class PromptTokenizer:
    """PaliGemma's SentencePiece tokenisation of prompts into fixed-length, right-padded ids.
    `newline`: append "\\n" when missing (LeRobot's pi0 newline step; pi0.5 has none)."""

    def __init__(self, model_file: str | Path, max_length: int, newline: bool = True) -> None:
        import sentencepiece as spm

        self.path = Path(model_file)
        if not self.path.is_file():
            raise PolicyError(f"tokenizer model {self.path} does not exist")
        self.max_length, self.newline = max_length, newline
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(self.path))
        except (RuntimeError, OSError) as exc:
            raise PolicyError(f"{self.path} is not a SentencePiece model: {exc}") from None

    @property
    def vocab_size(self) -> int:
        """Number of ids the model can emit."""
        return self.sp.get_piece_size()

    def encode(self, prompt: str) -> list[int]:
        """BOS + tokens of the prompt (with "\\n" appended when missing, if `newline`), cut to max_length."""
        text = prompt if prompt.endswith("\n") or not self.newline else prompt + "\n"
        return self.sp.encode(text, add_bos=True)[: self.max_length]

    def __call__(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """tokens [B, L] int64 (0-padded) and mask [B, L] bool."""
        tokens = torch.zeros(len(prompts), self.max_length, dtype=torch.int64)
        mask = torch.zeros(len(prompts), self.max_length, dtype=torch.bool)
        for i, prompt in enumerate(prompts):
            ids = self.encode(prompt)
            tokens[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
            mask[i, : len(ids)] = True
        return tokens, mask


class MeanStd:
    """(x - mean) / (std + eps) over the first len(mean) dims; identity when no stats are known."""

    MODE = "MEAN_STD"
    KEYS = ("mean", "std")
    """The stats it reads and writes, as LeRobot's flat keys `<feature>.<key>` name them."""

    def __init__(self, mean: np.ndarray | Tensor | None = None, std: np.ndarray | Tensor | None = None,
                 eps: float = 1e-8) -> None:
        if (mean is None) != (std is None):
            raise PolicyError("normalisation needs both mean and std")
        self.mean = None if mean is None else torch.as_tensor(np.asarray(mean), dtype=torch.float32)
        self.std = None if std is None else torch.as_tensor(np.asarray(std), dtype=torch.float32)
        if self.mean is not None and self.mean.shape != self.std.shape:
            raise PolicyError(f"mean {list(self.mean.shape)} and std {list(self.std.shape)} differ in shape")
        self.eps = eps

    @classmethod
    def fit(cls, x: np.ndarray, eps: float = 1e-8) -> MeanStd:
        """Stats of data x [M, d]."""
        return cls(x.mean(0), x.std(0), eps)

    @property
    def dim(self) -> int | None:
        """Dims the stats cover (None: identity)."""
        return None if self.mean is None else self.mean.shape[0]

    def stats(self) -> dict[str, Tensor]:
        """KEYS -> tensor (empty: identity)."""
        return {} if self.mean is None else {"mean": self.mean, "std": self.std}

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        if self.mean is None:
            return None
        d = x.shape[-1]
        if d > self.mean.shape[0]:
            raise PolicyError(f"data has {d} dims but the normalisation stats only {self.mean.shape[0]}")
        return self.mean[:d].to(x.device), self.std[:d].to(x.device)

    def normalize(self, x: Tensor) -> Tensor:
        """Raw -> normalised (float32)."""
        stats = self._stats(x)
        x = x.float()
        return x if stats is None else (x - stats[0]) / (stats[1] + self.eps)

    def unnormalize(self, x: Tensor) -> Tensor:
        """Normalised -> raw (float32): x * std + mean, without eps (LeRobot's unnormalizer)."""
        stats = self._stats(x)
        x = x.float()
        return x if stats is None else x * stats[1] + stats[0]


class Quantiles:
    """LeRobot's QUANTILES mode over the first len(q01) dims: [q01, q99] -> [-1, 1], not clipped;
    where q99 == q01 the range is eps. Identity when no stats are known."""

    MODE = "QUANTILES"
    KEYS = ("q01", "q99")
    """The stats it reads and writes, as LeRobot's flat keys `<feature>.<key>` name them."""

    def __init__(self, q01: np.ndarray | Tensor | None = None, q99: np.ndarray | Tensor | None = None,
                 eps: float = 1e-8) -> None:
        if (q01 is None) != (q99 is None):
            raise PolicyError("quantile normalisation needs both q01 and q99")
        self.q01 = None if q01 is None else torch.as_tensor(np.asarray(q01), dtype=torch.float32)
        self.q99 = None if q99 is None else torch.as_tensor(np.asarray(q99), dtype=torch.float32)
        if self.q01 is not None and self.q01.shape != self.q99.shape:
            raise PolicyError(f"q01 {list(self.q01.shape)} and q99 {list(self.q99.shape)} differ in shape")
        self.eps = eps

    @classmethod
    def fit(cls, x: np.ndarray, eps: float = 1e-8) -> Quantiles:
        """The 1st and 99th percentiles of data x [M, d]."""
        return cls(np.quantile(x, 0.01, axis=0), np.quantile(x, 0.99, axis=0), eps)

    @property
    def dim(self) -> int | None:
        """Dims the stats cover (None: identity)."""
        return None if self.q01 is None else self.q01.shape[0]

    def stats(self) -> dict[str, Tensor]:
        """KEYS -> tensor (empty: identity)."""
        return {} if self.q01 is None else {"q01": self.q01, "q99": self.q99}

    def _range(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        if self.q01 is None:
            return None
        d = x.shape[-1]
        if d > self.q01.shape[0]:
            raise PolicyError(f"data has {d} dims but the normalisation stats only {self.q01.shape[0]}")
        q01, q99 = self.q01[:d].to(x.device), self.q99[:d].to(x.device)
        denom = q99 - q01
        return q01, torch.where(denom == 0, torch.tensor(self.eps, device=x.device), denom)

    def normalize(self, x: Tensor) -> Tensor:
        """Raw -> normalised (float32): 2 (x - q01) / (q99 - q01) - 1, LeRobot's order of operations."""
        rng = self._range(x)
        x = x.float()
        return x if rng is None else 2.0 * (x - rng[0]) / rng[1] - 1.0

    def unnormalize(self, x: Tensor) -> Tensor:
        """Normalised -> raw (float32): (y + 1) (q99 - q01) / 2 + q01."""
        rng = self._range(x)
        x = x.float()
        return x if rng is None else (x + 1.0) * rng[1] / 2.0 + rng[0]


Normalizer = MeanStd | Quantiles
NORMALIZERS: dict[str, type[MeanStd] | type[Quantiles]] = {MeanStd.MODE: MeanStd, Quantiles.MODE: Quantiles}
"""LeRobot's normalisation modes implemented here (STATE / ACTION; VISUAL is always IDENTITY)."""


def pad_last(x: Tensor, size: int, what: str) -> Tensor:
    """Zero-pad the last dim of x to `size` (error when x is larger)."""
    if x.shape[-1] > size:
        raise PolicyError(f"{what} has {x.shape[-1]} dims; this pi0 takes at most {size}")
    return F.pad(x, (0, size - x.shape[-1]))

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


class _StatPair:
    """Two per-dim stat vectors named by `KEYS` (LeRobot's flat keys `<feature>.<key>`), applied over
    the first `dim` dims of the data; no stats: the identity."""

    MODE: str
    KEYS: tuple[str, str]

    def __init__(self, first: np.ndarray | Tensor | None, second: np.ndarray | Tensor | None,
                 eps: float) -> None:
        a, b = self.KEYS
        if (first is None) != (second is None):
            raise PolicyError(f"{self.MODE} normalisation needs both {a} and {b}")
        self._pair = None if first is None else tuple(
            torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in (first, second))
        if self._pair is not None and self._pair[0].shape != self._pair[1].shape:
            raise PolicyError(f"{a} {list(self._pair[0].shape)} and {b} {list(self._pair[1].shape)} "
                              "differ in shape")
        self.eps = eps

    @property
    def dim(self) -> int | None:
        """Dims the stats cover (None: identity)."""
        return None if self._pair is None else self._pair[0].shape[0]

    def stats(self) -> dict[str, Tensor]:
        """KEYS -> tensor (empty: identity)."""
        return {} if self._pair is None else dict(zip(self.KEYS, self._pair, strict=True))

    def _for(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """The two stats cut to x's last dim and on its device (None: identity)."""
        if self._pair is None:
            return None
        d = x.shape[-1]
        if d > self._pair[0].shape[0]:
            raise PolicyError(f"data has {d} dims but the normalisation stats only {self._pair[0].shape[0]}")
        return self._pair[0][:d].to(x.device), self._pair[1][:d].to(x.device)


class MeanStd(_StatPair):
    """(x - mean) / (std + eps) over the first len(mean) dims; identity when no stats are known."""

    MODE = "MEAN_STD"
    KEYS = ("mean", "std")

    def __init__(self, mean: np.ndarray | Tensor | None = None, std: np.ndarray | Tensor | None = None,
                 eps: float = 1e-8) -> None:
        super().__init__(mean, std, eps)

    @property
    def mean(self) -> Tensor | None:
        """Per-dim means (None: identity)."""
        return None if self._pair is None else self._pair[0]

    @property
    def std(self) -> Tensor | None:
        """Per-dim standard deviations (None: identity)."""
        return None if self._pair is None else self._pair[1]

    @classmethod
    def fit(cls, x: np.ndarray, eps: float = 1e-8) -> MeanStd:
        """Stats of data x [M, d]."""
        return cls(x.mean(0), x.std(0), eps)

    def normalize(self, x: Tensor) -> Tensor:
        """Raw -> normalised (float32)."""
        stats = self._for(x)
        x = x.float()
        return x if stats is None else (x - stats[0]) / (stats[1] + self.eps)

    def unnormalize(self, x: Tensor) -> Tensor:
        """Normalised -> raw (float32): x * std + mean, without eps (LeRobot's unnormalizer)."""
        stats = self._for(x)
        x = x.float()
        return x if stats is None else x * stats[1] + stats[0]


class Quantiles(_StatPair):
    """LeRobot's QUANTILES mode over the first len(q01) dims: [q01, q99] -> [-1, 1], not clipped;
    where q99 == q01 the range is eps. Identity when no stats are known."""

    MODE = "QUANTILES"
    KEYS = ("q01", "q99")

    def __init__(self, q01: np.ndarray | Tensor | None = None, q99: np.ndarray | Tensor | None = None,
                 eps: float = 1e-8) -> None:
        super().__init__(q01, q99, eps)

    @property
    def q01(self) -> Tensor | None:
        """Per-dim 1st percentiles (None: identity)."""
        return None if self._pair is None else self._pair[0]

    @property
    def q99(self) -> Tensor | None:
        """Per-dim 99th percentiles (None: identity)."""
        return None if self._pair is None else self._pair[1]

    @classmethod
    def fit(cls, x: np.ndarray, eps: float = 1e-8) -> Quantiles:
        """The 1st and 99th percentiles of data x [M, d]."""
        return cls(np.quantile(x, 0.01, axis=0), np.quantile(x, 0.99, axis=0), eps)

    def _range(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        stats = self._for(x)
        if stats is None:
            return None
        q01, q99 = stats
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

"""Shared pieces of the pi0.5 tests: a toy SentencePiece tokenizer that knows pi0.5's state prompts,
and tiny policies whose norms (adaRMS modulation included) are random, so every parameter matters."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from pi0_helpers import PROMPTS  # (as the LeRobot fixture script imports it too: tests/ on sys.path)

from policies.pi05 import Pi05Policy, tiny_config
from policies.pi05.policy import state_prompt


def pi05_texts(n: int = 64, state_dim: int = 8, seed: int = 0) -> list[str]:
    """pi0.5 prompts of the test tasks with random state bins (what the tokenizer is trained on)."""
    rng = np.random.default_rng(seed)
    return [state_prompt(PROMPTS[i % len(PROMPTS)], rng.integers(-1, 256, state_dim)) for i in range(n)]


def train_pi05_tokenizer(folder: Path, name: str = "tok05.model") -> Path:
    """A small SentencePiece model with PaliGemma's special ids (pad 0, eos 1, bos 2) that splits
    digits (as Gemma's does) and keeps "\\n" a piece of its own."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(pi05_texts()), model_writer=buf, vocab_size=160,
                                   pad_id=0, eos_id=1, bos_id=2, unk_id=3, user_defined_symbols=["\n"],
                                   split_digits=True, hard_vocab_limit=False, add_dummy_prefix=False,
                                   normalization_rule_name="identity", minloglevel=2)
    path = folder / name
    path.write_bytes(buf.getvalue())
    return path


def tiny_pi05(tokenizer: Path, seed: int = 0, **kwargs) -> Pi05Policy:
    """A pi05-tiny with random norms (RMSNorm weights and adaRMS dense layers): the time modulation,
    shifts and gates all differ from a fresh model's."""
    torch.manual_seed(seed)
    config = {k: v for k, v in kwargs.items() if k in ("dtype", "tokenizer_max_length")}
    policy = Pi05Policy.create(tiny_config(**config), tokenizer=tokenizer,
                               **{k: v for k, v in kwargs.items() if k not in config})
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "norm" in name:
                p.normal_(0.0, 0.3 if ".dense." in name else 0.1)
    return policy

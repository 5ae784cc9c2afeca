"""Shared pieces of the pi0 tests: a tiny SentencePiece tokenizer, env-like observations, tiny policies."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from policies.pi0 import Pi0Policy, tiny_config

PROMPTS = ["pick up the black bowl and place it on the plate", "open the top drawer of the cabinet",
           "put the cream cheese in the bowl", "turn on the stove", "insert the peg into the socket",
           "transfer the cube to the other arm", "push the plate to the front of the stove",
           "put both the alphabet soup and the tomato sauce in the basket"]


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny-model tests run faster on one intra-op thread (and do not fight other processes)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_tokenizer(folder: Path) -> Path:
    """A ~60-piece SentencePiece model with PaliGemma's special ids (pad 0, eos 1, bos 2) and "\\n"."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(PROMPTS * 4), model_writer=buf, vocab_size=100,
                                   pad_id=0, eos_id=1, bos_id=2, unk_id=3, user_defined_symbols=["\n"],
                                   hard_vocab_limit=False, add_dummy_prefix=False,
                                   normalization_rule_name="identity", minloglevel=2)
    path = folder / "tok.model"
    path.write_bytes(buf.getvalue())
    return path


def env_obs(b: int = 2, cameras: tuple[str, ...] = ("agentview", "wrist"), size: tuple[int, int] = (48, 64),
            state_dim: int = 8, seed: int = 0) -> dict:
    """A batch of LIBERO-like env observations."""
    rng = np.random.default_rng(seed)
    obs = {f"image/{c}": rng.integers(0, 256, (b, *size, 3), dtype=np.uint8) for c in cameras}
    obs["state"] = rng.normal(size=(b, state_dim)).astype(np.float32)
    obs["prompt"] = PROMPTS[:b]
    return obs


def tiny_policy(tokenizer: Path, seed: int = 0, **kwargs) -> Pi0Policy:
    """A pi0-tiny with non-trivial (random) norms so every parameter matters."""
    torch.manual_seed(seed)
    policy = Pi0Policy.create(tiny_config(**{k: v for k, v in kwargs.items() if k == "dtype"}),
                              tokenizer=tokenizer, **{k: v for k, v in kwargs.items() if k != "dtype"})
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "norm" in name:
                p.normal_(0.0, 0.1)
    return policy


def finetune_one_libero_pixel_iteration(policy: str, tokenizer: Path, home: Path) -> tuple[set[str], Path]:
    """`fpoctl finetune --policy POLICY` for one small iteration on libero-spatial/0 in pixels mode
    (Q-ensemble critic); asserts the run finished and returns its metric keys and checkpoint folder."""
    from fpoctl.store import Store
    from tests.conftest import run_cli

    env = json.dumps({"image_size": 64, "max_steps": 40})
    proc = run_cli("finetune", "--foreground", "--task", "libero-spatial/0", "--policy", policy,
                   "--iterations", "1",
                   "--set", "obs_mode=pixels", "--set", f"tokenizer={tokenizer}",
                   "--set", f"env_kwargs={env}",
                   "--set", "num_envs=1", "--set", "rollout_chunks=2", "--set", "exec_steps=5",
                   "--set", "n_mc=2", "--set", "minibatch_size=2", "--set", "eval_episodes=1",
                   "--set", "critic=q_ensemble", "--set", "q_ensemble_size=2",
                   "--set", "eval_videos=1", timeout=900)
    assert proc.returncode == 0, proc.stderr
    for it in ("iter_0000", "iter_0001"):  # the prior's evaluation and the final one, 1 video each
        assert [p.name[:6] for p in (home / "runs" / "1" / "videos" / it).glob("*.mp4")] == ["ep000_"]
    assert "evaluation videos in" in run_cli("runs", "show", "1").stdout
    with Store(f"sqlite:///{home / 'fpoctl.db'}") as store:
        run = store.get_run(1)
        assert run.status == "finished" and run.policy == policy
        keys = {r.key for r in store.metrics_since(run.id)}
        return keys, Path(store.checkpoints(run.id)[-1].path) / "policy"

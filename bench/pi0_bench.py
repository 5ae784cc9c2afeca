"""pi0 benchmark: chunk sampling latency (batch 1 and 8) and cfm_loss forward+backward time and peak
memory with N_mc = 4 versus 1 at batch 8, for trainable scopes `expert` and `full`.

CUDA: full-size pi0 (random weights) in bf16. CPU: the tiny config in float32 (same code, same table).
Run: .venv/bin/python bench/pi0_bench.py [--size full|tiny] [--dtype bfloat16] [--repeats 5]
Target (issue 3): N_mc = 4 costs <= 1.3x N_mc = 1, thanks to the shared prefix.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from policies import flow
from policies.pi0 import Pi0Policy
from policies.pi0.config import full_config, tiny_config

PROMPTS = ["pick up the black bowl between the plate and the ramekin and place it on the plate",
           "open the top drawer and put the bowl inside", "turn on the stove and put the moka pot on it"]


def train_tokenizer(folder: Path) -> Path:
    """A small SentencePiece model (the real PaliGemma one is not needed for timing)."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(PROMPTS * 8), model_writer=buf, vocab_size=80,
                                   pad_id=0, eos_id=1, bos_id=2, unk_id=3, user_defined_symbols=["\n"],
                                   hard_vocab_limit=False, minloglevel=2)
    path = folder / "tok.model"
    path.write_bytes(buf.getvalue())
    return path


def libero_obs(b: int, rng: np.random.Generator) -> dict:
    """Two 256 x 256 cameras, an 8-d state, a prompt: what a LIBERO env hands the policy."""
    return {"image/agentview": rng.integers(0, 256, (b, 256, 256, 3), dtype=np.uint8),
            "image/wrist": rng.integers(0, 256, (b, 256, 256, 3), dtype=np.uint8),
            "state": rng.normal(size=(b, 8)).astype(np.float32),
            "prompt": [PROMPTS[i % len(PROMPTS)] for i in range(b)]}


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float]:
    """Median seconds of fn() after one warm-up, and peak GPU memory (GB) above the start (nan on CPU)."""
    fn()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() - base) / 1e9 if cuda else float("nan")
    return statistics.median(times), peak


def _gb(x: float) -> str:
    return "-" if x != x else f"{x:.2f}"  # nan (CPU) -> "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    parser.add_argument("--size", choices=["full", "tiny"], default="full" if cuda else "tiny")
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16" if cuda else "float32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="Euler steps per chunk")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if cuda else "cpu")
    make_config = full_config if args.size == "full" else tiny_config
    config = make_config(dtype=args.dtype, gradient_checkpointing=args.gradient_checkpointing)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(Path(tmp))
        t0 = time.perf_counter()
        policy = Pi0Policy.create(config, tokenizer=tokenizer, device=device)
        n_params = sum(p.numel() for p in policy.parameters())
    print(f"pi0 {args.size} ({n_params / 1e6:,.1f}M params, {args.dtype}) on "
          f"{torch.cuda.get_device_name() if cuda else 'CPU'}; built in {time.perf_counter() - t0:.1f} s; "
          f"chunk {policy.horizon}, {args.steps} Euler steps, 2 cameras")
    print(f"{'measurement':<50} {'time (ms)':>10} {'peak mem (GB)':>14}")

    for b in (1, 8):
        batch = policy.prepare(libero_obs(b, rng), device)
        sec, mem = timed(lambda batch=batch: policy.sample(batch, steps=args.steps), device, args.repeats)
        print(f"{f'sample chunk, batch {b}':<50} {1000 * sec:>10.1f} {_gb(mem):>14}")

    batch = policy.prepare(libero_obs(8, rng), device)
    actions = torch.randn(8, policy.horizon, policy.action_dim, device=device)
    for scope in ("expert", "full"):
        policy.set_trainable(scope)
        costs = {}
        for n_mc in (1, 4):
            t, noise = flow.sample_noise_and_time(actions, n_mc)

            def step(t: torch.Tensor = t, noise: torch.Tensor = noise) -> None:
                policy.zero_grad(set_to_none=True)
                policy.cfm_loss(batch, actions, t, noise).mean().backward()
            sec, mem = timed(step, device, args.repeats)
            costs[n_mc] = sec
            print(f"{f'cfm_loss fwd+bwd, batch 8, N_mc {n_mc}, scope {scope}':<50} {1000 * sec:>10.1f} "
                  f"{_gb(mem):>14}")
        print(f"{f'  N_mc 4 / N_mc 1 time, scope {scope}':<50} {costs[4] / costs[1]:>10.2f}x")
        policy.zero_grad(set_to_none=True)


if __name__ == "__main__":
    main()

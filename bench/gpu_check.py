"""One-command GPU check: full-size pi0 and pi0.5 (random init) speed and memory, FPO on LIBERO
pixels, EGL.

Writes bench/results/gpu.json (every cell as it finishes, so a killed run keeps what it measured):
- pi0 and pi0.5 (`--models`), bf16 and fp32: chunk sampling latency at batch 1 / 8 (10 Euler steps,
  prefix KV cache); cfm_loss forward+backward at batch --train-batch with N_mc 1 / 4 / 8 for the
  scopes expert / full / lora (gradients only, no optimiser step); peak CUDA memory of each cell.
  Cells are named MODEL/DTYPE/..., e.g. pi05/bfloat16/cfm/full/n_mc8.
- 3 FPO iterations (FPOTrainer.train_iteration, as `fpoctl finetune` runs them) of pi0 on
  libero-spatial/0 in pixels mode with 8 env worker processes: env steps/s, update s, GPU memory.
  pi0 is built in --fpo-dtype (bf16 by default; FinetuneConfig has no dtype key yet, so a
  `fpoctl finetune --policy pi0` run builds it in float32).
- EGL: MuJoCo offscreen frames/s of LIBERO's two 224 px cameras and the env's step rate with
  cameras (a synthetic MuJoCo scene when LIBERO is not installed), plus the GL renderer string.
- The analytic memory tables (no GPU needed, `--memory-only`): full-size pi0 and pi0.5 built on
  the meta device; per scope trainable/frozen parameter counts and the bytes of frozen weights (stored
  dtype), trainable weights as float32 master copies, float32 gradients and Adam's 2 x float32
  state. Activations are NOT included.

Every cell is guarded: an OOM or error is recorded with its message and the script goes on; once
the time budget (--budget-s) is spent, the remaining cells are recorded as skipped. Order:
analytic memory, pi0 bf16, pi0.5 bf16, FPO, EGL, pi0 fp32, pi0.5 fp32 (fp32 last: the one to lose
to the budget). Timing:
warm-up first, torch.cuda.synchronize() around each repeat, the median of --repeats.

Run (GPU):   .venv/bin/python bench/gpu_check.py                   # -> bench/results/gpu.json
Memory only: .venv/bin/python bench/gpu_check.py --memory-only     # -> bench/results/gpu_memory.json
README table: .venv/bin/python bench/gpu_check.py --summarize bench/results/gpu.json
CPU smoke:   .venv/bin/python bench/gpu_check.py --device cpu --tiny --json /tmp/gpu_tiny.json
             (pi0-tiny, 2 env workers, 1 FPO iteration at 64 px; --skip fpo,egl drops the simulator;
             --models pi05 or pi0,pi05 times pi05-tiny: the tiny default is pi0 alone)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # fpoctl, policies and bench/ without an install (e.g. a bare GPU box)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.pi0_bench import libero_obs, train_tokenizer  # noqa: E402
from policies import flow  # noqa: E402
from policies.pi0.policy import SCOPES  # noqa: E402
from policies.registry import make_policy  # noqa: E402

GB = 1e9
DTYPES = ("bfloat16", "float32")
N_MC = (1, 4, 8)
FPO_TASK = "libero-spatial/0"
CARDS_GB = (24, 80)  # the GPUs the analytic table compares against
MODELS = ("pi0", "pi05")
"""The flow VLAs the model cells time (full size; "<model>-tiny" with --tiny)."""
SECTIONS = (*MODELS, "fpo", "egl")
SCHEMA = 1


# -- bookkeeping --------------------------------------------------------------------------------
def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:400] if text else ''}"


class Check:
    """Runs guarded cells against a time budget and rewrites the JSON after each one."""

    def __init__(self, path: Path | None, budget_s: float, results: dict[str, Any]) -> None:
        self.path, self.budget_s, self.results = path, budget_s, results
        self.t0 = time.monotonic()
        results.setdefault("cells", {})

    def elapsed(self) -> float:
        """Seconds since the check started."""
        return time.monotonic() - self.t0

    def left(self) -> float:
        """Seconds of the budget left."""
        return self.budget_s - self.elapsed()

    def write(self) -> None:
        """Write the results so far (atomically: a kill never leaves half a file)."""
        self.results["elapsed_s"] = round(self.elapsed(), 1)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        tmp.replace(self.path)

    def skip(self, name: str, reason: str) -> None:
        """Record a cell that did not run."""
        self.results["cells"][name] = {"status": "skipped", "reason": reason}
        print(f"[{self.elapsed():6.1f} s] {name}: skipped ({reason})", flush=True)
        self.write()

    def cell(self, name: str, fn: Callable[[], dict[str, Any]], *, reserve_s: float = 0.0,
             describe: Callable[[dict[str, Any]], str] | None = None) -> dict[str, Any] | None:
        """Run fn() unless the budget is spent (or fewer than reserve_s seconds are left); its dict
        is the cell's record (status ok), an OOM or other error is recorded instead."""
        if self.left() <= reserve_s:
            self.skip(name, f"time budget: {max(self.left(), 0):.0f} s of {self.budget_s:.0f} s left"
                      + (f", the cell needs ~{reserve_s:.0f} s" if reserve_s else ""))
            return None
        print(f"[{self.elapsed():6.1f} s] {name} ...", flush=True)
        started = time.monotonic()
        out: dict[str, Any] | None = None
        try:
            out = fn()
            record: dict[str, Any] = {"status": "ok", **out}
        except torch.cuda.OutOfMemoryError as exc:
            record = {"status": "oom", "error": _message(exc)}
        except Exception as exc:  # every failure is a result here
            record = {"status": "error", "error": _message(exc),
                      "where": traceback.format_exc().strip().splitlines()[-3:]}
        free_memory()
        record["wall_s"] = round(time.monotonic() - started, 2)
        self.results["cells"][name] = record
        self.write()
        if record["status"] == "ok":
            print(f"           -> {describe(record) if describe else 'ok'}", flush=True)
        else:
            print(f"           -> {record['status'].upper()}: {record['error']}", flush=True)
        return out


def free_memory() -> None:
    """Drop garbage and cached CUDA blocks (between cells, after an OOM)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def system_info(device: torch.device) -> dict[str, Any]:
    """Versions and the hardware the numbers were measured on."""
    info: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device), "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "mujoco_gl": os.environ.get("MUJOCO_GL"), "git": _git()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {"gpu": props.name, "gpu_total_gb": round(props.total_memory / GB, 2),
                 "gpu_capability": f"{props.major}.{props.minor}",
                 "gpu_multiprocessors": props.multi_processor_count, "driver": _nvidia_driver()}
    return info


def _git() -> dict[str, Any] | None:
    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"sha": sha or None, "dirty": bool(dirty)}


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


# -- analytic memory ------------------------------------------------------------------------------
def _group(name: str) -> str:
    """Which part of pi0 / pi0.5 a parameter belongs to (for the breakdown)."""
    for part, group in (("lora_", "lora_adapters"), ("vision_tower", "vision_tower"),
                        ("multi_modal_projector", "projector"), ("embed_tokens", "embed_tokens"),
                        ("paligemma.lm_head", "paligemma_lm_head"), ("language_model", "language_model"),
                        ("gemma_expert.lm_head", "expert_lm_head"), ("gemma_expert", "action_expert")):
        if part in name:
            return group
    return "heads"


def memory_key(model: str) -> str:
    """Where the results file keeps a model's analytic table (pi0's under the original name)."""
    return "memory_analytic" if model == "pi0" else f"memory_analytic_{model}"


def analytic_memory(name: str = "pi0") -> dict[str, Any]:
    """Per dtype and scope: parameter counts and GB of weights, gradients and Adam state of `name`
    built on the meta device (nothing allocated), from the model the code builds today."""
    out: dict[str, Any] = {
        "model": name, "activations": "not included",
        "assumptions": "frozen weights in their stored dtype; trainable weights as float32 master "
                       "copies; float32 gradients; Adam exp_avg + exp_avg_sq in float32; no "
                       "transient bf16 compute copies, no activations, no CUDA context (~0.5-1 GB)",
        "cards_gb": list(CARDS_GB), "dtypes": {}}
    for dtype in DTYPES:
        per_scope: dict[str, Any] = {}
        for scope in SCOPES:
            policy = make_policy(name, dtype=dtype, scope=scope, device="meta")
            groups: dict[str, dict[str, int]] = {}
            frozen_bytes = trainable = frozen = stored_trainable_bytes = 0
            for pname, p in policy.named_parameters():
                g = groups.setdefault(_group(pname), {"trainable": 0, "frozen": 0})
                if p.requires_grad:
                    trainable += p.numel()
                    stored_trainable_bytes += p.numel() * p.element_size()
                    g["trainable"] += p.numel()
                else:
                    frozen += p.numel()
                    frozen_bytes += p.numel() * p.element_size()
                    g["frozen"] += p.numel()
            row = {"frozen_weights": frozen_bytes / GB, "trainable_weights_fp32": 4 * trainable / GB,
                   "grads_fp32": 4 * trainable / GB, "adam_fp32": 8 * trainable / GB}
            total = sum(row.values())
            per_scope[scope] = {
                "parameters": trainable + frozen, "trainable": trainable, "frozen": frozen,
                "gb": {k: round(v, 3) for k, v in row.items()} | {"total": round(total, 3)},
                "fits_gb": {str(c): total < c for c in CARDS_GB},
                "trainable_stored_dtype_gb": round(stored_trainable_bytes / GB, 3),
                "groups": groups}
            del policy
        out["dtypes"][dtype] = per_scope
    return out


def print_memory_table(mem: dict[str, Any]) -> None:
    """The analytic table, one row per dtype and scope."""
    cards = mem["cards_gb"]
    print(f"\n{mem['model']} analytic training memory, GB (weights + grads + Adam; activations EXCLUDED)")
    head = (f"{'dtype':<9} {'scope':<6} {'trainable':>10} {'frozen':>9} {'frozen w':>9} {'train w32':>9} "
            f"{'grads32':>8} {'adam32':>8} {'total':>7} " + " ".join(f"{f'{c} GB':>6}" for c in cards))
    print(head)
    for dtype, scopes in mem["dtypes"].items():
        for scope, r in scopes.items():
            gb = r["gb"]
            fits = " ".join(f"{'yes' if r['fits_gb'][str(c)] else 'no':>6}" for c in cards)
            print(f"{dtype:<9} {scope:<6} {r['trainable'] / 1e6:>9.1f}M {r['frozen'] / 1e6:>8.1f}M "
                  f"{gb['frozen_weights']:>9.2f} {gb['trainable_weights_fp32']:>9.2f} "
                  f"{gb['grads_fp32']:>8.2f} {gb['adam_fp32']:>8.2f} {gb['total']:>7.2f} {fits}")
    print("(fits = the total is under the card's memory, before activations and the CUDA context)")


# -- model cells (pi0, pi0.5) -----------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], device: torch.device, repeats: int, left_s: float) -> dict[str, Any]:
    """fn() once to warm up, then `repeats` times (fewer when one call would eat over a tenth of the
    budget left): median / min ms, and CUDA memory (GB) before and at the peak."""
    cuda = device.type == "cuda"
    if cuda:
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    warm = time.perf_counter() - t0
    n = max(1, min(repeats, int(0.1 * max(left_s, 0.0) / max(warm, 1e-6))))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    out: dict[str, Any] = {"ms": round(1000 * statistics.median(times), 2),
                           "min_ms": round(1000 * min(times), 2), "warmup_ms": round(1000 * warm, 2),
                           "repeats": n}
    if cuda:
        peak = torch.cuda.max_memory_allocated(device)
        out |= {"mem_before_gb": round(before / GB, 3), "peak_gb": round(peak / GB, 3),
                "peak_above_before_gb": round((peak - before) / GB, 3)}
    return out


def _describe_timing(r: dict[str, Any]) -> str:
    peak = f", peak {r['peak_gb']:.2f} GB" if "peak_gb" in r else ""
    return f"{r['ms']:.1f} ms (median of {r['repeats']}){peak}"


def model_cells(check: Check, args: argparse.Namespace, model: str, dtype: str, device: torch.device,
                tokenizer: Path) -> None:
    """Build `model` (pi0 / pi05) in `dtype` on the device; sampling and cfm_loss cells; free it."""
    prefix = f"{model}/{dtype}"
    name = f"{model}-tiny" if args.tiny else model
    state: dict[str, Any] = {}

    def build() -> dict[str, Any]:
        torch.manual_seed(0)
        _sync(device)
        t0 = time.perf_counter()
        state["policy"] = make_policy(name, dtype=dtype, scope="expert", device=device, tokenizer=tokenizer)
        _sync(device)
        out = {"model": name, "build_s": round(time.perf_counter() - t0, 2),
               "parameters": sum(p.numel() for p in state["policy"].parameters()),
               "horizon": state["policy"].horizon}
        if device.type == "cuda":
            out["weights_gb"] = round(torch.cuda.memory_allocated(device) / GB, 3)
        return out

    built = check.cell(f"{prefix}/build", build, reserve_s=args.reserve_s,
                       describe=lambda r: f"{r['parameters'] / 1e6:,.1f}M parameters in {r['build_s']} s"
                       + (f", {r['weights_gb']:.2f} GB" if "weights_gb" in r else ""))
    if built is None:
        skipped = [f"{prefix}/sample/batch{b}" for b in args.sample_batches] + [
            f"{prefix}/cfm/{s}/n_mc{n}" for s in SCOPES for n in args.n_mc]
        for cell in skipped:
            check.skip(cell, f"{prefix}/build did not succeed")
        return
    policy = state.pop("policy")
    rng = np.random.default_rng(0)
    for b in args.sample_batches:
        check.cell(f"{prefix}/sample/batch{b}", partial(sample_cell, check, args, policy, b, rng),
                   reserve_s=args.reserve_s, describe=_describe_timing)
    b = args.train_batch
    batch = policy.prepare(libero_obs(b, rng), device)
    actions = torch.randn(b, policy.horizon, policy.action_dim, device=device)
    for scope in SCOPES:  # lora last: its adapters stay on the module once added
        policy.set_trainable(scope)
        base: dict[str, Any] = {}
        for n_mc in args.n_mc:
            got = check.cell(f"{prefix}/cfm/{scope}/n_mc{n_mc}",
                             partial(cfm_cell, check, args, policy, batch, actions, n_mc, base.get("ms")),
                             reserve_s=args.reserve_s, describe=_describe_timing)
            if got is not None and n_mc == 1:
                base = got
            policy.zero_grad(set_to_none=True)


def sample_cell(check: Check, args: argparse.Namespace, policy: Any, b: int,
                rng: np.random.Generator) -> dict[str, Any]:
    """Chunk sampling latency at batch b (prefix once, then args.steps expert-only Euler steps)."""
    device = policy.device
    batch = policy.prepare(libero_obs(b, rng), device)
    noise = torch.randn(b, policy.horizon, policy.action_dim, device=device)
    timing = measure(lambda: policy.sample(batch, noise=noise, steps=args.steps), device, args.repeats,
                     check.left())
    return {"batch": b, "euler_steps": args.steps, **timing}


def cfm_cell(check: Check, args: argparse.Namespace, policy: Any, batch: dict[str, Any],
             actions: torch.Tensor, n_mc: int, base_ms: float | None) -> dict[str, Any]:
    """cfm_loss forward + backward (gradients of the current scope, no optimiser step)."""
    t, noise = flow.sample_noise_and_time(actions, n_mc)

    def step() -> None:
        policy.zero_grad(set_to_none=True)
        policy.cfm_loss(batch, actions, t, noise).mean().backward()

    out = {"batch": actions.shape[0], "n_mc": n_mc, "scope": policy.scope,
           "trainable": sum(p.numel() for p in policy.parameters() if p.requires_grad),
           **measure(step, policy.device, args.repeats, check.left())}
    if base_ms:
        out["vs_n_mc1"] = round(out["ms"] / base_ms, 3)
    return out


# -- FPO ----------------------------------------------------------------------------------------
def fpo_config(args: argparse.Namespace, device: torch.device) -> Any:
    """The FinetuneConfig of the FPO cell (what `fpoctl finetune --set ...` would resolve to)."""
    from fpoctl.train.config import FinetuneConfig

    common = dict(task=FPO_TASK, policy="pi0-tiny" if args.tiny else "pi0", obs_mode="pixels",
                  device=str(device), workers=True, scope="expert", critic="value", seed=0,
                  actor_lr=1e-5, critic_lr=1e-4, iterations=args.fpo_iterations)
    if args.tiny:
        return FinetuneConfig(**common, num_envs=args.fpo_envs, rollout_chunks=2, exec_steps=4, n_mc=2,
                              minibatch_size=4, update_epochs=1, critic_epochs=1,
                              env_kwargs={"image_size": 64, "max_steps": 40})
    return FinetuneConfig(**common, num_envs=args.fpo_envs, rollout_chunks=4, exec_steps=5, n_mc=8,
                          minibatch_size=8, update_epochs=2, critic_epochs=2)


def fpo_cell(check: Check, args: argparse.Namespace, device: torch.device, tokenizer: Path) -> None:
    """FPO iterations through the trainer the CLI uses (rollout, critic, GAE, FPO update)."""

    def run() -> dict[str, Any]:
        from dataclasses import asdict

        from fpoctl.envs import get_task
        from fpoctl.train.trainer import FPOTrainer

        cfg = fpo_config(args, device)
        task = get_task(cfg.task)
        task.require_installed()
        torch.manual_seed(cfg.seed)
        policy = make_policy(cfg.policy, dtype=args.fpo_dtype, scope=cfg.scope, device=device,
                             tokenizer=tokenizer)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        events: list[str] = []
        trainer = FPOTrainer(cfg, policy, task, device,
                             on_event=lambda level, kind, msg: events.append(f"{level} {kind}: {msg}"))
        out: dict[str, Any] = {"task": cfg.task, "dtype": args.fpo_dtype, "trainer_init_s":
                               round(time.perf_counter() - t0, 2), "iterations": [], "events": events,
                               "config": {k: v for k, v in asdict(cfg).items() if k in (
                                   "policy", "obs_mode", "scope", "num_envs", "workers", "rollout_chunks",
                                   "exec_steps", "n_mc", "minibatch_size", "update_epochs", "critic",
                                   "critic_epochs", "env_kwargs", "flow_steps")}}
        try:
            for i in range(cfg.iterations):
                if i and check.left() <= 0:
                    out["stopped"] = f"time budget spent after {i} iteration(s)"
                    break
                t1 = time.perf_counter()
                m = trainer.train_iteration()
                it = {"wall_s": round(time.perf_counter() - t1, 2),
                      **{k: round(float(v), 4) for k, v in m.items()
                         if k.startswith(("perf/", "fpo/", "env/"))}}
                out["iterations"].append(it)
                print(f"           iteration {i + 1}/{cfg.iterations}: {it['wall_s']:.1f} s, "
                      f"{it.get('perf/env_steps_per_s', float('nan')):.1f} env steps/s, update "
                      f"{it.get('perf/update_s', float('nan')):.2f} s", flush=True)
        finally:
            trainer.close()
            del trainer, policy
        its = out["iterations"]
        steady = its[1:] or its  # the first iteration also builds the simulators
        out["env_steps_per_s"] = round(statistics.median(i["perf/env_steps_per_s"] for i in steady), 2)
        out["update_s"] = round(statistics.median(i["perf/update_s"] for i in steady), 3)
        out["steady_state_iterations"] = (f"iterations 2-{len(its)}" if len(its) > 1
                                          else "iteration 1 alone, which includes building the simulators")
        if device.type == "cuda":
            out["peak_gb"] = round(torch.cuda.max_memory_allocated(device) / GB, 3)
        return out

    check.cell(f"fpo/{FPO_TASK}/pixels", run, reserve_s=args.fpo_reserve_s,
               describe=lambda r: f"{r['env_steps_per_s']:.1f} env steps/s, update {r['update_s']:.2f} s"
               + (f", peak {r['peak_gb']:.2f} GB" if "peak_gb" in r else ""))


# -- EGL -------------------------------------------------------------------------------------------
def _gl_strings() -> dict[str, str]:
    """GL vendor / renderer / version of the current context (empty if PyOpenGL cannot say)."""
    try:
        from OpenGL import GL

        return {k: GL.glGetString(v).decode() for k, v in (
            ("gl_vendor", GL.GL_VENDOR), ("gl_renderer", GL.GL_RENDERER), ("gl_version", GL.GL_VERSION))}
    except Exception:  # informational only
        return {}


SYNTHETIC_SCENE = """
<mujoco><visual><global offwidth="640" offheight="480"/></visual>
<worldbody><light pos="0 0 3" dir="0 0 -1" castshadow="true"/>
<geom type="plane" size="2 2 0.1" rgba=".8 .8 .8 1"/>
<camera name="agentview" pos="0 -1.5 1.2" xyaxes="1 0 0 0 .6 .8"/>
<camera name="wrist" pos="0 -0.4 0.6" xyaxes="1 0 0 0 .3 1"/>
{bodies}
</worldbody></mujoco>
"""


def egl_cell(check: Check, args: argparse.Namespace) -> None:
    """Offscreen render rate with MUJOCO_GL (EGL by default), in a child process: a GL context and
    llvmpipe's threads never touch this process's timings, and a crashing driver is only a result."""

    def run() -> dict[str, Any]:
        timeout = max(10.0, min(180.0, check.left()))
        try:
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--egl-child",
                                   "--egl-frames", str(args.egl_frames)],
                                  capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the render child ran past {timeout:.0f} s") from None
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"the render child exited with {proc.returncode}: {tail}")
        return json.loads(lines[-1])

    check.cell("egl/render", run, reserve_s=args.reserve_s,
               describe=lambda r: f"{r['frames_per_s']:.1f} frames/s ({r['scene']}, "
               f"{r.get('gl_renderer', '?')})" + (f", env {r['env_steps_per_s']:.1f} steps/s"
                                                  if "env_steps_per_s" in r else ""))


def egl_measure(frames: int, size: int = 224) -> dict[str, Any]:
    """LIBERO's scene when LIBERO is installed, else a synthetic MuJoCo scene."""
    import importlib.util

    if importlib.util.find_spec("libero") is not None:
        return _egl_libero(size, frames)
    if importlib.util.find_spec("mujoco") is None:
        raise RuntimeError("neither LIBERO nor mujoco is installed (the `sim` extra)")
    return _egl_synthetic(size, frames)


def _egl_libero(size: int, n: int) -> dict[str, Any]:
    from fpoctl.envs import get_task

    t0 = time.perf_counter()
    env = get_task(FPO_TASK).make_env("pixels", seed=0, image_size=size)
    try:
        env.reset(seed=0)
        build_s = time.perf_counter() - t0
        sim = env.sim_env.env.sim
        cams = ("agentview", "robot0_eye_in_hand")
        for cam in cams:
            sim.render(width=size, height=size, camera_name=cam)
        gl = _gl_strings()
        t0 = time.perf_counter()
        for _ in range(n):
            for cam in cams:
                sim.render(width=size, height=size, camera_name=cam)
        render_s = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        steps = max(5, n // 4)
        t0 = time.perf_counter()
        for _ in range(steps):
            *_, term, trunc, _ = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
            if term or trunc:
                env.reset()
        step_s = time.perf_counter() - t0
    finally:
        env.close()
    return {"scene": FPO_TASK, "size": size, "cameras": len(cams), "frames": n * len(cams),
            "frames_per_s": round(n * len(cams) / render_s, 1), "env_build_s": round(build_s, 2),
            "env_steps": steps, "env_steps_per_s": round(steps / step_s, 2), **gl}


def _egl_synthetic(size: int, n: int) -> dict[str, Any]:
    import mujoco

    bodies = "\n".join(f'<body pos="{(i % 10) * 0.15 - 0.7:.2f} {(i // 10) * 0.15 - 0.7:.2f} 0.1">'
                       f'<freejoint/><geom type="box" size=".04 .04 .04" rgba=".2 .4 .8 1"/></body>'
                       for i in range(100))
    model = mujoco.MjModel.from_xml_string(SYNTHETIC_SCENE.format(bodies=bodies))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    renderer = mujoco.Renderer(model, size, size)
    try:
        for cam in ("agentview", "wrist"):
            renderer.update_scene(data, camera=cam)
            renderer.render()
        gl = _gl_strings()
        t0 = time.perf_counter()
        for _ in range(n):
            for cam in ("agentview", "wrist"):
                renderer.update_scene(data, camera=cam)
                renderer.render()
        render_s = time.perf_counter() - t0
    finally:
        renderer.close()
    return {"scene": "synthetic (100 boxes; LIBERO not installed)", "size": size, "cameras": 2,
            "frames": 2 * n, "frames_per_s": round(2 * n / render_s, 1), **gl}


def headless_gl() -> None:
    """MUJOCO_GL=egl (unless chosen) before any simulator is imported; env workers inherit it."""
    try:
        from fpoctl.envs.headless import use_headless_gl
    except ImportError:  # a bare GPU box without the `sim` extra (fpoctl.envs needs gymnasium)
        if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
            os.environ["MUJOCO_GL"] = "egl"
        if os.environ.get("MUJOCO_GL") in ("egl", "osmesa"):
            os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
        return
    use_headless_gl()


# -- the README table ------------------------------------------------------------------------------
def summary_markdown(results: dict[str, Any]) -> str:
    """The measured cells as Markdown tables (what goes into the README)."""
    cells, system = results.get("cells", {}), results.get("system", {})

    def show(name: str, key: str = "ms", fmt: str = "{:.1f}") -> str:
        cell = cells.get(name)
        if cell is None:
            return "-"
        if cell["status"] != "ok":
            return cell["status"]
        value = cell.get(key)
        return "-" if value is None else fmt.format(value)

    def both(name: str) -> str:
        ms, peak = show(name), show(name, "peak_gb", "{:.1f}")
        return ms if peak in ("-", ms) else f"{ms} / {peak}"

    lines = [f"{system.get('gpu', system.get('device', '?'))}, torch {system.get('torch')}, "
             f"CUDA {system.get('cuda')} ({results.get('mode')}, {results.get('started')})", "",
             ]
    rows = [(f"sample chunk, batch {b}", f"sample/batch{b}") for b in (1, 2, 8)]
    rows += [(f"cfm_loss fwd+bwd, {scope}, N_mc {n}", f"cfm/{scope}/n_mc{n}")
             for scope in SCOPES for n in N_MC]
    for model in MODELS:
        if not any(name.startswith(f"{model}/") for name in cells):
            continue
        if lines[-1]:
            lines.append("")
        lines += [f"| {model}, ms / peak GB | bfloat16 | float32 |", "|---|---|---|"]
        for label, key in rows:
            if any(f"{model}/{d}/{key}" in cells for d in DTYPES):
                lines.append(f"| {label} | " + " | ".join(both(f"{model}/{d}/{key}") for d in DTYPES) + " |")
    fpo = cells.get(f"fpo/{FPO_TASK}/pixels")
    if fpo is not None:
        lines.append("")
        if fpo["status"] == "ok":
            cfg = fpo["config"]
            lines.append(f"FPO, {FPO_TASK} pixels, {cfg['num_envs']} env workers, {fpo['dtype']}: "
                         f"{fpo['env_steps_per_s']:.1f} env steps/s, update {fpo['update_s']:.2f} s "
                         f"({fpo['steady_state_iterations']}, median)"
                         + (f", peak {fpo['peak_gb']:.1f} GB" if "peak_gb" in fpo else ""))
        else:
            lines.append(f"FPO, {FPO_TASK} pixels: {fpo['status']} ({fpo.get('error', fpo.get('reason'))})")
    egl = cells.get("egl/render")
    if egl is not None:
        lines.append("")
        if egl["status"] == "ok":
            lines.append(f"EGL ({egl.get('gl_renderer', '?')}): {egl['frames_per_s']:.0f} frames/s at "
                         f"{egl['size']} px, {egl['scene']}"
                         + (f"; one env with cameras {egl['env_steps_per_s']:.1f} steps/s"
                            if "env_steps_per_s" in egl else ""))
        else:
            lines.append(f"EGL: {egl['status']} ({egl.get('error', egl.get('reason'))})")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; --tiny changes the defaults to the CPU smoke sizes."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu only with --tiny)")
    p.add_argument("--tiny", action="store_true", help="smoke mode: pi0-tiny, small batches, 1 FPO iteration")
    p.add_argument("--models", default=None,
                   help=f"comma-separated models to time: {','.join(MODELS)} (default all; tiny: pi0)")
    p.add_argument("--memory-only", action="store_true", help="only the analytic memory table (no GPU)")
    p.add_argument("--json", type=Path, default=None,
                   help="output (default bench/results/gpu.json; gpu_memory.json with --memory-only)")
    p.add_argument("--budget-s", type=float, default=450.0, help="time budget; later cells are skipped")
    p.add_argument("--skip", default="", help=f"comma-separated sections to leave out: {','.join(SECTIONS)}")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per cell (5; tiny 2)")
    p.add_argument("--steps", type=int, default=10, help="Euler steps per sampled chunk")
    p.add_argument("--train-batch", type=int, default=None, help="cfm_loss batch (8; tiny 2)")
    p.add_argument("--fpo-iterations", type=int, default=None, help="FPO iterations (3; tiny 1)")
    p.add_argument("--fpo-envs", type=int, default=None, help="env worker processes (8; tiny 2)")
    p.add_argument("--fpo-dtype", choices=DTYPES, default="bfloat16")
    p.add_argument("--egl-frames", type=int, default=None, help="render repeats per camera (200; tiny 10)")
    p.add_argument("--egl-child", action="store_true", help=argparse.SUPPRESS)  # the EGL cell's process
    p.add_argument("--summarize", type=Path, metavar="JSON",
                   help="print a results file as Markdown tables and run nothing")
    args = p.parse_args(argv)
    tiny = args.tiny
    args.repeats = args.repeats or (2 if tiny else 5)
    args.train_batch = args.train_batch or (2 if tiny else 8)
    args.fpo_iterations = args.fpo_iterations or (1 if tiny else 3)
    args.fpo_envs = args.fpo_envs or (2 if tiny else 8)
    args.egl_frames = args.egl_frames or (10 if tiny else 200)
    args.sample_batches = (1, 2) if tiny else (1, 8)
    args.n_mc = (1, 4) if tiny else N_MC
    args.reserve_s = 1.0 if tiny else 10.0       # a pi0 cell needs at least this much budget left
    args.fpo_reserve_s = 10.0 if tiny else 90.0  # FPO builds 8 simulators before its iterations
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if unknown := args.skip - set(SECTIONS):
        p.error(f"--skip: unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}")
    models = args.models or ("pi0" if tiny else ",".join(MODELS))
    args.models = tuple(m.strip() for m in models.split(",") if m.strip())
    if unknown := set(args.models) - set(MODELS):
        p.error(f"--models: unknown model(s) {', '.join(sorted(unknown))}; known: {', '.join(MODELS)}")
    if args.json is None:
        args.json = ROOT / "bench" / "results" / ("gpu_memory.json" if args.memory_only else "gpu.json")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the check; returns the exit status (0 even when cells failed: failures are results)."""
    args = parse_args(argv)
    headless_gl()
    if args.egl_child:
        print(json.dumps(egl_measure(args.egl_frames)))
        return 0
    if args.summarize:
        print(summary_markdown(json.loads(args.summarize.read_text())))
        return 0
    results: dict[str, Any] = {
        "schema": SCHEMA, "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "memory-only" if args.memory_only else ("tiny" if args.tiny else "gpu"),
        "budget_s": args.budget_s}
    check = Check(args.json, args.budget_s, results)
    if args.memory_only:
        results["system"] = system_info(torch.device("cpu"))
        for model in args.models:
            results[memory_key(model)] = analytic_memory(model)
            check.write()
            print_memory_table(results[memory_key(model)])
        print(f"\nwrote {args.json}")
        return 0

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --device cpu --tiny for the smoke mode "
              "(or --memory-only)", file=sys.stderr)
        return 2
    if device.type != "cuda" and not args.tiny:
        print("gpu_check: full-size pi0 / pi0.5 on a CPU would take hours; add --tiny", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.cuda.set_device(device)
    results["system"] = system_info(device)
    results["settings"] = {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()
                           if k not in ("json", "memory_only")}
    print(f"gpu_check ({results['mode']}) on {results['system'].get('gpu', 'CPU')}: torch "
          f"{torch.__version__}, CUDA {torch.version.cuda}, budget {args.budget_s:.0f} s -> {args.json}",
          flush=True)

    tables = []
    for model in args.models:
        cell = "memory/analytic" if model == "pi0" else f"memory/analytic/{model}"
        mem = check.cell(cell, partial(analytic_memory, model),
                         describe=lambda r: f"full-size {r['model']} on the meta device")
        if mem is not None:
            results[memory_key(model)] = results["cells"].pop(cell) | {"status": "ok"}
            tables.append(mem)
            check.write()
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(Path(tmp))
        order: list[tuple[str, Callable[[], None]]] = [
            *[(m, partial(model_cells, check, args, m, "bfloat16", device, tokenizer)) for m in args.models],
            ("fpo", lambda: fpo_cell(check, args, device, tokenizer)),
            ("egl", lambda: egl_cell(check, args)),
            *[(m, partial(model_cells, check, args, m, "float32", device, tokenizer)) for m in args.models]]
        for section, run in order:
            if section in args.skip:
                continue
            try:
                run()
            except Exception as exc:  # a failure between cells: record it, go on with the next section
                results.setdefault("section_errors", []).append(f"{section}: {_message(exc)}")
                print(f"gpu_check: section {section} failed: {_message(exc)}", flush=True)
            free_memory()
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    counts: dict[str, int] = {}
    for cell in results["cells"].values():
        counts[cell["status"]] = counts.get(cell["status"], 0) + 1
    results["status_counts"] = counts
    check.write()
    for mem in tables:
        print_memory_table(mem)
    print("\n" + summary_markdown(results))
    print(f"\n{len(results['cells'])} cells ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}) "
          f"in {check.elapsed():.0f} s -> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

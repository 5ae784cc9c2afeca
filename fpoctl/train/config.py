"""Training configuration: one dataclass per job kind, every field explained (CleanRL style).

Configs come from defaults, then an optional TOML file (`--config run.toml`), then `--set k=v`
overrides; the fully resolved config is stored with the run.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpoctl.errors import FpoctlError


@dataclass
class FinetuneConfig:
    """FPO fine-tuning of a flow policy (DESIGN.md "FPO")."""

    # -- what ---------------------------------------------------------------------------
    task: str = "fast-goal"
    """Task name (`fpoctl tasks`)."""
    policy: str = "mlp"
    """Policy to build ("mlp", "pi0", "pi0-tiny"; "gaussian" = the Gaussian PPO baseline)."""
    init: str | None = None
    """Start from a run (id/name: its best checkpoint), a pulled model, or a folder."""
    obs_mode: str | None = None
    """Observation mode ("state" / "pixels"); None = the task's default."""
    env_kwargs: dict | None = None
    """Extra keyword arguments for the task's env, e.g. {"image_size": 128, "max_steps": 100}."""
    tokenizer: str | None = None
    """pi0 prompt tokenizer (a SentencePiece .model file) when the checkpoint carries none."""
    scope: str = "expert"
    """pi0's trainable parameters: "expert" (action expert + heads), "full" (everything; with
    --nproc > 1 set shard="fsdp"), "lora" (adapters on both transformers + heads)."""
    dtype: str | None = None
    """pi0 precision: "bfloat16" (frozen weights in bf16, trained ones float32 master weights, bf16
    compute) or "float32"; None = the checkpoint's own config.json (float32 for a fresh pi0)."""
    seed: int = 0
    """Seed for torch, numpy and the envs."""
    device: str = "auto"
    """"auto" (CUDA when present), "cpu", "cuda", "cuda:1", ..."""
    gpus: list[int] | None = None
    """GPUs the job holds, one per rank (from `--gpus` or the device; filled in at launch)."""
    nproc: int = 1
    """Training processes (ranks) per node under torchrun: own envs and seed, averaged gradients."""
    shard: str = "none"
    """Learner across ranks: "none" (a full replica per rank) or "fsdp" (FSDP2: each rank holds
    1/N of the weights, gradients and Adam state; use it for pi0 with scope="full")."""
    cpu_threads: int = 1
    """torch intra-op threads on the CPU (small policies are fastest on one; 0 = torch's default)."""
    iterations: int = 100
    """Rollout + update iterations."""
    # -- policy (only for freshly built policies) ---------------------------------------
    horizon: int = 4
    """Action chunk length H of a fresh MLP policy (pi0 has 50)."""
    hidden: int = 256
    """Width of a fresh MLP policy."""
    # -- rollout --------------------------------------------------------------------------
    num_envs: int = 16
    """Parallel environments."""
    workers: bool = False
    """Run environments in worker processes (simulators) instead of in-process (fast tasks)."""
    rollout_chunks: int = 16
    """Action chunks per environment per iteration."""
    exec_steps: int = 4
    """Env steps executed from each chunk (<= H); only these steps enter the FPO loss."""
    flow_steps: int = 10
    """Euler steps K of the sampler."""
    explore_scale: float = 0.5
    """Multi-step latent exploration: noise std added to the latent at the exploring Euler steps."""
    explore_steps: list[int] | None = None
    """Euler steps that get exploration noise (None = all)."""
    # -- FPO ------------------------------------------------------------------------------
    n_mc: int = 8
    """(t, noise) pairs per action chunk for the CFM-loss ratio."""
    ratio: str = "per_sample"
    """"per_sample" (FPO++: one clipped ratio per (t, noise) pair) or "averaged" (FPO)."""
    clip_eps: float = 0.05
    """PPO clip range for the ratio (small for FPO)."""
    loss_clamp: float = 20.0
    """Upper clamp of each per-sample CFM loss before differences are taken."""
    diff_clamp: float = 3.0
    """Clamp of the loss difference (log ratio) before exp."""
    loss_reduction: str = "mean"
    """Per-sample CFM loss over counted elements: "mean" or "sum"."""
    update_epochs: int = 4
    """Passes over the rollout per iteration."""
    minibatch_size: int = 128
    """Chunks per gradient step."""
    actor_lr: float = 3e-4
    """Policy learning rate (pi0: ~1e-5)."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip of actor and critic."""
    target_kl: float | None = None
    """Stop the epochs early when approx KL exceeds this."""
    norm_adv: bool = True
    """Normalise advantages per rollout."""
    # -- critic ---------------------------------------------------------------------------
    critic: str = "value"
    """"value" (V(s), dense rewards) or "q_ensemble" (M critics Q(s, a_chunk), min target)."""
    critic_lr: float = 1e-3
    """Critic learning rate (pi0: ~1e-4)."""
    critic_hidden: int = 256
    """Critic MLP width."""
    critic_epochs: int = 4
    """Critic passes over the rollout per iteration."""
    critic_warmup: int = 0
    """First iterations that fit only the critic (the actor waits for advantages that mean
    something: an untrained critic's advantages are noise that a good prior unlearns)."""
    gamma: float = 0.99
    """Discount per env step (a chunk of k steps discounts by gamma^k)."""
    gae_lambda: float = 0.95
    """GAE lambda at chunk level."""
    q_ensemble_size: int = 5
    """M critics in the Q-ensemble."""
    q_tau: float = 0.05
    """Polyak rate of the target critics."""
    q_value_samples: int = 2
    """Policy samples per state for V(s) = mean_a min_j Q_j(s, a) (the GAE baseline)."""
    # -- evaluation, checkpoints, safety -------------------------------------------------
    eval_every: int = 5
    """Evaluate every this many iterations (and at the end)."""
    eval_episodes: int = 32
    """Episodes per evaluation (a suite: per task, on init states 0..N-1; see `fpoctl eval`)."""
    eval_noise: str = "zero"
    """Evaluation sampling: "zero" (from e = 0, FPO++) or "random" (openpi and LeRobot)."""
    eval_videos: int = 0
    """Videos of each evaluation's first N episodes, in runs/<id>/videos/iter_<k> (pixels only)."""
    checkpoint_every: int = 10
    """Checkpoint every this many iterations (and at the end)."""
    keep_checkpoints: int = 3
    """Keep the last K checkpoints plus the best."""
    max_nan_updates: int = 3
    """Stop the run after this many consecutive non-finite losses."""


@dataclass
class SFTConfig:
    """Behaviour cloning of a flow policy from scripted demonstrations (the few-shot prior)."""

    task: str = "fast-goal"
    """Task name."""
    policy: str = "mlp"
    """Policy to build ("mlp", "pi0-tiny", ...) or a folder / run / model to start from."""
    obs_mode: str | None = None
    """Observation mode; None = the task's default."""
    env_kwargs: dict | None = None
    """Extra keyword arguments for the task's env, e.g. {"image_size": 128}."""
    tokenizer: str | None = None
    """pi0 prompt tokenizer (a SentencePiece .model file) when the checkpoint carries none."""
    demos: str | None = None
    """A demonstrations .npz (fpoctl/envs/demos.py); None = collect `expert_episodes` now."""
    expert_episodes: int = 20
    """Scripted expert episodes to collect when `demos` is None."""
    expert_noise: float = 0.0
    """Noise std added to the executed expert actions (DART; the clean action is recorded)."""
    seed: int = 0
    """Seed."""
    device: str = "auto"
    """Device."""
    cpu_threads: int = 1
    """torch intra-op threads on the CPU (0 = torch's default)."""
    horizon: int = 4
    """Chunk length H of a fresh MLP policy."""
    hidden: int = 256
    """Width of a fresh MLP policy."""
    steps: int = 2000
    """Gradient steps."""
    batch_size: int = 256
    """Samples per step."""
    lr: float = 1e-3
    """Learning rate."""
    eval_episodes: int = 32
    """Episodes of the final evaluation (a suite: per task)."""
    eval_noise: str = "zero"
    """Evaluation sampling: "zero" (from e = 0) or "random"."""
    flow_steps: int = 10
    """Euler steps of the sampler at evaluation."""
    exec_steps: int = 4
    """Env steps executed from each chunk at evaluation."""
    num_envs: int = 16
    """Parallel environments for evaluation."""
    workers: bool = False
    """Evaluate in worker processes."""
    log_every: int = 50
    """Log the loss every this many steps."""


def resumable(run: Any) -> FinetuneConfig:
    """The config of a stored run that can resume: a fine-tuning run with iterations left."""
    if run.kind != "finetune":
        raise FpoctlError(f"run {run.id} is a {run.kind} run; only finetune runs resume")
    cfg = stored(FinetuneConfig, run.config, f"run {run.id}")
    if run.status == "finished" and run.step >= cfg.iterations:
        raise FpoctlError(f"run {run.id} is finished ({run.step} iterations); nothing to resume")
    return cfg


def resolve(cls: type, toml_path: str | Path | None = None, overrides: list[str] | None = None, *,
            beneath: dict[str, Any] | None = None, **explicit: Any) -> Any:
    """Defaults <- `beneath` (a recipe, what the init run was trained with) <- TOML file <- explicit
    CLI options (non-None) <- `k=v` overrides."""
    return build(cls, {**(beneath or {}), **user_values(cls, toml_path, overrides, **explicit)})


def user_values(cls: type, toml_path: str | Path | None = None, overrides: list[str] | None = None,
                **explicit: Any) -> dict[str, Any]:
    """The values the user set: TOML file <- explicit CLI options (non-None) <- `k=v` overrides
    (an unknown key is an error)."""
    values: dict[str, Any] = {}
    if toml_path:
        try:
            values.update(tomllib.loads(Path(toml_path).read_text(encoding="utf-8")))
        except UnicodeDecodeError as exc:
            raise FpoctlError(f"cannot read config {toml_path}: not UTF-8 text (byte {exc.start}); "
                              "a TOML file is UTF-8") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise FpoctlError(f"cannot read config {toml_path}: {exc}") from None
    values.update({k: v for k, v in explicit.items() if v is not None})
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise FpoctlError(f"--set expects key=value, got {item!r}")
        values[key.strip()] = _parse_value(raw.strip())
    _known_keys(cls, values)
    return values


def build(cls: type, values: dict[str, Any]) -> Any:
    """The config of these values over the defaults, checked."""
    _known_keys(cls, values)
    cfg = cls(**values)
    check(cfg)
    return cfg


def _known_keys(cls: type, values: dict[str, Any]) -> None:
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise FpoctlError(f"unknown config key(s) {', '.join(unknown)}; "
                          f"known: {', '.join(fields)}")


def check(cfg: Any) -> None:
    """One-line errors for values of the wrong type or out of range (also for configs built in
    code, such as a recipe's, or stored with a run)."""
    _check_types(cfg)
    _check_values(cfg)


def stored(cls: type, data: dict[str, Any], what: str) -> Any:
    """A config stored with a run (an older fpoctl may have written other keys), checked."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise FpoctlError(f"{what} has config key(s) this fpoctl does not know: {', '.join(unknown)}")
    cfg = cls(**data)
    check(cfg)
    return cfg


def _parse_value(raw: str) -> Any:
    """`--set` values are JSON when they parse as JSON (numbers, true, null, lists), else strings."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", dict: "a table/JSON object",
               list: "a list", str: "text"}


def _check_types(cfg: Any) -> None:
    """Each value against its field's declared type (`int`, `float | None`, `list[int] | None`, ...):
    ints become floats where a number is expected and numbers text where text is (`--set init=5`)."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        kinds = {typing.get_origin(t) or t for t in (typing.get_args(hints[f.name]) or (hints[f.name],))}
        if value is None:
            if type(None) not in kinds:
                raise FpoctlError(f"config {f.name} cannot be empty")
            continue
        if isinstance(value, bool):  # a bool is an int to Python, not to a config
            ok = bool in kinds
        elif float in kinds and isinstance(value, int):
            value = float(value)
            ok = True
        elif str in kinds and isinstance(value, int | float):
            value = str(value)
            ok = True
        else:
            ok = isinstance(value, tuple(k for k in kinds if k is not type(None)))
        if not ok:
            want = " or ".join(_TYPE_WORDS.get(k, k.__name__) for k in kinds if k is not type(None))
            raise FpoctlError(f"config {f.name} must be {want}, got {value!r}")
        if isinstance(value, float) and (math.isnan(value) or (math.isinf(value) and f.name not in NO_LIMIT)):
            raise FpoctlError(f"config {f.name} must be a finite number, got {value!r}")
        setattr(cfg, f.name, value)


EVAL_SEED_OFFSET = 7_777
"""Evaluation envs are seeded at `seed + EVAL_SEED_OFFSET`, apart from the rollout envs."""
RESET_SEED_STRIDE = 100_003
"""Fresh rollout envs (a start or a resume at iteration i) reset with `seed + i * RESET_SEED_STRIDE`."""

CHOICES = {"ratio": ("per_sample", "averaged"), "loss_reduction": ("mean", "sum"),
           "critic": ("value", "q_ensemble"), "eval_noise": ("zero", "random"),
           "dtype": ("float32", "bfloat16")}
"""String fields with a fixed set of values."""
AT_LEAST_ONE = ("iterations", "horizon", "hidden", "num_envs", "rollout_chunks", "exec_steps",
                "flow_steps", "n_mc", "update_epochs", "minibatch_size", "critic_hidden",
                "critic_epochs", "q_ensemble_size", "q_value_samples", "eval_every", "eval_episodes",
                "checkpoint_every", "keep_checkpoints", "max_nan_updates", "nproc",
                "expert_episodes", "steps", "batch_size", "log_every")
"""Counts that must be >= 1."""
NOT_NEGATIVE = ("cpu_threads", "explore_scale", "clip_eps", "loss_clamp", "diff_clamp",
                "max_grad_norm", "critic_warmup", "expert_noise", "seed", "eval_videos")
"""Numbers that must be >= 0."""
POSITIVE = ("actor_lr", "critic_lr", "lr", "target_kl")
"""Numbers that must be > 0."""
NO_LIMIT = ("clip_eps", "loss_clamp", "diff_clamp", "max_grad_norm", "target_kl")
"""Limits that may be inf (no limit); every other number must be finite, and none may be NaN."""


def _check_values(cfg: Any) -> None:
    names = {f.name for f in dataclasses.fields(cfg)}
    for name, allowed in CHOICES.items():
        if name in names and getattr(cfg, name) is not None and getattr(cfg, name) not in allowed:
            raise FpoctlError(f"config {name} must be one of {', '.join(allowed)}, "
                              f"got {getattr(cfg, name)!r}")
    for group, ok, what in ((AT_LEAST_ONE, lambda v: v >= 1, "at least 1"),
                            (NOT_NEGATIVE, lambda v: v >= 0, "0 or more"),
                            (POSITIVE, lambda v: v > 0, "more than 0")):
        for name in sorted(names.intersection(group)):
            if getattr(cfg, name) is not None and not ok(getattr(cfg, name)):
                raise FpoctlError(f"config {name} must be {what}, got {getattr(cfg, name)!r}")
    for name in ("gamma", "gae_lambda", "q_tau"):
        if name in names and not 0 <= getattr(cfg, name) <= 1:
            raise FpoctlError(f"config {name} must be between 0 and 1, got {getattr(cfg, name)!r}")
    for name in names.intersection(("explore_steps", "gpus")):
        top = cfg.flow_steps - 1 if name == "explore_steps" else math.inf
        values = getattr(cfg, name) or []
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= top for v in values):
            where = f"Euler steps 0..{top}" if name == "explore_steps" else "GPU indices (0 or more)"
            raise FpoctlError(f"config {name} must list {where}, got {values!r}")


def as_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain JSON-able data."""
    return dataclasses.asdict(cfg)


def to_toml(cfg: Any, command: str, note: str | None = None) -> str:
    """The config as a TOML file that `--config` reads back to the same config: each key under its
    docstring as comments; a None value (TOML has none) as a commented-out line; `note` on top."""
    docs = field_docs(type(cfg))
    lines = [f"# fpoctl {command}: the resolved config. Run it with `fpoctl {command} --config FILE`.",
             *([f"# {note}"] if note else []), ""]
    for key, value in as_dict(cfg).items():
        lines += [f"# {line.strip()}".rstrip() for line in docs.get(key, "").splitlines()]
        if value is None:
            lines.append(f"# {key} = (not set)")
        elif _holds_none(value):
            lines.append(f"# {key} = {json.dumps(value)}  (holds null, which TOML cannot write: use --set)")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _holds_none(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_none(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_none(v) for v in value)
    return value is None


def _toml_value(value: Any) -> str:
    """One TOML value: strings, numbers (inf too), booleans, arrays and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise FpoctlError(f"config value {value!r} cannot be written as TOML")


def _toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes, plus DEL, which TOML does not allow raw)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key) else _toml_string(key)


def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string literal after it), for `--help` and docs."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(cls))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(
                nxt.value, ast.Constant):
            docs[node.target.id] = str(nxt.value.value)  # type: ignore[union-attr]
    return docs


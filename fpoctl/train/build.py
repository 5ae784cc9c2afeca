"""Build the policy a job starts from: a fresh one by name, or one resolved from `--init`
(a run's best checkpoint, a pulled model, or a folder)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import torch

from fpoctl.envs import TaskSpec
from fpoctl.errors import FpoctlError, NotFoundError
from fpoctl.sources import tokenizer_path
from fpoctl.store import Store
from policies.checkpoint import inspect_checkpoint, read_policy_type
from policies.pi0.config import CONFIG_PRESETS
from policies.registry import PolicyError, make_policy


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FpoctlError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FpoctlError(f"device {name} asked for, but torch sees no CUDA GPU here")
    return device


def resolve_init(store: Store, ref: str) -> Path:
    """The policy folder behind `ref`: a folder, a run (best, else last checkpoint) or a model."""
    return resolve_source(store, ref)[0]


def resolve_source(store: Store, ref: str) -> tuple[Path, int | None]:
    """Like `resolve_init`, plus the run id when `ref` names a run."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return (path / "policy" if (path / "policy" / "config.json").exists() else path), None
    try:
        run = store.get_run(ref)
    except NotFoundError:
        run = None
    if run is not None:
        ckpts = store.checkpoints(run.id)
        if not ckpts:
            raise FpoctlError(f"run {run.id} ({run.name}) has no checkpoint to start from")
        best = [c for c in ckpts if c.is_best]
        return Path((best or ckpts)[-1].path) / "policy", run.id
    for model in store.models():
        if ref in (model.alias, model.repo, str(model.id)):
            return Path(model.path), None
    raise FpoctlError(f"{ref!r} is neither a policy folder, a run nor a pulled model "
                      "(see `fpoctl runs list`, `fpoctl models list`)")


def build_policy(name: str, task: TaskSpec, obs_mode: str | None, *, horizon: int, hidden: int,
                 device: torch.device, init_folder: Path | None = None,
                 tokenizer: str | None = None, scope: str = "expert", dtype: str | None = None) -> Any:
    """A policy on `device`: loaded from `init_folder`, else fresh by name. `scope`: pi0's
    trainable parameters (other policies train everything); `dtype`: pi0's precision (None: the
    checkpoint's own)."""
    try:
        is_pi0 = read_policy_type(init_folder)[0] == "pi0" if init_folder else name in CONFIG_PRESETS
        if scope != "expert" and not is_pi0:
            raise FpoctlError(f"scope={scope} applies to pi0 only")
        if dtype is not None and not is_pi0:
            raise FpoctlError(f"dtype={dtype} applies to pi0 only (other policies train in float32)")
        pi0_kwargs: dict[str, Any] = {"scope": scope, **({"dtype": dtype} if dtype else {})}
        if init_folder is not None:
            kwargs: dict[str, Any] = {"tokenizer": tokenizer} if tokenizer else {}
            if is_pi0:
                kwargs |= pi0_kwargs
            policy = make_policy(init_folder, **kwargs)
        elif name in ("mlp", "gaussian"):
            env = task.make_env(obs_mode, seed=0)
            try:
                obs_dim = env.observation_space["state"].shape[0]
                action_dim = env.action_space.shape[0]
            finally:
                env.close()
            policy = make_policy(name, obs_dim=obs_dim, action_dim=action_dim, horizon=horizon,
                                 hidden=hidden)
        else:
            policy = make_policy(name, **pi0_kwargs, **({"tokenizer": tokenizer} if tokenizer else {}))
    except PolicyError as exc:
        raise FpoctlError(str(exc)) from None
    return policy.to(device)


def tokenizer_for(home: Path, folder: Path | None, explicit: str | None) -> str | None:
    """The pi0 prompt tokenizer: `explicit`, else one shipped in the folder, else the configured
    source from the local cache (see `fpoctl pull --tokenizer`); None for other policies."""
    if explicit or folder is None:
        return explicit
    try:
        kind = inspect_checkpoint(folder).policy_type  # a broken checkpoint says so before any look-up
    except PolicyError as exc:
        raise FpoctlError(str(exc)) from None
    if kind != "pi0":
        return None
    path = tokenizer_path(home, kind, folder)
    return str(path) if path else None


def git_revision() -> str | None:
    """The git commit of the fpoctl checkout, when it is one."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None

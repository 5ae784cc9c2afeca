"""Build the policy a job starts from: a fresh one by name, or one resolved from `--init`
(a run's best checkpoint, a pulled model, or a folder)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import torch

from fpoctl.envs import TaskSpec
from fpoctl.errors import FpoctlError, NotFoundError
from fpoctl.sources import tokenizer_path
from fpoctl.store import Store
from policies.base import FlowPolicy
from policies.checkpoint import inspect_checkpoint
from policies.registry import DEFAULT_SCOPE, PolicyError, PolicyFamily, family_of, make_policy
from policies.weights import nonfinite


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise FpoctlError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FpoctlError(f"device {name} asked for, but torch sees no CUDA GPU here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise FpoctlError(f"device {name} asked for, but torch sees {torch.cuda.device_count()} CUDA "
                          "GPU(s) here")
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


def training_config(policy_folder: Path) -> dict[str, Any]:
    """The resolved config a checkpoint was trained with ({} for folders not written by fpoctl)."""
    meta = policy_folder.parent / "meta.json"
    if policy_folder.name != "policy" or not meta.is_file():
        return {}
    try:
        config = json.loads(meta.read_text()).get("config") or {}
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        raise FpoctlError(f"{meta} is not a checkpoint's meta.json (not a JSON object)") from None
    if not isinstance(config, dict):
        raise FpoctlError(f"{meta}: its config is not a JSON object")
    return dict(config)


def family_kwargs(family: PolicyFamily, tokenizer: str | None, scope: str, dtype: str | None
                   ) -> dict[str, Any]:
    """The options a family takes (scope, dtype, tokenizer), or an error naming one it does not."""
    if scope != DEFAULT_SCOPE and scope not in family.scopes:
        raise FpoctlError(f"scope={scope} does not apply to {family.type_name} policies "
                          "(they train all their weights)")
    if dtype is not None and dtype not in (family.dtypes or ("float32",)):
        raise FpoctlError(f"dtype={dtype} does not apply to {family.type_name} policies "
                          f"({', '.join(family.dtypes or ('float32',))})")
    kwargs: dict[str, Any] = {"tokenizer": tokenizer} if tokenizer and family.needs_tokenizer else {}
    if family.scopes:
        kwargs["scope"] = scope
    if dtype is not None and family.dtypes:
        kwargs["dtype"] = dtype
    return kwargs


def load_policy_folder(folder: Path, device: torch.device, *, tokenizer: str | None = None,
                       scope: str = DEFAULT_SCOPE, dtype: str | None = None) -> FlowPolicy:
    """A saved policy on `device` (dtype None: the precision it was saved with)."""
    try:
        kwargs = family_kwargs(family_of(folder), tokenizer, scope, dtype)
        return make_policy(folder, **kwargs).to(device)
    except PolicyError as exc:
        raise FpoctlError(str(exc)) from None


def build_policy(name: str, task: TaskSpec, obs_mode: str | None, *, horizon: int, hidden: int,
                 device: torch.device, init_folder: Path | None = None, tokenizer: str | None = None,
                 scope: str = DEFAULT_SCOPE, dtype: str | None = None) -> FlowPolicy:
    """A policy on `device`: loaded from `init_folder`, else fresh by name (a small one sized to the
    task's spaces with `horizon` and `hidden`). `scope` / `dtype` apply to the families that offer
    them (`policies.registry.FAMILIES`)."""
    if init_folder is not None:
        return load_policy_folder(init_folder, device, tokenizer=tokenizer, scope=scope, dtype=dtype)
    try:
        family = family_of(name)
        kwargs = family_kwargs(family, tokenizer, scope, dtype)
        if not family.needs_tokenizer:  # a small state policy: sized to the task
            env = task.make_env(obs_mode, seed=0)
            try:
                kwargs |= {"obs_dim": env.observation_space["state"].shape[0],
                           "action_dim": env.action_space.shape[0], "horizon": horizon, "hidden": hidden}
            finally:
                env.close()
        return make_policy(name, **kwargs).to(device)
    except PolicyError as exc:
        raise FpoctlError(str(exc)) from None


def load_warnings(policy: FlowPolicy) -> list[str]:
    """What a loaded policy warns about: its family's notes (pi0: config fields it ignores) and
    weights holding NaN or inf (legal, but its actions will be NaN)."""
    notes = list(getattr(policy, "load_warnings", ()))
    if bad := nonfinite(policy.state_dict()):
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        notes.append(f"the checkpoint's weights hold NaN or inf values in {bad[0]}{more}: its actions "
                     "will be NaN")
    return notes


def tokenizer_for(home: Path, folder: Path | None, explicit: str | None) -> str | None:
    """The pi0 prompt tokenizer: `explicit`, else one shipped in the folder, else the configured
    source from the local cache (see `fpoctl pull --tokenizer`); None for other policies."""
    if explicit or folder is None:
        return explicit
    try:
        kind = inspect_checkpoint(folder).policy_type  # a broken checkpoint says so before any look-up
    except PolicyError as exc:
        raise FpoctlError(str(exc)) from None
    if not family_of(folder).needs_tokenizer:
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

"""The one pre-flight of every job (finetune, resume, sft, eval, demo): everything that can be
checked before a run row exists or a process starts, so that bad input is one line and the store
is left as it was. The config; the task (registered, installed, a Box action space, the
observation mode, env options, a renderer for images); the policy a job starts from (resolved,
its checkpoint inspected without reading weights, the options and the tokenizer its family
needs); the device; the store (home writable, room on its disk)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from fpoctl.envs import TaskSpec, get_task
from fpoctl.errors import FpoctlError
from fpoctl.settings import Settings
from fpoctl.store import Store
from fpoctl.store.db import database_file
from fpoctl.train import sharding
from fpoctl.train.build import family_kwargs, resolve_device, resolve_source, tokenizer_for, training_config
from fpoctl.train.config import FinetuneConfig, SFTConfig, check
from fpoctl.train.configure import trained_with
from policies.checkpoint import inspect_checkpoint
from policies.registry import DEFAULT_SCOPE, POLICY_NAMES, PolicyError, PolicyFamily, family_of, known_scopes

MIN_FREE_BYTES = 64 * 2**20
"""Room a job needs on the disks of the home and the store (rows, logs, small checkpoints)."""
FAMILY_BACKENDS = ("libero", "aloha")
"""Backends whose tasks share observation and action spaces: a policy moves between their tasks."""


@dataclass(frozen=True)
class Checked:
    """What the pre-flight resolved, for the job that follows it."""

    task: TaskSpec
    obs_mode: str
    device: torch.device
    folder: Path | None = None
    """The policy folder the job starts from (None: a fresh policy built by name)."""
    source_run: int | None = None
    """The run that folder belongs to, when it names one."""
    tokenizer: str | None = None
    """The prompt tokenizer file, for families that read prompts."""


def check_store(settings: Settings) -> None:
    """The home can be written and the disks of the home and of an SQLite store have room."""
    settings.ensure_home()
    places = [settings.home]
    db = database_file(settings.db_url)
    if db is not None and db.parent.is_dir():
        places.append(db.parent)
    for place in places:
        free = shutil.disk_usage(place).free
        if free < MIN_FREE_BYTES:
            raise FpoctlError(f"only {free / 2**20:.1f} MiB free on the disk of {place}; a job needs "
                              f"{MIN_FREE_BYTES // 2**20} MiB there (free some space, or use another "
                              "--home / --db)")


def check_task(name: str, obs_mode: str | None, env_kwargs: dict | None = None) -> tuple[TaskSpec, str]:
    """The task and the observation mode a job will use (see `TaskSpec.check`)."""
    task = get_task(name)
    return task, task.check(obs_mode, env_kwargs)


def check_policy(settings: Settings, store: Store, policy: str, init: str | None, *,
                 tokenizer: str | None = None, scope: str = DEFAULT_SCOPE, dtype: str | None = None
                 ) -> tuple[Path | None, int | None, str | None]:
    """The policy a job starts from: `init` (a folder, run or pulled model) inspected strictly, or a
    fresh `policy` by name; the options must apply to its family, and a family that reads prompts
    needs a tokenizer that loads. Returns (folder, its run, tokenizer file)."""
    folder, source_run = resolve_source(store, init) if init else (None, None)
    try:
        if folder is not None:
            inspect_checkpoint(folder)
        family = family_of(folder if folder is not None else policy)
    except PolicyError as exc:
        raise FpoctlError(str(exc)) from None
    family_kwargs(family, tokenizer, scope, dtype)
    tok = tokenizer_for(settings.home, folder, tokenizer)
    if family.needs_tokenizer:
        check_tokenizer(family, tok)
    return folder, source_run, tok


def check_tokenizer(family: PolicyFamily, path: str | None) -> None:
    """A SentencePiece model file that loads."""
    if path is None:
        raise FpoctlError(f"{family.type_name} reads prompts and needs a tokenizer: --set tokenizer=PATH "
                          "(a SentencePiece .model file)")
    import sentencepiece

    file = Path(path).expanduser()
    if not file.is_file() or file.stat().st_size == 0:
        raise FpoctlError(f"tokenizer file {file} does not exist or is empty")
    try:
        sentencepiece.SentencePieceProcessor(model_file=str(file))
    except (RuntimeError, OSError) as exc:
        raise FpoctlError(f"tokenizer file {file} is not a SentencePiece model "
                          f"({(str(exc).splitlines() or ['unreadable'])[0]})") from None


def task_family(task: TaskSpec) -> str:
    """The tasks a trained policy fits: a backend's whose tasks share spaces (LIBERO, ALOHA), else
    one task's (a suite with its tasks)."""
    return task.backend if task.backend in FAMILY_BACKENDS else task.name.partition("/")[0]


def check_init_fits(store: Store, init: str, task: TaskSpec, obs_mode: str) -> None:
    """A job started from a run (or an fpoctl checkpoint folder) trains on what that one learned
    on: a task of the same family, the same observation mode."""
    found = trained_with(store, init)
    if found is None or not isinstance(found.config.get("task"), str):
        return
    try:
        trained = get_task(found.config["task"])
    except FpoctlError:  # a task this fpoctl no longer has: the checkpoint's own checks decide
        return
    family = task_family(trained)
    if family != task_family(task):
        kin = f" ({family} tasks)" if family != trained.name else ""
        raise FpoctlError(f"{found.source} was trained on {trained.name}{kin}; its policy does not fit "
                          f"task {task.name}: drop --task to train on {trained.name}, or start from "
                          "another --init")
    mode = found.config.get("obs_mode") or trained.default_obs_mode
    if mode != obs_mode:
        raise FpoctlError(f"{found.source} was trained on {mode} observations, this job has "
                          f"obs_mode={obs_mode}: leave obs_mode unset to inherit {mode}")


def check_finetune(settings: Settings, store: Store, cfg: FinetuneConfig, *,
                   resume_from: Path | None = None) -> Checked:
    """A fine-tuning job's input (`resume_from`: the checkpoint's policy folder a resume loads)."""
    check(cfg)
    if cfg.shard not in sharding.SHARD_MODES:
        raise FpoctlError(f"shard must be one of {', '.join(sharding.SHARD_MODES)}, got {cfg.shard!r}")
    if cfg.scope not in known_scopes():
        raise FpoctlError(f"scope must be one of {', '.join(known_scopes())}, got {cfg.scope!r}")
    task, mode = check_task(cfg.task, cfg.obs_mode, cfg.env_kwargs)
    if cfg.eval_videos and mode != "pixels":
        raise FpoctlError(f"eval_videos needs camera images: {cfg.task} runs in obs_mode {mode}")
    device = resolve_device(cfg.device)
    init = str(resume_from) if resume_from is not None else cfg.init
    folder, run, tok = check_policy(settings, store, cfg.policy, init, tokenizer=cfg.tokenizer,
                                    scope=cfg.scope, dtype=cfg.dtype)
    if cfg.init and resume_from is None:
        check_init_fits(store, cfg.init, task, mode)
    return Checked(task, mode, device, folder, run, tok)


def check_sft(settings: Settings, store: Store, cfg: SFTConfig) -> Checked:
    """A behaviour-cloning job's input: also demonstrations to learn from (a file, or an expert)."""
    check(cfg)
    task, mode = check_task(cfg.task, cfg.obs_mode, cfg.env_kwargs)
    if cfg.demos is None and task.expert is None:
        raise FpoctlError(f"task {task.name} has no scripted expert: pass --demos FILE")
    device = resolve_device(cfg.device)
    init = None if cfg.policy in POLICY_NAMES else cfg.policy
    folder, run, tok = check_policy(settings, store, cfg.policy, init, tokenizer=cfg.tokenizer)
    if init is not None:
        check_init_fits(store, init, task, mode)
    return Checked(task, mode, device, folder, run, tok)


def check_eval(settings: Settings, store: Store, source: str, task_name: str, *,
               obs_mode: str | None, device: str, tokenizer: str | None) -> Checked:
    """An evaluation's input: the source (a run, a pulled model or a folder) and the task it runs
    on, in `obs_mode`, else the one the checkpoint was trained with, else the task's default."""
    task = get_task(task_name)
    folder, run, tok = check_policy(settings, store, "", source, tokenizer=tokenizer)
    assert folder is not None
    mode = task.check(obs_mode or training_config(folder).get("obs_mode"))
    return Checked(task, mode, resolve_device(device), folder, run, tok)


def check_demo(settings: Settings, sft_cfg: SFTConfig, finetune_cfg: FinetuneConfig) -> None:
    """Both jobs of `fpoctl demo`, before the first one runs (the fine-tune will start from the
    behaviour-cloning run, which does not exist yet)."""
    check_store(settings)
    with Store(settings.db_url) as store:
        check_sft(settings, store, sft_cfg)
        check_finetune(settings, store, replace(finetune_cfg, init=None))

"""Where a run came from and what it changed: its config overrides, the chain of runs and models it
was initialised from, its evaluation success arc (prior -> best -> last) and the checkpoint each
of its evaluations used. No torch here: the CLI's `runs show` and the dashboard read these."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpoctl.errors import NotFoundError
from fpoctl.train.config import FinetuneConfig, SFTConfig

if TYPE_CHECKING:
    from fpoctl.store import Checkpoint, Run, Store

CONFIG_CLASSES: dict[str, type] = {"finetune": FinetuneConfig, "sft": SFTConfig}
"""The config class of each run kind that has one."""
MAX_DEPTH = 32
"""Longest init chain `lineage` follows."""
STEP_FOLDER = re.compile(r"step_(\d+)$")
"""A checkpoint folder's name (`runs/<id>/checkpoints/step_000040`)."""


def defaults(cls: type) -> dict[str, Any]:
    """Each field's default value (a default factory called)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def overrides(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The keys of a stored run config whose values differ from its kind's defaults, in field order
    (keys the config class does not know come last); a kind without a config class: the config
    minus None values."""
    cls = CONFIG_CLASSES.get(kind)
    if cls is None:
        return {k: v for k, v in config.items() if v is not None}
    base = defaults(cls)
    order = [*base, *(k for k in config if k not in base)]
    return {k: config[k] for k in order if k in config and (k not in base or config[k] != base[k])}


def config_diff(configs: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """The keys in which the configs differ (a missing key counts as None), in first-seen order,
    each with its value in every config."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    out: dict[str, list[Any]] = {}
    for key in keys:
        values = [c.get(key) for c in configs]
        if any(v != values[0] for v in values[1:]):
            out[key] = values
    return out


@dataclass(frozen=True)
class SuccessArc:
    """A run's evaluation success: the prior's (the first evaluation), the best and the last."""

    prior: float | None
    best: float | None
    last: float | None


def success_arc(series: Sequence[tuple[int, float]]) -> SuccessArc:
    """From a run's `eval/success_rate` series, (step, value) sorted by step: a fine-tune evaluates
    its prior at iteration 0 before it trains, so the first value is the prior's."""
    if not series:
        return SuccessArc(None, None, None)
    values = [v for _, v in series]
    return SuccessArc(prior=values[0], best=max(values), last=values[-1])


def init_ref(kind: str, config: dict[str, Any]) -> str | None:
    """What a job's config starts from: a fine-tune's `init`; an SFT's `policy` when that names a
    run, a pulled model or a folder rather than a fresh policy (this asks the policy registry,
    which loads torch: for a stored run, `lineage` asks only when the name is a source)."""
    ref = config.get("init")
    if ref is None and kind == "sft" and config.get("policy"):
        ref = None if _is_preset(str(config["policy"])) else config["policy"]
    return None if ref is None else str(ref)


def _is_preset(policy: str) -> bool:
    from policies.registry import POLICY_NAMES  # torch

    return policy in POLICY_NAMES


def lineage(store: Store, run: Run) -> list[str]:
    """The init chain of `run` as short texts, nearest first, e.g. ["run 3 fast-goal-sft (sft)",
    "pulled pi0-libero"]: runs are followed to what they started from (a cycle or a deleted run
    ends the chain with a note)."""
    chain: list[str] = []
    seen = {run.id}
    link = _source(store, run)
    while link is not None and len(chain) < MAX_DEPTH:
        text, parent = link
        if parent is not None and parent.id in seen:
            chain.append(f"run {parent.id} (a cycle: stops here)")
            break
        chain.append(text)
        if parent is None:
            break
        seen.add(parent.id)
        link = _source(store, parent)
    return chain


def _source(store: Store, run: Run) -> tuple[str, Run | None] | None:
    """What `run` started from, described; None for a fresh policy. An SFT's `policy` counts when
    it names something in the store or on disk (and is not a preset name, the rare case where
    the registry, and torch, are asked)."""
    config = run.config or {}
    if config.get("init") is not None:
        return _describe(store, str(config["init"]))
    policy = config.get("policy")
    if run.kind != "sft" or not policy:
        return None
    found = _describe(store, str(policy), missing=None)
    return None if found is None or _is_preset(str(policy)) else found


def _describe(store: Store, ref: str, missing: str | None = "{ref} (no longer in the store)"
              ) -> tuple[str, Run | None] | None:
    """One link of the chain (in the order `build.resolve_source` looks: folder, run, model);
    `missing`: the text for a ref that names nothing (None: no link)."""
    if Path(ref).expanduser().is_dir():
        return f"folder {ref}", None
    try:
        run = store.get_run(ref)
    except NotFoundError:
        run = None
    if run is not None:
        return f"run {run.id} {run.name} ({run.kind})", run
    for model in store.models():
        if ref in (model.alias, model.repo, str(model.id)):
            name = model.alias or model.repo
            return f"pulled {name}" + (f" ({model.repo})" if model.alias and model.repo != name else ""), None
    return None if missing is None else (missing.format(ref=ref), None)


@dataclass(frozen=True)
class EvaluatedCheckpoint:
    """The weights an evaluation of a run used."""

    step: int | None
    path: str | None
    label: str
    """"step 40 (best)", "step 60 (final weights)", "step 20 (since removed)", a folder, or
    "not recorded" (evaluations of an fpoctl older than the record)."""


def eval_checkpoint(details: dict[str, Any], checkpoints: Sequence[Checkpoint],
                    total_steps: int | None = None) -> EvaluatedCheckpoint:
    """Which checkpoint an evaluation used, from the policy folder it recorded (`details["folder"]`)
    and the run's checkpoints (the last at `total_steps` holds the final weights)."""
    folder = details.get("folder")
    if not isinstance(folder, str):
        return EvaluatedCheckpoint(None, None, "not recorded")
    path = Path(folder)
    ckpt_dir = path.parent if path.name == "policy" else path
    for c in checkpoints:
        if Path(c.path) == ckpt_dir:
            notes = [n for n, on in (("best", c.is_best), ("final weights", c.step == total_steps)) if on]
            return EvaluatedCheckpoint(c.step, c.path, f"step {c.step}" + (f" ({', '.join(notes)})"
                                                                            if notes else ""))
    if m := STEP_FOLDER.search(ckpt_dir.name):
        step = int(m.group(1))
        return EvaluatedCheckpoint(step, str(ckpt_dir), f"step {step} (since removed)")
    return EvaluatedCheckpoint(None, folder, folder)

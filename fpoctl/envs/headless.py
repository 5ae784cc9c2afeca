"""Headless OpenGL for MuJoCo renderers: pick a backend before any simulator is imported."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

RENDER_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string(
    '<mujoco><worldbody><light pos="0 0 1"/><geom type="sphere" size=".1"/></worldbody></mujoco>')
d = mujoco.MjData(m); mujoco.mj_forward(m, d)
r = mujoco.Renderer(m, 32, 32); r.update_scene(d); img = r.render()
print(img.shape, int(img.max()))
"""
"""Renders a tiny scene offscreen (a GL context alone can look fine where rendering fails)."""


def use_headless_gl() -> str:
    """Set MUJOCO_GL / PYOPENGL_PLATFORM (EGL by default) unless the user chose; returns the backend.

    Must run before mujoco, robosuite or dm_control are imported: they read these variables once.
    With a display (DISPLAY set) and no choice made, MuJoCo's own default (GLFW) is left alone.
    """
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
    backend = os.environ.get("MUJOCO_GL", "glfw")
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    if backend == "egl" and os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        # robosuite picks its EGL device by int(CUDA_VISIBLE_DEVICES): "" (no GPU for torch) would
        # crash every env; EGL device 0 is Mesa's on a CPU box or the first GPU
        os.environ.setdefault("MUJOCO_EGL_DEVICE_ID", "0")
    return backend


def render_fix(backend: str) -> str:
    """What makes MuJoCo render offscreen with MUJOCO_GL=`backend` (`fpoctl doctor` advises the same)."""
    if backend in ("glx", "glfw") and not os.environ.get("DISPLAY"):
        return f"MUJOCO_GL={backend} needs a display and DISPLAY is unset: set MUJOCO_GL=egl (or osmesa)"
    return "apt-get install libegl1 libgl1-mesa-dri libosmesa6, or set MUJOCO_GL=osmesa"


def can_render() -> tuple[bool, str]:
    """Whether MuJoCo renders offscreen here (probed in a subprocess, once per choice of backend)."""
    env = dict(os.environ)
    if "MUJOCO_GL" not in env and not env.get("DISPLAY"):
        env["MUJOCO_GL"] = "egl"
    if env.get("MUJOCO_GL") in ("egl", "osmesa"):
        env.setdefault("PYOPENGL_PLATFORM", env["MUJOCO_GL"])
    keys = ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY", "MUJOCO_EGL_DEVICE_ID")
    return _probe(tuple((k, env[k]) for k in keys if k in env))


@functools.cache
def _probe(choice: tuple[tuple[str, str], ...]) -> tuple[bool, str]:
    env = {**os.environ, **dict(choice)}
    try:
        proc = subprocess.run([sys.executable, "-c", RENDER_PROBE], env=env, capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"render probe failed: {exc}"
    backend = env.get("MUJOCO_GL", "glfw")
    if proc.returncode == 0:
        return True, f"MUJOCO_GL={backend}"
    last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
    return False, f"MUJOCO_GL={backend} cannot render ({last}); {render_fix(backend)}"

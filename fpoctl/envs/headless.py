"""Headless OpenGL for MuJoCo renderers: pick a backend before any simulator is imported."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

_PROBE = """
import mujoco
ctx = mujoco.GLContext(16, 16)
ctx.make_current()
ctx.free()
"""


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


@functools.cache
def can_render() -> tuple[bool, str]:
    """Whether MuJoCo can open an offscreen GL context here (probed once, in a subprocess)."""
    env = dict(os.environ)
    if "MUJOCO_GL" not in env and not env.get("DISPLAY"):
        env["MUJOCO_GL"] = "egl"
    if env.get("MUJOCO_GL") in ("egl", "osmesa"):
        env.setdefault("PYOPENGL_PLATFORM", env["MUJOCO_GL"])
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"render probe failed: {exc}"
    backend = env.get("MUJOCO_GL", "glfw")
    if proc.returncode == 0:
        return True, f"MUJOCO_GL={backend}"
    last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
    return False, (f"MUJOCO_GL={backend} cannot render ({last}); install libegl1 libgl1-mesa-dri "
                   "(or libosmesa6 with MUJOCO_GL=osmesa)")

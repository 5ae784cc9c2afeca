"""Training jobs: launch a run's worker detached (or attached), stop it gracefully or at once,
resume it from its last checkpoint, follow its log; torchrun for several processes or nodes.

`stop_run(settings, run_id)` and `resume_run(settings, run_id)` are what the dashboard's s / r
keys call; each returns a one-line result. The names load on first use, so the supervisor and
worker entry points (`python -m fpoctl.jobs.supervisor|worker`) start without the store's imports.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Started": "control", "resume": "control", "resume_run": "control",
            "start_finetune": "control", "stop_run": "control", "Launch": "launch",
            "join_job": "launch"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fpoctl.jobs' has no attribute {name!r}")
    return getattr(importlib.import_module(f"fpoctl.jobs.{_EXPORTS[name]}"), name)

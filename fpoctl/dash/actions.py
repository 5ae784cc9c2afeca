"""Run actions bound to keys (stop, resume, push). Each calls the same function as the CLI
command; until that function exists the key says so instead of pretending.

Wiring one later is one line here: point its `RunAction` at the CLI's service function
(called as `function(settings, run_id)` from a worker thread, returning a one-line result).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from fpoctl.settings import Settings


class ActionUnavailable(Exception):
    """The feature behind a key is not in this fpoctl yet."""


@dataclass(frozen=True)
class RunAction:
    """A key that acts on one run through a service function `module.function`."""

    name: str
    command: str
    module: str
    function: str
    asks: str | None = None
    """A question whose answer is passed to the function after the run id (e.g. the repo)."""

    @property
    def available(self) -> bool:
        """Whether the service function exists (imported once, then remembered)."""
        return _service(self.module, self.function) is not None

    def target(self) -> Callable[..., str]:
        """The service function, or ActionUnavailable naming the missing command."""
        func = _service(self.module, self.function)
        if func is None:
            raise ActionUnavailable(f"{self.name} is not available yet: needs `{self.command}`")
        return func


@functools.cache
def _service(module: str, function: str) -> Callable[..., str] | None:
    try:
        if importlib.util.find_spec(module) is None:
            return None
        func = getattr(importlib.import_module(module), function, None)
    except ModuleNotFoundError:
        return None
    return func if callable(func) else None


ACTIONS = {
    "stop": RunAction("stop", "fpoctl stop RUN", "fpoctl.jobs", "stop_run"),
    "resume": RunAction("resume", "fpoctl resume RUN", "fpoctl.jobs", "resume_run"),
    "push": RunAction("push", "fpoctl push RUN --repo ...", "fpoctl.hub.push", "push_run",
                      asks="Push the run's best checkpoint to the Hub repo (ORG/NAME):"),
}


def perform(name: str, settings: Settings, run_id: int, *answers: str) -> str:
    """Run action `name` on a run (blocking: call it from a worker thread)."""
    return ACTIONS[name].target()(settings, run_id, *answers)

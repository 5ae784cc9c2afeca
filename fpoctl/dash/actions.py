"""Run actions bound to keys (stop, resume, push): each calls the service function behind its CLI
command, as `function(settings, run_id, *answers)` from a worker thread, returning a one-line result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fpoctl.hub.push import push_run
from fpoctl.jobs.control import resume_run, stop_run
from fpoctl.settings import Settings


@dataclass(frozen=True)
class RunAction:
    """A key that acts on one run through the service function of a CLI command."""

    name: str
    service: Callable[..., str]
    asks: str | None = None
    """A question whose answer is passed to the function after the run id (e.g. the repo);
    `{run}` names the run."""
    confirm: str | None = None
    """A yes/no question asked first (`{run}` names the run); no: nothing happens."""


ACTIONS = {
    "stop": RunAction("stop", stop_run,
                      confirm="Stop {run}? Its job ends the current iteration, writes a checkpoint "
                              "and stops (resume with r)."),
    "resume": RunAction("resume", resume_run),
    "push": RunAction("push", push_run, asks="Push the best checkpoint of {run} to the Hub repo:"),
}


def perform(name: str, settings: Settings, run_id: int, *answers: str) -> str:
    """Run action `name` on a run (blocking: call it from a worker thread)."""
    return ACTIONS[name].service(settings, run_id, *answers)

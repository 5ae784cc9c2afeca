"""Training jobs: launch a run's worker detached (or attached), stop it gracefully or at once,
resume it from its last checkpoint, follow its log; torchrun for several processes or nodes.

`stop_run(settings, run_id)` and `resume_run(settings, run_id)` are what the dashboard's s / r
keys call; each returns a one-line result.
"""

from fpoctl.jobs.control import Started, resume, resume_run, start_finetune, stop_run
from fpoctl.jobs.launch import Launch, join_job

__all__ = ["Launch", "Started", "join_job", "resume", "resume_run", "start_finetune", "stop_run"]

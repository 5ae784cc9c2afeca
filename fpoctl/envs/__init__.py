"""Tasks: registry, simulators behind the Gymnasium API, vector envs, scripted experts.

Importing the package registers the built-in tasks: each backend module registers its own
(simulators are imported only when one of their envs is made)."""

from fpoctl.envs import aloha, fast, gym_tasks, libero  # noqa: F401  (they register on import)
from fpoctl.envs.base import Expert, TaskSpec, UnknownTaskError, all_tasks, get_task
from fpoctl.envs.vector import make_vector_env

__all__ = ["Expert", "TaskSpec", "UnknownTaskError", "all_tasks", "get_task", "make_vector_env"]

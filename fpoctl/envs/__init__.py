"""Tasks: registry, simulators behind the Gymnasium API, vector envs, scripted experts."""

from fpoctl.envs.base import Expert, TaskSpec, UnknownTaskError, all_tasks, get_task
from fpoctl.envs.vector import make_vector_env

__all__ = ["Expert", "TaskSpec", "UnknownTaskError", "all_tasks", "get_task", "make_vector_env"]

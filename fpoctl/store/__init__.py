"""The run store: SQLAlchemy models and the functions that read and write them."""

from fpoctl.store.api import Store
from fpoctl.store.metrics import MetricRow, MetricWriter
from fpoctl.store.models import Checkpoint, Evaluation, Event, Model, Push, Run
from fpoctl.store.timing import elapsed_s, eta_s

__all__ = [
    "Checkpoint",
    "Evaluation",
    "Event",
    "MetricRow",
    "MetricWriter",
    "Model",
    "Push",
    "Run",
    "Store",
    "elapsed_s",
    "eta_s",
]

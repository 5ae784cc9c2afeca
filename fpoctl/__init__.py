"""fpoctl: reinforcement fine-tuning of flow-matching robot policies with FPO."""

__version__ = "0.1.0"

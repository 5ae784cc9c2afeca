"""pi0.5 (Physical Intelligence 2025) in PyTorch: LeRobot's pi05 keys, adaRMS time conditioning, the
state discretised into the prompt, prefix KV cache, FlowPolicy API (shares policies/pi0's code)."""

from policies.pi05.config import Pi05Config, tiny_config
from policies.pi05.policy import Pi05Policy

__all__ = ["Pi05Config", "Pi05Policy", "tiny_config"]

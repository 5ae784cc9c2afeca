"""pi0 (Black et al. 2024) in PyTorch: exact `lerobot/pi0_base` keys, prefix KV cache, FlowPolicy API."""

from policies.pi0.config import Pi0Config, tiny_config
from policies.pi0.policy import Pi0Policy

__all__ = ["Pi0Config", "Pi0Policy", "tiny_config"]

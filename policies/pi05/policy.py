"""`Pi05Policy`: the pi0.5 network behind the FlowPolicy interface (pi0's: policies/pi0/policy.py).

What differs from pi0 at the policy level is the prompt: the state, normalised (quantiles by
default, so mostly in [-1, 1]), is cut into 256 bins and written into the prompt as LeRobot's
`pi05_prepare_state_tokenizer_processor_step` does:

    "Task: {task, stripped, '_' and '\\n' as spaces}, State: {bin bin ...};\\nAction: "

with the state's real dimension (no padding) and no clipping (x < -1 gives -1, x >= 0.9922 gives
255); BOS + ids, nothing appended. The batch keeps the normalised padded state for the critics
(`critic_features`); the model itself never reads it.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from policies.pi0.policy import PaliGemmaPolicy
from policies.pi05.io import PI05
from policies.pi05.model import Pi05Model

STATE_BINS = 256


def discretize_state(norm_state: np.ndarray) -> np.ndarray:
    """Bins of a normalised state [..., S]: digitize(x, linspace(-1, 1, 257)[:-1]) - 1, i.e.
    floor((x + 1) * 128) on [-1, 1); not clipped (openpi's PaligemmaTokenizer, LeRobot's step)."""
    return np.digitize(norm_state, bins=np.linspace(-1, 1, STATE_BINS + 1)[:-1]) - 1


def state_prompt(task: str, bins: np.ndarray) -> str:
    """pi0.5's prompt for one sample: the cleaned task, then its state bins."""
    cleaned = task.strip().replace("_", " ").replace("\n", " ")
    return f"Task: {cleaned}, State: {' '.join(map(str, bins))};\nAction: "


class Pi05Policy(PaliGemmaPolicy, Pi05Model):
    """pi0.5 as a FlowPolicy; its keys are exactly those LeRobot's PI05Policy saves."""

    type_name = "pi05"
    layout = PI05
    appends_newline = False  # the prompt ends with "Action: " already

    def heads(self) -> list[nn.Module]:
        """action_in_proj, action_out_proj, time_mlp_in/out."""
        return [self.action_in_proj, self.action_out_proj, self.time_mlp_in, self.time_mlp_out]

    def prompts(self, tasks: list[str], norm_state: Tensor) -> list[str]:
        """The prompt strings of a batch: task [B] and normalised unpadded state [B, S]."""
        bins = discretize_state(norm_state.detach().float().cpu().numpy())
        return [state_prompt(task, row) for task, row in zip(tasks, bins, strict=True)]

    def prompt_tokens(self, prompts: list[str], norm_state: Tensor) -> tuple[Tensor, Tensor]:
        """Ids and mask [B, L] of the tasks with their discretised states."""
        assert self.tokenizer is not None
        return self.tokenizer(self.prompts(prompts, norm_state))

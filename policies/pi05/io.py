"""pi0.5 folders in LeRobot's layout: pi0's files (policies/pi0/io.py), with pi0.5's key fixes and
pre-processor steps.

Key fixes, as LeRobot 0.6.1's PI05Policy.from_pretrained makes them (shared/reference/pi05.md,
section 2), so a checkpoint it loads loads here and nothing else does:
- a `model.` prefix (LeRobot's saves) is dropped;
- `paligemma.lm_head.weight` also serves as the prompt table `embed_tokens` when the file has none
  (lerobot/pi05_base stores lm_head alone); a file with both keeps both;
- in un-prefixed keys only (openpi conversions): `action_time_mlp_{in,out}.` becomes
  `time_mlp_{in,out}.`, and `state_proj.*` and the expert's plain-norm weights
  (`layers.N.{input,post_attention}_layernorm.weight`, `model.norm.weight`) are left out.
Any other missing, unexpected or misshapen key is a strict error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policies.errors import PolicyError
from policies.pi0 import io as pi0_io
from policies.pi0.config import Pi0Config
from policies.pi0.io import EMBED, LM_HEAD, PREFIX, FolderLayout, Steps
from policies.pi05.config import NORMALIZATION, Pi05Config
from policies.weights import KeyMap, TensorInfo

DROPPED = re.compile(r"state_proj\.|paligemma_with_expert\.gemma_expert\.model\.(layers\.\d+\."
                     r"(input_layernorm|post_attention_layernorm)\.weight|norm\.weight)")
"""Un-prefixed keys LeRobot's pi0.5 loader skips: pi0's state projection and the expert's plain norms."""
STATE_STEP = "pi05_prepare_state_tokenizer_processor_step"


def fix_keys(header: Mapping[str, TensorInfo]) -> KeyMap:
    """Model key -> stored key (and the stored keys left out), as LeRobot 0.6.1 loads pi0.5."""
    out: dict[str, str] = {}
    dropped: list[str] = []
    for old in header:
        if old.startswith(PREFIX):
            new = old[len(PREFIX):]
        elif DROPPED.match(old):
            dropped.append(old)
            continue
        else:
            new = re.sub(r"^action_time_mlp_(in|out)\.", r"time_mlp_\1.", old)
        if new in out:
            raise PolicyError(f"{old!r} and {out[new]!r} are both stored for {new!r}")
        out[new] = old
    if LM_HEAD in out and EMBED not in out:
        out[EMBED] = out[LM_HEAD]
    return KeyMap(out, dropped)


def pre_steps(config: Pi0Config, normalizer: dict[str, Any]) -> Steps:
    """processor_pi05.py: rename, batch, relative_actions, normalizer (step 3: the state is
    normalised before it is discretised), the state-into-prompt step, tokenizer, device."""
    return [pi0_io.rename_step(), pi0_io.batch_step(), pi0_io.relative_step(), normalizer,
            {"registry_name": STATE_STEP, "config": {}}, pi0_io.tokenizer_step(config.tokenizer_max_length),
            pi0_io.device_step()]


PI05 = FolderLayout("pi05", Pi05Config, NORMALIZATION, fix_keys, pre_steps)
"""LeRobot 0.6.1's pi0.5 folders."""

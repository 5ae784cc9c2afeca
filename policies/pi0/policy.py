"""`Pi0Policy`: the pi0 network behind the FlowPolicy interface, with files, precision and scopes.
`PaliGemmaPolicy` is what it shares with pi0.5's policy (policies/pi05): everything but the heads,
how prompts are made and which folder layout it reads and writes.

Env observations: `image/<camera>` uint8 [B, H, W, 3] (the camera map assigns env cameras to
the model's slots base_0_rgb / left_wrist_0_rgb / right_wrist_0_rgb; a missing slot is a -1 image
with mask False), `state` float [B, S], `prompt` list[str]. Actions live in model space
(normalised, zero padded to max_action_dim) until `to_env_actions`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from torch import Tensor, nn

from policies.errors import PolicyError
from policies.pi0 import io
from policies.pi0.config import CAMERAS, Pi0Config, unsupported_fields
from policies.pi0.lora import add_lora, merged_state_dict
from policies.pi0.model import PaliGemmaFlowModel, Pi0Model
from policies.pi0.preprocess import NORMALIZERS, Normalizer, PromptTokenizer, pad_last, resize_with_pad
from policies.weights import dropped_keys, expected_shapes, read_header

SCOPES = ("expert", "full", "lora")
# Env camera names of the project's tasks (LIBERO, ALOHA); the model's own slot names map to themselves.
DEFAULT_CAMERA_MAP = {"agentview": "base_0_rgb", "top": "base_0_rgb", "wrist": "left_wrist_0_rgb",
                      "left_wrist": "left_wrist_0_rgb", "right_wrist": "right_wrist_0_rgb",
                      **{c: c for c in CAMERAS}}
FP32_PARTS = ("vision_tower", "multi_modal_projector", "layernorm", ".norm.")


class PaliGemmaPolicy(PaliGemmaFlowModel):
    """A PaliGemma flow VLA as a FlowPolicy (pi0, pi0.5). A family adds: `type_name`, `layout` (its
    LeRobot folders), `heads()`, and, where its prompts differ from pi0's, `appends_newline` and
    `prompt_tokens`. Its `state_dict()` keys are exactly LeRobot's (plus `lora_a`/`lora_b` while
    LoRA adapters are on; saving merges them)."""

    type_name: str
    layout: io.FolderLayout
    appends_newline = True
    """Whether the tokenizer appends "\\n" to a prompt (pi0's newline step)."""

    def __init__(self, config: Pi0Config, *, scope: str = "expert", lora_rank: int = 16,
                 lora_alpha: float = 16.0) -> None:
        super().__init__(config)
        self.horizon, self.action_dim = config.chunk_size, config.max_action_dim
        self.critic_feature_dim = config.max_state_dim + config.vlm.width
        modes = self.layout.normalization
        self.processors = io.Processors(state=NORMALIZERS[modes["STATE"]](),
                                        action=NORMALIZERS[modes["ACTION"]](),
                                        camera_map=dict(DEFAULT_CAMERA_MAP))
        self.tokenizer: PromptTokenizer | None = None
        self.raw_config: dict[str, Any] = {}
        self.load_warnings: list[str] = []
        """What a loaded folder holds that fpoctl does not honour (config.json fields that would change
        behaviour) or leaves out (stored keys LeRobot's loader skips too)."""
        self.scope = scope
        self.lora_rank, self.lora_alpha = lora_rank, lora_alpha
        self._trainable: set[str] = set()
        self.set_trainable(scope)

    # -- setup ---------------------------------------------------------------------------
    def stored_dtype(self, name: str) -> torch.dtype:
        """float32: everything. bfloat16: the FROZEN weights of both transformers in bf16, except the
        vision tower, the projector and every norm. What trains keeps float32 master weights (Adam's
        ~1e-5 steps would vanish below a bf16 ulp) and computes in bf16 under autocast; the heads and
        LoRA adapters always stay float32."""
        low = (self.config.dtype == "bfloat16" and name.startswith("paligemma_with_expert.")
               and not any(part in name for part in FP32_PARTS) and "lora_" not in name
               and name not in self._trainable)
        return torch.bfloat16 if low else torch.float32

    def apply_precision(self) -> None:
        """Cast every parameter to its `stored_dtype`."""
        for name, param in self.named_parameters():
            dtype = self.stored_dtype(name)
            if param.dtype != dtype:
                param.data = param.data.to(dtype)

    def shard_units(self) -> list[tuple[nn.Module, torch.dtype | None, tuple[str, ...]]]:
        """The blocks a sharded (FSDP2) run gathers one at a time, innermost first, each with the
        dtype it computes in (None: its parameters' own) and the methods other than `forward` that
        use its weights: every vision-tower layer, every layer of both Gemma stacks (bf16 with
        dtype="bfloat16"; their norms then are units of their own, kept float32), the token
        embedding, and both unused lm_heads (so they are never gathered). The root keeps the
        rest: projector, heads, final norms, patch and position embeddings."""
        low = torch.bfloat16 if self.config.dtype == "bfloat16" else None
        pg = self.paligemma_with_expert.paligemma
        units: list[tuple[nn.Module, torch.dtype | None, tuple[str, ...]]] = [
            (layer, None, ()) for layer in pg.model.vision_tower.vision_model.encoder.layers]
        for stack in self._stacks():
            for layer in stack.layers:
                if low:
                    units += [(layer.input_layernorm, None, ()), (layer.post_attention_layernorm, None, ())]
                units.append((layer, low, ()))
        units.append((self.language_model.embed_tokens, low, ()))
        units += [(pg.lm_head, None, ()), (self.paligemma_with_expert.gemma_expert.lm_head, None, ())]
        return units

    def heads(self) -> list[nn.Module]:
        """The family's projections around the transformers (always trained)."""
        raise NotImplementedError

    def set_trainable(self, scope: str) -> None:
        """expert: action expert + heads; full: everything but the two lm_heads (pi0 never decodes
        text; the prompt table embed_tokens trains); lora: adapters on both transformers'
        projections + heads (the rest frozen). Then each parameter takes its `stored_dtype`."""
        if scope not in SCOPES:
            raise PolicyError(f"unknown trainable scope {scope!r}; known: {', '.join(SCOPES)}")
        self.scope = scope
        self.requires_grad_(scope == "full")
        for head in self.heads():
            head.requires_grad_(True)
        if scope == "expert":
            self.action_expert.requires_grad_(True)
        if scope == "lora":
            for p in add_lora([self.language_model, self.action_expert], self.lora_rank, self.lora_alpha):
                p.requires_grad_(True)
        self.paligemma_with_expert.paligemma.lm_head.requires_grad_(False)
        self.paligemma_with_expert.gemma_expert.lm_head.requires_grad_(False)
        self._trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        self.apply_precision()

    def set_camera_map(self, camera_map: Mapping[str, str]) -> None:
        """Assign env cameras to model slots (added to the defaults)."""
        bad = sorted(v for v in camera_map.values() if v not in CAMERAS)
        if bad:
            raise PolicyError(f"camera map targets {bad} are not model cameras ({', '.join(CAMERAS)})")
        self.processors.camera_map = {**DEFAULT_CAMERA_MAP, **camera_map}

    def set_tokenizer(self, model_file: str | Path) -> None:
        """Use this SentencePiece model for prompts."""
        tokenizer = PromptTokenizer(model_file, self.config.tokenizer_max_length,
                                    newline=self.appends_newline)
        if tokenizer.vocab_size > self.config.vocab_size:
            raise PolicyError(f"tokenizer {tokenizer.path} has {tokenizer.vocab_size} ids, the model only "
                              f"{self.config.vocab_size}")
        self.tokenizer = tokenizer
        self.processors.tokenizer_file = tokenizer.path

    def set_stats(self, state: Normalizer | None = None, action: Normalizer | None = None) -> None:
        """The normalisation of states and actions (MeanStd or Quantiles)."""
        if state is not None:
            self.processors.state = state
        if action is not None:
            self.processors.action = action

    def fit_normalization(self, states: np.ndarray, actions: np.ndarray) -> None:
        """Statistics of states [M, S] and actions [M, d] (e.g. from demonstrations), in the modes the
        policy normalises with (pi0 mean/std, pi0.5 quantiles)."""
        acts = actions.reshape(-1, actions.shape[-1])
        state, action = self.processors.state, self.processors.action
        self.set_stats(type(state).fit(states, state.eps), type(action).fit(acts, action.eps))

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return self.action_out_proj.weight.device

    # -- the FlowPolicy interface --------------------------------------------------------
    def prepare(self, obs: Mapping[str, Any], device: torch.device | str) -> dict[str, Tensor]:
        """Model inputs: images [B, 3, 3, S, S], image_masks [B, 3], tokens / token_masks [B, L],
        state [B, max_state_dim] (normalised, padded)."""
        if "state" not in obs:
            raise PolicyError("observation has no 'state'")
        state = torch.as_tensor(np.asarray(obs["state"], dtype=np.float32), device=device)
        if state.dim() != 2:
            raise PolicyError(f"state must be [B, S], got {list(state.shape)}")
        b, size = state.shape[0], self.config.image_size
        images = torch.full((b, len(CAMERAS), 3, size, size), -1.0, device=device)
        masks = torch.zeros(b, len(CAMERAS), dtype=torch.bool, device=device)
        filled: dict[str, str] = {}
        for key, value in obs.items():
            if not key.startswith("image/"):
                continue
            cam = key[len("image/"):]
            slot = self.processors.camera_map.get(cam)
            if slot is None:
                raise PolicyError(f"camera {cam!r} has no model slot; pass camera_map={{{cam!r}: ...}} "
                                  f"with one of {', '.join(CAMERAS)}")
            if slot in filled:
                raise PolicyError(f"cameras {filled[slot]!r} and {cam!r} both map to {slot}")
            filled[slot] = cam
            i = CAMERAS.index(slot)
            images[:, i] = resize_with_pad(torch.as_tensor(np.asarray(value), device=device), size)
            masks[:, i] = True
        prompts = obs.get("prompt", [""] * b)
        prompts = [prompts] * b if isinstance(prompts, str) else list(prompts)
        if len(prompts) != b:
            raise PolicyError(f"{len(prompts)} prompts for a batch of {b}")
        if self.tokenizer is None:
            raise PolicyError(f"{self.type_name} has no tokenizer: pass tokenizer=PATH (a SentencePiece "
                              ".model file)")
        norm_state = self.processors.state.normalize(state)
        tokens, token_masks = self.prompt_tokens(prompts, norm_state)
        return {"images": images, "image_masks": masks, "tokens": tokens.to(device),
                "token_masks": token_masks.to(device),
                "state": pad_last(norm_state, self.config.max_state_dim, "state")}

    def prompt_tokens(self, prompts: list[str], norm_state: Tensor) -> tuple[Tensor, Tensor]:
        """Prompt ids and mask [B, L] (pi0: the task alone; the state goes to its own token)."""
        assert self.tokenizer is not None
        return self.tokenizer(prompts)

    def sample(self, batch: Mapping[str, Any], *, noise: Tensor | None = None, steps: int = 10,
               explore_scale: float = 0.0, explore_steps: Sequence[int] | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Action chunks [B, H, D] (model space); prefix once, then `steps` expert-only Euler steps."""
        if noise is None:
            b = batch["state"].shape[0]
            noise = torch.randn((b, self.horizon, self.action_dim), generator=generator,
                                device=batch["state"].device)
        with torch.no_grad():
            return self.sample_actions(batch, noise.float(), steps=steps, explore_scale=explore_scale,
                                       explore_steps=explore_steps, generator=generator)

    def critic_features(self, batch: Mapping[str, Any]) -> Tensor:
        """Normalised padded state ++ mean-pooled final prefix hidden state: [B, max_state_dim + W_vlm]."""
        with torch.no_grad():
            return torch.cat([batch["state"].float(), self.prefix_features(batch)], dim=-1)

    def to_env_actions(self, actions: Tensor, d_env: int) -> np.ndarray:
        """Keep the first d_env dims and undo the action normalisation."""
        return self.processors.action.unnormalize(actions[..., :d_env].detach()).cpu().numpy()

    def from_env_actions(self, actions: np.ndarray) -> Tensor:
        """Normalise and zero-pad env actions [B, H, d_env] to [B, H, max_action_dim]."""
        x = torch.as_tensor(np.asarray(actions, dtype=np.float32), device=self.device)
        return pad_last(self.processors.action.normalize(x), self.config.max_action_dim, "action")

    # -- files -----------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, state_dict: Mapping[str, Tensor] | None = None) -> None:
        """The LeRobot layout; LoRA adapters are merged so the keys equal the reference.
        `state_dict`: the full weights to write instead of the module's own (a sharded run gathers
        them); each is stored in its `stored_dtype`."""
        state = merged_state_dict(self, None if state_dict is None else dict(state_dict))
        state = {k: v.to(self.stored_dtype(k)) for k, v in state.items()}
        io.write_folder(Path(folder), self.config, self.raw_config, state, self.processors, self.layout)

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, tokenizer: str | Path | None = None,
                        camera_map: Mapping[str, str] | None = None, scope: str = "expert",
                        dtype: str | None = None, gradient_checkpointing: bool | None = None,
                        lora_rank: int = 16, lora_alpha: float = 16.0,
                        device: torch.device | str = "cpu") -> Self:
        """Load a LeRobot-layout folder strictly (every key and shape checked before loading)."""
        folder = Path(folder)
        config, raw = io.read_config(folder, cls.layout)
        if dtype is not None:
            config.dtype = dtype
        if gradient_checkpointing is not None:
            config.gradient_checkpointing = gradient_checkpointing
        processors = io.read_processors(folder, cls.layout)
        with torch.device("meta"):
            policy = cls(config, scope="expert", lora_rank=lora_rank, lora_alpha=lora_alpha)
        weights = io.read_weights(folder, expected_shapes(policy.state_dict()), cls.layout)
        policy.load_state_dict(weights, strict=True, assign=True)
        policy.set_trainable(scope)  # casts to each parameter's stored dtype on the CPU, then move
        policy.to(device)
        policy.raw_config = raw
        dropped = sorted(dropped_keys(cls.layout.fix_keys(read_header(folder / io.WEIGHTS))))
        policy.load_warnings = unsupported_fields(raw) + (
            [f"{len(dropped)} stored keys left out, as LeRobot's loader does: {', '.join(dropped[:3])}"
             + (" ..." if len(dropped) > 3 else "")] if dropped else [])
        policy.processors = processors
        policy.set_camera_map(processors.camera_map | dict(camera_map or {}))
        tok = tokenizer or processors.tokenizer_file
        if tok is not None:
            policy.set_tokenizer(tok)
        return policy

    @classmethod
    def create(cls, config: Pi0Config, *, tokenizer: str | Path | None = None,
               camera_map: Mapping[str, str] | None = None, scope: str = "expert", lora_rank: int = 16,
               lora_alpha: float = 16.0, device: torch.device | str | None = None) -> Self:
        """A freshly initialised policy (random weights, identity normalisation) on `device` (default:
        torch's current default device, so `with torch.device("meta")` allocates nothing)."""
        with torch.device(device) if device is not None else contextlib.nullcontext():
            policy = cls(config, scope=scope, lora_rank=lora_rank, lora_alpha=lora_alpha)
        if camera_map:
            policy.set_camera_map(camera_map)
        if tokenizer is not None:
            policy.set_tokenizer(tokenizer)
        return policy


class Pi0Policy(PaliGemmaPolicy, Pi0Model):
    """pi0 as a FlowPolicy; its keys are exactly those of `lerobot/pi0_base`."""

    type_name = "pi0"
    layout = io.PI0

    def heads(self) -> list[nn.Module]:
        """state_proj, action_in_proj, action_time_mlp_in/out, action_out_proj."""
        return [self.state_proj, self.action_in_proj, self.action_time_mlp_in, self.action_time_mlp_out,
                self.action_out_proj]

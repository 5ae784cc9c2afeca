"""The model card (README.md) of a pushed run: Hub metadata (LeRobot library, robotics pipeline,
tags, base model), the task, success before/after, evaluations, key hyperparameters, curves."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

# Config keys worth a line in the card (the full config is in train_config.json).
KEY_HYPERPARAMETERS = (
    "lr", "learning_rate", "actor_lr", "critic_lr", "clip_eps", "clip_epsilon", "ratio_mode", "n_mc",
    "num_mc", "gamma", "gae_lambda", "num_envs", "n_envs", "iterations", "total_steps", "rollout_steps",
    "steps_per_iteration", "batch_size", "minibatch_size", "epochs", "update_epochs", "explore_scale",
    "explore_steps", "critic", "n_critics", "ensemble_size", "polyak", "tau", "max_grad_norm", "seed",
)
LEROBOT_CLASSES = {"pi0": ("lerobot.policies.pi0.modeling_pi0", "PI0Policy"),
                   "pi05": ("lerobot.policies.pi05.modeling_pi05", "PI05Policy")}
"""The LeRobot class that loads a pushed folder, by config.json "type"."""
SECRET_KEY = re.compile(r"token|secret|password|passwd|api[_-]?key|credential", re.IGNORECASE)


@dataclass
class CardFacts:
    """Everything the card says, gathered from the store by the push."""

    repo: str
    policy_type: str
    task: str
    run_name: str
    run_id: int
    checkpoint_step: int
    n_params: int
    checkpoint_success: float | None = None
    base_model: str | None = None
    success: dict[str, float] = field(default_factory=dict)  # first / last / best
    success_key: str = "eval/success_rate"
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    env_steps: float | None = None
    git_sha: str | None = None
    curves_file: str | None = None
    files: list[str] = field(default_factory=list)


def scrub(config: Any, secret: str | None = None) -> Any:
    """A copy of a config without keys that look like credentials, and without `secret` anywhere."""
    if isinstance(config, dict):
        return {k: scrub(v, secret) for k, v in config.items() if not SECRET_KEY.search(str(k))}
    if isinstance(config, list):
        return [scrub(v, secret) for v in config]
    if isinstance(config, str) and secret and secret in config:
        return config.replace(secret, "<redacted>")
    return config


def key_hyperparameters(config: dict[str, Any], limit: int = 24) -> dict[str, Any]:
    """Dotted key -> scalar for the well-known hyperparameters (else the first scalars)."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        elif isinstance(node, (int, float, str, bool)) or node is None:
            flat[prefix[:-1]] = node

    walk(config, "")
    known = {k: v for k, v in flat.items() if k.rsplit(".", 1)[-1] in KEY_HYPERPARAMETERS}
    return dict(list((known or flat).items())[:limit])


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def render(f: CardFacts) -> str:
    """README.md text: YAML metadata, then Markdown."""
    tags = ["robotics", "lerobot", "fpo", "reinforcement-learning", "flow-matching", f.policy_type]
    if f.task:
        tags.append(f.task)
    meta: dict[str, Any] = {"library_name": "lerobot", "pipeline_tag": "robotics",
                            "tags": list(dict.fromkeys(tags))}
    if f.base_model:
        meta["base_model"] = f.base_model
    out = ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", "", f"# {f.repo.split('/')[-1]}", ""]
    base = f" from [{f.base_model}](https://huggingface.co/{f.base_model})" if f.base_model else ""
    out += [f"A `{f.policy_type}` flow-matching policy ({f.n_params / 1e6:.2f}M parameters) fine-tuned{base} "
            f"with **Flow Policy Optimization** (FPO, online reinforcement learning) on the task "
            f"`{f.task or 'unknown'}`, using fpoctl.", ""]
    if f.success:
        out += [f"## Success ({f.success_key})", "", "| before | after | best |", "|---|---|---|",
                f"| {_pct(f.success.get('first'))} | {_pct(f.success.get('last'))} | "
                f"{_pct(f.success.get('best'))} |", "",
                "*Before* is the first evaluation of the run (the starting policy), *after* the last.", ""]
    if f.evaluations:
        out += ["## Evaluations", "", "| task | episodes | success | mean return | policy |",
                "|---|---|---|---|---|"]
        out += [f"| {e['task']} | {e['episodes']} | {_pct(e['success_rate'])} | {e['mean_return']:.3g} | "
                f"{e['source']} |" for e in f.evaluations]
        out.append("")
    at = f" ({f.success_key} {_pct(f.checkpoint_success)})" if f.checkpoint_success is not None else ""
    out += ["## Training", "", f"- run: `{f.run_name}` (fpoctl run {f.run_id}), checkpoint at iteration "
            f"{f.checkpoint_step}{at}"]
    if f.env_steps is not None:
        out.append(f"- environment steps: {f.env_steps:,.0f}")
    if f.git_sha:
        out.append(f"- code: fpoctl at git `{f.git_sha[:12]}`")
    out.append("- full resolved configuration: `train_config.json`")
    if f.hyperparameters:
        out += ["", "| hyperparameter | value |", "|---|---|"]
        out += [f"| {k} | `{v}` |" for k, v in f.hyperparameters.items()]
    if f.curves_file:
        out += ["", f"![Training curves]({f.curves_file})"]
    out += ["", "## Use", "", "```bash", f"fpoctl pull {f.repo}", "```", ""]
    if f.policy_type in LEROBOT_CLASSES:
        module, cls = LEROBOT_CLASSES[f.policy_type]
        out += ["With LeRobot:", "", "```python", f"from {module} import {cls}", "",
                f'policy = {cls}.from_pretrained("{f.repo}")', "```", ""]
    out += ["## Files", ""] + [f"- `{name}`" for name in f.files] + [""]
    return "\n".join(out)

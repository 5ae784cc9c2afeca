"""Checkpoints on disk: written atomically, hashed, verified on load.

Layout of one checkpoint folder (runs/<id>/checkpoints/step_000042/):
  policy/           the policy in its own saved layout (config.json, model.safetensors, ...)
  trainer.pt        critic, optimisers, RNG states, counters (tensors + plain data only;
                    loaded with torch.load(weights_only=True))
  meta.json         step, metrics, config
  manifest.json     sha256 of every file above; its own sha256 goes to the store
The folder is written as `.tmp-*` beside its final name, each file fsynced, then renamed. The
manifest and its verification are the store's (fpoctl/store/checkpoints.py, no torch needed).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from fpoctl.store.checkpoints import CheckpointError, manifest_sha256, verify_checkpoint, write_manifest
from policies.base import FlowPolicy

__all__ = ["load_trainer_state", "read_meta", "save_checkpoint", "verify_checkpoint"]


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(folder: Path, policy: FlowPolicy, trainer_state: dict[str, Any] | None,
                    meta: dict[str, Any]) -> str:
    """Write a checkpoint folder atomically; returns the manifest's sha256."""
    folder = Path(folder)
    tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        policy.save_pretrained(tmp / "policy")
        if trainer_state is not None:
            import torch  # here, so that verifying a checkpoint (`fpoctl resume`) needs no torch

            torch.save(trainer_state, tmp / "trainer.pt")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        write_manifest(tmp)
        _fsync_tree(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        _fsync_tree(folder.parent)
    except Exception as exc:  # OSError, or a serialiser's own I/O error (safetensors on a full disk)
        shutil.rmtree(tmp, ignore_errors=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise CheckpointError(f"cannot write checkpoint {folder}: {reason}") from None
    return manifest_sha256(folder)


def load_trainer_state(folder: Path) -> dict[str, Any]:
    """The trainer state of a verified checkpoint (tensors and plain data only)."""
    import torch

    return torch.load(Path(folder) / "trainer.pt", map_location="cpu", weights_only=True)


def read_meta(folder: Path) -> dict[str, Any]:
    """meta.json of a checkpoint."""
    return json.loads((Path(folder) / "meta.json").read_text())

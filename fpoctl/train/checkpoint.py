"""Checkpoints on disk: written atomically, hashed, verified on load.

Layout of one checkpoint folder (runs/<id>/checkpoints/step_000042/):
  policy/           the policy in its own saved layout (config.json, model.safetensors, ...)
  trainer.pt        critic, optimisers, RNG states, counters (tensors + plain data only;
                    loaded with torch.load(weights_only=True))
  meta.json         step, metrics, config
  manifest.json     sha256 of every file above; its own sha256 goes to the store
The folder is written as `.tmp-*` beside its final name, each file fsynced, then renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from fpoctl.errors import FpoctlError


class CheckpointError(FpoctlError):
    """A checkpoint is missing, incomplete or does not match its recorded hash."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def save_checkpoint(folder: Path, policy: Any, trainer_state: dict[str, Any] | None,
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
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {str(p.relative_to(tmp)): _sha256(p) for p in files}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        _fsync_tree(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        _fsync_tree(folder.parent)
    except Exception as exc:  # OSError, or a serialiser's own I/O error (safetensors on a full disk)
        shutil.rmtree(tmp, ignore_errors=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise CheckpointError(f"cannot write checkpoint {folder}: {reason}") from None
    return _sha256(folder / "manifest.json")


def verify_checkpoint(folder: Path, sha256: str | None = None) -> None:
    """Check the manifest's hash (when known) and every file against the manifest."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise CheckpointError(f"checkpoint {folder} is missing or incomplete (no manifest.json)")
    if sha256 and _sha256(manifest_path) != sha256:
        raise CheckpointError(f"checkpoint {folder}: manifest does not match the recorded sha256")
    for rel, digest in json.loads(manifest_path.read_text()).items():
        path = folder / rel
        if not path.exists():
            raise CheckpointError(f"checkpoint {folder}: {rel} is missing")
        if _sha256(path) != digest:
            raise CheckpointError(f"checkpoint {folder}: {rel} is corrupt (sha256 mismatch)")


def load_trainer_state(folder: Path) -> dict[str, Any]:
    """The trainer state of a verified checkpoint (tensors and plain data only)."""
    import torch

    return torch.load(Path(folder) / "trainer.pt", map_location="cpu", weights_only=True)


def read_meta(folder: Path) -> dict[str, Any]:
    """meta.json of a checkpoint."""
    return json.loads((Path(folder) / "meta.json").read_text())

"""A checkpoint folder's manifest: the sha256 of every file in it, whose own sha256 the store's
checkpoints table records, and the check of a folder against both. Needs no torch: the trainer
writes manifests (train/checkpoint.py), a resume and a push verify them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fpoctl.errors import FpoctlError

MANIFEST = "manifest.json"


class CheckpointError(FpoctlError):
    """A checkpoint is missing, incomplete or does not match its recorded hash."""


def sha256_file(path: Path) -> str:
    """The hex sha256 of one file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path) -> None:
    """Hash every file under `folder` into its manifest."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {str(p.relative_to(folder)): sha256_file(p) for p in files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def manifest_sha256(folder: Path) -> str:
    """The sha256 of a folder's manifest: what the store records for the checkpoint."""
    return sha256_file(Path(folder) / MANIFEST)


def verify_checkpoint(folder: Path, sha256: str | None = None) -> None:
    """Check the manifest's hash (when known) and every file against the manifest."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise CheckpointError(f"checkpoint {folder} is missing or incomplete (no {MANIFEST})")
    if sha256 and sha256_file(manifest_path) != sha256:
        raise CheckpointError(f"checkpoint {folder}: manifest does not match the recorded sha256")
    for rel, digest in json.loads(manifest_path.read_text()).items():
        path = folder / rel
        if not path.exists():
            raise CheckpointError(f"checkpoint {folder}: {rel} is missing")
        if sha256_file(path) != digest:
            raise CheckpointError(f"checkpoint {folder}: {rel} is corrupt (sha256 mismatch)")

"""A detached job's log (runs/<id>/train.log): its last lines, or followed while the job lives."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fpoctl.errors import FpoctlError
from fpoctl.jobs.launch import log_path
from fpoctl.jobs.process import is_active
from fpoctl.settings import Settings
from fpoctl.store import Store

TAIL_BYTES = 1 << 20


def last_lines(path: Path, lines: int) -> tuple[str, int]:
    """The last `lines` lines of a file (0 = all) and the offset where the file ends."""
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - TAIL_BYTES) if lines else 0)
        text = f.read(size - f.tell()).decode(errors="replace")
    if lines:
        text = "".join(text.splitlines(keepends=True)[-lines:])
    return text, size


def show_log(settings: Settings, run_ref: int | str, write: Callable[[str], None], *, lines: int = 0,
             follow: bool = False, poll: float = 0.5) -> None:
    """Write the run's log; with `follow`, keep writing what is appended until the job ends."""
    if lines < 0:
        raise FpoctlError(f"--lines must be 0 (all) or more, got {lines}")
    with Store(settings.db_url) as store:
        run = store.get_run(run_ref)
        path, run_dir = log_path(settings, run.id), settings.run_dir(run.id)
        if not path.exists():
            raise FpoctlError(f"run {run.id} has no job log (it ran in the foreground or never "
                              f"started); see `fpoctl runs show {run.id}`")
        text, offset = last_lines(path, lines)
        write(text)
        if not follow:
            return
        with path.open("rb") as f:
            f.seek(offset)
            while True:
                chunk = f.read()
                if chunk:
                    write(chunk.decode(errors="replace"))
                    continue
                if not is_active(store.get_run(run.id), run_dir):
                    write(f.read().decode(errors="replace"))
                    return
                time.sleep(poll)

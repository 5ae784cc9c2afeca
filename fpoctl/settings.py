"""Where fpoctl keeps its things: the home folder and the store URL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fpoctl.errors import FpoctlError


@dataclass(frozen=True)
class Settings:
    """Resolved locations: `home` holds the SQLite store (by default) and `runs/<id>/` folders."""

    home: Path
    db_url: str

    @classmethod
    def resolve(cls, home: str | Path | None = None, db: str | None = None) -> Settings:
        """Options win over FPOCTL_HOME / FPOCTL_DB, which win over ~/.fpoctl."""
        home_path = Path(home or os.environ.get("FPOCTL_HOME") or "~/.fpoctl").expanduser()
        url = db or os.environ.get("FPOCTL_DB") or f"sqlite:///{home_path / 'fpoctl.db'}"
        return cls(home=home_path.resolve(), db_url=url)

    def ensure_home(self) -> Path:
        """Create the home folder (and runs/) or fail with a clear message."""
        try:
            (self.home / "runs").mkdir(parents=True, exist_ok=True)
            probe = self.home / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise FpoctlError(
                f"cannot write to the fpoctl home {self.home} ({exc.strerror or exc}); "
                "choose another with --home or FPOCTL_HOME"
            ) from None
        return self.home

    def run_dir(self, run_id: int) -> Path:
        """The folder of one run (logs, checkpoints)."""
        return self.home / "runs" / str(run_id)

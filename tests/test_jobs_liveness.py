"""Whether a run's worker still lives: a stale heartbeat and a gone pid show the run as `lost`."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from fpoctl.jobs.process import display_status
from fpoctl.store import Store


def test_stale_heartbeat_of_a_dead_pid_shows_lost(store: Store) -> None:
    run = store.create_run(name="x")
    store.set_status(run.id, "running")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.update_run(run.id, pid=proc.pid, heartbeat=time.time() - 3600)
    assert display_status(store.get_run(run.id)) == "lost"
    store.update_run(run.id, pid=os.getpid())
    assert display_status(store.get_run(run.id)) == "running"

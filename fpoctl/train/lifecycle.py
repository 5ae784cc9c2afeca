"""A training process's life signs and stop requests: the heartbeat thread, and SIGTERM / Ctrl-C
turned into "finish the current iteration, checkpoint, stop" (a second one stops at once)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType

from fpoctl.store import Store
from fpoctl.store.timing import heartbeat_stale_s


@contextmanager
def heartbeat(store: Store, run_id: int, every: float | None = None) -> Iterator[None]:
    """A background heartbeat so a long iteration never looks like a lost run (by default a beat
    every 10 s, or more often when the store's stale threshold is short)."""
    every = every or min(10.0, heartbeat_stale_s() / 4)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            # a busy database must not kill training; the next beat retries
            with suppress(Exception):
                store.heartbeat(run_id)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


class StopSignals:
    """While active, SIGTERM and SIGINT set `requested` (the trainer stops after the iteration it
    is in, with a checkpoint); a second one raises KeyboardInterrupt (stop now, no checkpoint).
    Install it early (before heavy imports) so a stop never kills a worker that is starting up."""

    def __init__(self, announce: bool = False) -> None:
        self.requested: str | None = None  # the signal's name once asked
        self.announce = announce
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # signals reach only that one
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        if self.announce:  # os.write: safe inside a signal handler, unlike print
            os.write(2, b"\nstopping after the current iteration (with a checkpoint); "
                        b"Ctrl-C again to stop at once, without one\n")

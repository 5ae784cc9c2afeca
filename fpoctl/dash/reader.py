"""The store reader: one background thread that polls each screen's feed about once a second
and posts what changed to that screen. The UI thread never touches the database."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

import sqlalchemy as sa
from textual.message_pump import MessagePump

from fpoctl.dash.feeds import Feed
from fpoctl.dash.messages import ReadFailed
from fpoctl.errors import FpoctlError
from fpoctl.store import Store


class StoreReader:
    """Owns the store connection; screens subscribe a feed and receive its messages."""

    def __init__(self, store: Store, *, interval: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.interval, self.clock = store, interval, clock
        self.tick_seconds: deque[float] = deque(maxlen=1000)
        """Duration of each tick: every feed polled (reads + building messages), newest last."""
        self._subs: dict[int, tuple[MessagePump, Feed]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fpoctl-dash-reader", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self, wait: float = 0.5) -> None:
        """Stop polling; wait up to `wait` seconds for a poll in progress (the thread is a
        daemon: a long first read never holds up quitting)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=wait)

    def poke(self) -> None:
        """Poll now (a screen changed what its feed reads)."""
        self._wake.set()

    def subscribe(self, target: MessagePump, feed: Feed) -> int:
        """Poll `feed` (at once, then every tick) and post its messages to `target`."""
        with self._lock:
            token = next(self._ids)
            self._subs[token] = (target, feed)
        self._wake.set()
        return token

    def unsubscribe(self, token: int) -> None:
        """Stop polling a feed."""
        with self._lock:
            self._subs.pop(token, None)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self._wake.clear()
            with self._lock:
                subs = list(self._subs.items())
            behind = False
            for token, (target, feed) in subs:
                behind |= self._poll(token, target, feed)
            self.tick_seconds.append(time.perf_counter() - started)
            if not behind:
                self._wake.wait(max(0.0, self.interval - (time.perf_counter() - started)))

    def _poll(self, token: int, target: MessagePump, feed: Feed) -> bool:
        try:
            message = feed.poll(self.store, self.clock())
        except (sa.exc.SQLAlchemyError, FpoctlError) as exc:
            message = ReadFailed(_one_line(exc))
        if message is not None and not target.post_message(message):
            self.unsubscribe(token)  # the screen is gone
            return False
        return feed.behind and not isinstance(message, ReadFailed)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        return f"store read failed: {exc.orig}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__

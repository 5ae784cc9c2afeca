"""How fpoctl drives huggingface_hub: request timeouts, and retries with back-off when the Hub
cannot be reached. Tunable with FPOCTL_HUB_TIMEOUT_S, FPOCTL_HUB_RETRIES, FPOCTL_HUB_BACKOFF_S."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import httpx2
from huggingface_hub import set_client_factory
from huggingface_hub.utils._http import default_client_factory

from fpoctl.hub.errors import HubContext, is_network_error, translate

T = TypeVar("T")
_configured = False


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def configure() -> None:
    """Give every huggingface_hub request a timeout: its API calls pass `timeout=None` (wait
    forever), so a request hook fills in ours wherever no timeout was set."""
    global _configured
    if _configured:
        return
    timeout = httpx2.Timeout(_env_float("FPOCTL_HUB_TIMEOUT_S", 30.0)).as_dict()

    def default_timeout(request: httpx2.Request) -> None:
        if not any(request.extensions.get("timeout", {}).values()):
            request.extensions["timeout"] = timeout

    def factory() -> httpx2.Client:
        client = default_client_factory()
        client.event_hooks["request"].append(default_timeout)
        return client

    set_client_factory(factory)
    _configured = True


def with_retries(fn: Callable[[], T], ctx: HubContext, *, say: Callable[[str], None] | None = None) -> T:
    """Call `fn`; when the Hub cannot be reached, wait (2 s, 4 s, 8 s, ...) and try again, then fail
    with a one-line error. Other errors are translated at once (retrying them would not help)."""
    configure()
    tries = max(1, int(_env_float("FPOCTL_HUB_RETRIES", 3)) + 1)
    backoff = _env_float("FPOCTL_HUB_BACKOFF_S", 2.0)
    say = say or (lambda msg: print(msg, file=sys.stderr))
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if is_network_error(exc) and attempt < tries:
                wait = backoff * 2 ** (attempt - 1)
                say(f"cannot reach the Hub ({type(exc.__cause__ or exc).__name__}); "
                    f"retrying in {wait:g}s ({attempt}/{tries - 1})")
                time.sleep(wait)
                continue
            mapped = translate(exc, ctx, tries=attempt)
            if mapped is None or mapped is exc:
                raise
            raise mapped from exc

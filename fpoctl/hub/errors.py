"""What can go wrong talking to the Hub, as one-line fpoctl errors, and the mapping from
huggingface_hub / httpx2 / OS exceptions to them."""

from __future__ import annotations

import errno
from dataclasses import dataclass

import httpx2
from huggingface_hub import constants, get_token
from huggingface_hub.errors import (
    DryRunError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from fpoctl.errors import FpoctlError, NotFoundError

LOGIN_HINT = "run `hf auth login` or set HF_TOKEN"


class HubError(FpoctlError):
    """A problem with the Hub, the download or the upload."""


class NotLoggedInError(HubError):
    """No token, or the Hub rejected it."""


class GatedRepoAccessError(HubError):
    """The repo is gated and this account has not accepted its conditions."""


class HubNotFoundError(HubError, NotFoundError):
    """A repo, revision or file that the Hub does not have (or does not show this account)."""


class NetworkError(HubError):
    """The Hub cannot be reached (connection refused, DNS, timeouts), even after retries."""


class OfflineError(HubError):
    """HF_HUB_OFFLINE is set and the cache does not hold what is asked for."""


class DiskFullError(HubError):
    """Not enough space for the download."""


class IncompleteDownloadError(HubError):
    """A transfer was cut short; the files that did complete stay in the cache."""


class CorruptDownloadError(HubError):
    """A downloaded file does not match what the Hub reported, or is not a valid file of its kind."""


class InvalidCheckpointError(HubError):
    """Files that are not a loadable policy (bad config, key mismatch, broken processor files)."""


class NoCheckpointError(HubError, NotFoundError):
    """A run has no checkpoint to push (yet)."""


@dataclass(frozen=True)
class HubContext:
    """What was being done, to word an error: the repo, the revision, the verb, read or write."""

    repo: str
    revision: str = "main"
    action: str = "pull"
    write: bool = False


def endpoint() -> str:
    """The Hub this process talks to (HF_ENDPOINT, read once by huggingface_hub)."""
    return constants.ENDPOINT


def _unwrap(exc: BaseException) -> BaseException:
    """The error behind a dry run that could not reach the repo."""
    while isinstance(exc, DryRunError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def is_network_error(exc: BaseException) -> bool:
    """Connection refused, DNS failure or a timeout (directly or as the cause of a cache miss)."""
    exc = _unwrap(exc)
    if isinstance(exc, OfflineModeIsEnabled):
        return False
    if isinstance(exc, (httpx2.ConnectError, httpx2.TimeoutException, httpx2.NetworkError)):
        return True
    if isinstance(exc, LocalEntryNotFoundError) and exc.__cause__ is not None:
        return is_network_error(exc.__cause__)
    return False


def is_cut_transfer(exc: BaseException) -> bool:
    """The server closed the connection before the body was complete."""
    exc = _unwrap(exc)
    return isinstance(exc, httpx2.RemoteProtocolError) or (
        isinstance(exc, LocalEntryNotFoundError) and isinstance(exc.__cause__, httpx2.RemoteProtocolError)
    )


def _server_message(exc: HfHubHTTPError) -> str:
    msg = exc.server_message or ""
    return msg.strip().splitlines()[0] if msg.strip() else ""


def translate(exc: BaseException, ctx: HubContext, tries: int = 1) -> FpoctlError | None:
    """The fpoctl error for an exception raised while talking to the Hub (None: not one of ours)."""
    exc = _unwrap(exc)
    where, repo = endpoint(), ctx.repo
    has_token = get_token() is not None
    if isinstance(exc, FpoctlError):
        return exc
    if isinstance(exc, HFValidationError):
        return HubError(f"{repo!r} is not a valid repo id (expected ORG/NAME): {exc}")
    if isinstance(exc, GatedRepoError):
        login = "" if has_token else f", then {LOGIN_HINT}"
        return GatedRepoAccessError(
            f"{repo} is a gated repo and this account has not been granted access: accept its "
            f"conditions on {where}/{repo}{login}")
    if isinstance(exc, RevisionNotFoundError):
        return HubNotFoundError(f"revision {ctx.revision!r} not found in {repo} on {where}")
    if isinstance(exc, RemoteEntryNotFoundError):
        return HubNotFoundError(f"a file is missing from {repo}@{ctx.revision} on {where}: "
                                f"{_server_message(exc) or exc}")
    if isinstance(exc, RepositoryNotFoundError):
        if has_token:
            return HubNotFoundError(f"repo {repo} not found on {where} (or your token cannot see it)")
        return HubNotFoundError(f"repo {repo} not found on {where}; if it is private, log in: {LOGIN_HINT}")
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        message = _server_message(exc)
        if status == 401:
            if has_token:
                return NotLoggedInError(f"the Hub ({where}) rejected your token (invalid or expired): "
                                        f"{LOGIN_HINT} with a valid one")
            return NotLoggedInError(f"not logged in to the Hub ({where}): {LOGIN_HINT}")
        if status == 403:
            need = "write access" if ctx.write else "read access"
            return NotLoggedInError(f"the Hub refused to let this token {ctx.action} {repo}: "
                                    f"{message or 'forbidden'} (the token needs {need})")
        return HubError(f"the Hub answered {status} while trying to {ctx.action} {repo}"
                        + (f": {message}" if message else ""))
    if isinstance(exc, LocalEntryNotFoundError) and (
        constants.HF_HUB_OFFLINE or isinstance(exc.__cause__, OfflineModeIsEnabled)
    ):
        return OfflineError(f"HF_HUB_OFFLINE is set and {repo}@{ctx.revision} is not (fully) in the "
                            f"cache {constants.HF_HUB_CACHE}; pull it once while online")
    if is_network_error(exc):
        cause = exc.__cause__ if isinstance(exc, LocalEntryNotFoundError) and exc.__cause__ else exc
        reason = type(cause).__name__ + (f": {cause}" if str(cause) else "")
        return NetworkError(f"cannot reach the Hub at {where} ({reason}) after {tries} "
                            f"{'try' if tries == 1 else 'tries'}; check the network or set "
                            "HF_HUB_OFFLINE=1 to use the cache")
    if is_cut_transfer(exc):
        return IncompleteDownloadError(
            f"the download of {repo}@{ctx.revision} was cut short ({exc}); nothing was registered, "
            f"the files that completed are kept: run `fpoctl pull` again to finish")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DiskFullError(f"disk full while writing {exc.filename or 'the download'} "
                             f"({exc.strerror}); free some space or point HF_HUB_CACHE elsewhere")
    return None

"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class FpoctlError(Exception):
    """A problem the user can fix (bad input, missing file, unreachable store, ...)."""

    exit_code = 1


class StoreError(FpoctlError):
    """The run store cannot be opened, read or written."""


class NotFoundError(FpoctlError):
    """A run, model, checkpoint or task that does not exist."""

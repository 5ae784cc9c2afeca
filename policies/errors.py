"""The one exception policies raise for bad names, folders, files and inputs (a one-line message)."""


class PolicyError(Exception):
    """A policy cannot be built, loaded or fed (unknown name, bad folder, key mismatch, bad input)."""

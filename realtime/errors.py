"""User-facing errors: the CLI prints these as one line and exits 2, without a traceback."""


class SwapcamError(Exception):
    """A problem the user can fix (bad file, bad value, missing device). Message names the culprit."""

    exit_code = 2


class ContractError(SwapcamError, ValueError):
    """A model file does not follow the I/O contract it claims (tensor names, shapes, metadata)."""

"""User-facing errors: the CLI prints these as one line and exits 2, without a traceback."""


class SwapcamError(Exception):
    """A problem the user can fix (bad file, bad value, missing device). Message names the culprit."""

    exit_code = 2


class ContractError(SwapcamError, ValueError):
    """A model file does not follow the I/O contract it claims (tensor names, shapes, metadata)."""


def one_line(exc: BaseException) -> str:
    """An exception as one line for a person (the page, the window, the log): its type and its message's first
    line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__

"""The one exception type for mistakes a user can fix (bad flag, bad config, missing file, no weights).

The command-line entry points catch it, print its message on one line and exit with status 2.
"""


class UserError(Exception):
    """A problem the user caused and can fix; its message says what to do next."""


class DataUnavailable(UserError):
    """No source could supply a dataset."""


class WeightsUnavailable(UserError):
    """No source could supply a backbone's pretrained weights."""


def first_line(exc: BaseException) -> str:
    """`Type: first line of the message`, for one-line error reports."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__

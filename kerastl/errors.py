"""The one exception type for mistakes a user can fix (bad flag, bad config, missing file, no weights).

The command-line entry points catch it, print its message on one line and exit with status 2;
the Python API (`kerastl.run`, ...) raises it.
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


class RunInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); the finished epochs are kept in `run_dir` for a resume."""

    def __init__(self, run_dir, mode: str):
        super().__init__(
            f"training interrupted; finished epochs are kept in {run_dir}; continue with "
            f"kerastl.run(mode={mode!r}, resume=True, run_name={run_dir.name!r}, output_dir={str(run_dir.parent)!r})"
        )
        self.run_dir, self.mode = run_dir, mode


class ExportFailed(RuntimeError):
    """A conversion, or the check of a converted file, failed; nothing was written."""

"""Shared command-line plumbing: one-line errors and exit status 2 for mistakes a user can fix."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from kerastl.errors import UserError

EXIT_ACCURACY_DROP = 1  # kerastl.export (and fit --export): an exported file lost accuracy
EXIT_USER_ERROR = 2
EXIT_EXPORT_FAILED = 3  # a conversion or a converted file failed
EXIT_INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag prints a single line (no usage block) before exiting with 2."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def run_cli(prog: str, main: Callable[[], int]) -> int:
    """Call `main`, turning UserError into one line on stderr and exit status 2."""
    try:
        return main()
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR

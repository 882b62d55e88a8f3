"""`python -m kerastl.inspect DATASET`: check a dataset's health before training. The command is
kerastl.inspection.command; in Python, call `kerastl.inspect(...)`. Nothing imports this module:
importing it would make the package attribute `kerastl.inspect` this module."""

import sys

from kerastl.inspection.command import cli

if __name__ == "__main__":
    sys.exit(cli())

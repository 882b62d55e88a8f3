"""`python -m kerastl.compare`: MLP vs CNN vs transfer learning, measured on the same splits and
drawn. The command is kerastl.study.command; in Python, call `kerastl.compare(...)`."""

import sys

from kerastl.study.command import cli

if __name__ == "__main__":
    sys.exit(cli())

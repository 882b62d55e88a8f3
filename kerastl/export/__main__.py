import sys

from kerastl.export.cli import cli

sys.exit(cli())

"""`python -m kerastl.predict MODEL IMAGE [IMAGE ...]`: classify pictures with a kerastl model.
The command is kerastl.prediction; in Python, call `kerastl.predict(...)`. Nothing imports this
module: importing it would make the package attribute `kerastl.predict` this module."""

import sys

from kerastl.prediction import cli

if __name__ == "__main__":
    sys.exit(cli())

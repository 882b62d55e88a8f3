"""`python -m kerastl.explain`: why transfer works, measured (a probe of every backbone block, what
it sees, embeddings, saliency). The command is kerastl.explanation.command; in Python, call
`kerastl.explain(...)`."""

import sys

from kerastl.explanation.command import cli

if __name__ == "__main__":
    sys.exit(cli())

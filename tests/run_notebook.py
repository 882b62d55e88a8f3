"""Execute docs/transfer_learning.ipynb top to bottom with nbclient; any cell error fails (exit 1).

    python tests/run_notebook.py --smoke     # CI: KERASTL_SMOKE=1, a couple of minutes; the file is not changed
    python tests/run_notebook.py --save      # the lesson's real run; its outputs are written into the notebook

The kernel starts in the repository root (run folders go to saved_models/) with this Python and
this process's environment (KERAS_BACKEND: TensorFlow unless set).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "transfer_learning.ipynb"
CELL_TIMEOUT = 1800  # seconds; the longest cell of the real run takes a few minutes


def execute(path: Path, smoke: bool, save: bool) -> float:
    """Run every cell in order; returns the wall time in seconds. Raises nbclient's CellExecutionError."""
    import nbclient
    import nbformat

    os.environ["KERASTL_SMOKE"] = "1" if smoke else "0"
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    if save:
        nbformat.write(notebook, path)
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--smoke", action="store_true", help="KERASTL_SMOKE=1; the notebook file is left as it is")
    mode.add_argument("--save", action="store_true", help="the real run, its outputs saved into the notebook")
    p.add_argument("--notebook", type=Path, default=NOTEBOOK)
    args = p.parse_args(argv)
    from nbclient.exceptions import CellExecutionError

    try:
        seconds = execute(args.notebook, smoke=args.smoke, save=args.save)
    except CellExecutionError as exc:
        print(f"run_notebook: a cell failed in {args.notebook.name}:\n{exc}", file=sys.stderr)
        return 1
    print(f"run_notebook: {args.notebook.name} ran {'in smoke mode ' if args.smoke else ''}without errors in {seconds:.0f} s"
          + (" (outputs saved)" if args.save else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

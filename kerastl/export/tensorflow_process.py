"""A function of kerastl called in a fresh process whose Keras runs on TensorFlow: only the TensorFlow
backend writes SavedModel and LiteRT files, and a process cannot switch backends, so an export from a
JAX or PyTorch process runs in a TensorFlow one.

The function is named by its module and name (`"kerastl.export.job:export_run"`), its keyword
arguments go to the child as JSON on stdin; its log lines come back through `log`; its result, or
the error to raise, comes back as JSON in a result file.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from kerastl.errors import ExportFailed, UserError, first_line
from kerastl.log import Log

ERRORS = {"UserError": UserError, "ExportFailed": ExportFailed}


def can_use_tensorflow_backend() -> bool:
    """True if Keras runs (or, not imported yet, will run) on TensorFlow in this process."""
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend() == "tensorflow"
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return False
    os.environ["KERAS_BACKEND"] = "tensorflow"
    return True


def call(target: str, arguments: dict[str, Any], log: Log) -> Any:
    """`module:function(log=..., **arguments)` in a TensorFlow-backend child process; its JSON result."""
    package_root = str(Path(__file__).resolve().parents[2])  # the child imports this same kerastl
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        result_path, stderr_path = Path(tmp) / "result.json", Path(tmp) / "stderr.txt"
        request = json.dumps({"target": target, "arguments": arguments, "result": str(result_path)})
        with open(stderr_path, "w") as stderr:  # TensorFlow's own logs: shown only if the child fails
            child = subprocess.Popen(
                [sys.executable, "-c", f"from {__name__} import child_main; child_main()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
            )
            child.stdin.write(request)
            child.stdin.close()
            for line in child.stdout:  # kerastl's progress lines
                log(line.rstrip("\n"))
            code = child.wait()
        if not result_path.is_file():
            tail = "\n".join(stderr_path.read_text().splitlines()[-20:])
            raise RuntimeError(f"the TensorFlow process failed (exit {code}) without a result:\n{tail}")
        result = json.loads(result_path.read_text())
    if "error" in result:
        raise ERRORS.get(result["error"], RuntimeError)(result["message"])
    return result["value"]


def child_main() -> None:
    """Read the request on stdin, call the function, write its result or the error to the result file."""
    import kerastl.cli  # noqa: F401  (quiets TensorFlow's start-up logs before it is imported)

    request = json.loads(sys.stdin.read())
    module, name = request["target"].split(":")
    try:
        function = getattr(importlib.import_module(module), name)
        result = {"value": function(log=lambda line: print(line, flush=True), **request["arguments"])}
    except (UserError, ExportFailed) as exc:
        result = {"error": type(exc).__name__ if type(exc).__name__ in ERRORS else "UserError", "message": str(exc)}
    except Exception as exc:
        result = {"error": type(exc).__name__, "message": first_line(exc)}
    Path(request["result"]).write_text(json.dumps(result))

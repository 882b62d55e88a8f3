"""A normal run prints kerastl's own lines and Keras' progress, nothing from TensorFlow's start-up."""

import os
import re
import subprocess
import sys

import pytest

from kerastl.quiet import filtered_stderr
from tests.helpers import ROOT

KERASTL_LINE = re.compile(r"^(kerastl[.:]|data: |stage \w+: |test: |weights: |feature: |pretrain: |figures: |confidence: |done: )")
KERAS_PROGRESS = re.compile(r"^(Epoch \d+/\d+|\d+/\d+ .*step.*)$")


def test_filtered_stderr_drops_only_tensorflow_start_up_lines(capfd):
    with filtered_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                    b"I0000 00:00:1.5 4233 port.cc:153] oneDNN custom operations are on. You may see...\n"
                    b"a real problem\n"
                    b"E0000 00:00:1.5 4233 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n")
        print("a Python warning", file=sys.stderr)
    assert sorted(capfd.readouterr().err.splitlines()) == ["a Python warning", "a real problem"]


@pytest.mark.every_backend
def test_a_normal_run_prints_only_kerastl_lines_and_keras_progress(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    result = subprocess.run(
        [sys.executable, "-m", "kerastl.fit", "--mode", "mlp", "--limit", "300", "--test-limit", "200",
         "--epochs", "1", "--output-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert [line for line in lines if not (KERASTL_LINE.match(line) or KERAS_PROGRESS.match(line))] == []
    assert any(line.startswith("done: mlp test accuracy") for line in lines)


def test_tensorflow_retracing_warnings_are_dropped_and_other_warnings_kept():
    import logging

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        logger.warning("5 out of the last 9 calls to <function f> triggered tf.function retracing. Tracing is expensive")
        logger.warning("something else")
    finally:
        logger.removeHandler(handler)
    assert seen == ["something else"]

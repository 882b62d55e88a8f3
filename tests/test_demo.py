"""`python -m kerastl.demo`: which models it shows, its HTTP answers (the same as kerastl.predict's),
its refusals, and Ctrl-C. The page in a real browser: tests/test_demo_browser.py."""

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

import kerastl
from kerastl import runs
from kerastl.cli import run_cli
from kerastl.demo import models as demo_models
from kerastl.demo.__main__ import main
from kerastl.digit_image import to_mnist
from kerastl.study.folder import STUDY
from kerastl.study.results import RESULTS_JSON
from tests.helpers import ROOT
from tests.demo_browser import serving


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-runs")
    return kerastl.run("mlp", limit=3000, epochs=2, test_limit=200, min_steps=0, seed=0, output_dir=str(out),
                       run_name="mlp", log=lambda _: None)


def drawn_digit(mnist, label: int, path):
    """An MNIST test digit as a person's drawing: dark ink on white paper, 200x200 pixels."""
    index = int(np.flatnonzero(mnist["y_test"] == label)[0])
    ink = Image.fromarray(255 - mnist["x_test"][index, ..., 0]).resize((200, 200), Image.Resampling.BILINEAR)
    ink.save(path)
    return path


def request(url: str, body: bytes | None = None):
    """(status, headers, body) of a GET, or of a POST when `body` is given."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST" if body is not None else "GET"), timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_the_page_answers_as_kerastl_predict_does(mlp_run, mnist, tmp_path):
    seven = drawn_digit(mnist, 7, tmp_path / "seven.png")
    with serving([mlp_run.folder]) as url:
        status, headers, page = request(url)
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        html = page.decode()
        assert '<canvas id="pad"' in html and 'type="file"' in html
        assert re.findall(r"https?://|//[a-z]", html) == []  # nothing to fetch from elsewhere
        assert "default-src 'none'" in headers["Content-Security-Policy"] and "connect-src 'self'" in headers["Content-Security-Policy"]

        status, _, catalogue = request(url + "models")
        (model,) = json.loads(catalogue)
        assert status == 200 and model["name"] == "mlp" and model["labels"] == [str(d) for d in range(10)]
        assert model["title"] == f"mlp on mnist, 3,000 images: {100 * mlp_run.metrics['test_accuracy']:.2f} % on 200 test images"

        status, _, answer = request(url + "predict", seven.read_bytes())
        (result,) = json.loads(answer)["results"]
        assert status == 200 and result["name"] == "mlp"
        answered = kerastl.predict(mlp_run, [seven])[0]  # the command's answer for the same file
        expected = answered["predictions"]
        assert result["threshold"] == answered["threshold"] == mlp_run.metrics["confidence"]["threshold"]
        assert result["abstained"] == answered["abstained"] == (expected[0]["probability"] < answered["threshold"])
        assert [p["label"] for p in result["predictions"]] == [p["label"] for p in expected] and expected[0]["label"] == "7"
        assert [p["probability"] for p in result["predictions"]] == pytest.approx([p["probability"] for p in expected], abs=1e-6)
        seen = np.asarray(Image.open(_data_url_file(result["input"], tmp_path / "seen.png")))
        assert np.array_equal(seen, to_mnist(seven)[..., 0])  # the picture went through predict's own preprocessing

        status, _, answer = request(url + "predict", b"not a picture")
        assert status == 200 and json.loads(answer)["results"] == [{"name": "mlp", "error": "not an image PIL can read (PNG, JPEG, BMP, ...)"}]
        assert request(url + "predict", b"")[0] == 400
        assert request(url + "nothing-here")[0] == 404


def _data_url_file(url: str, path):
    import base64

    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    path.write_bytes(base64.b64decode(url[len(prefix):]))
    return path


def test_a_study_folder_stands_for_its_best_mlp_cnn_and_finetune_runs(tmp_path):
    def row(contender, run, accuracy, per_class="all", status="ok", label=None):
        return {"contender": contender, "label": label or contender.upper(), "per_class": per_class, "status": status,
                "run": run, "test_accuracy": accuracy, "test_images": 2000, "train_images": 900}

    rows = [
        row("mlp", "mlp-n10", 0.75, per_class=10), row("mlp", "mlp-all", 0.9844, label="MLP from scratch"),
        row("cnn", "cnn-all", None, status="failed"), row("cnn", "cnn-n100", 0.9615, per_class=100, label="CNN from scratch"),
        row("finetune", "finetune-all", 0.9933, label="EfficientNet-Lite0 ImageNet, fine-tuned"),
        row("finetune", "finetune-gone", 0.999),  # its folder lost its model: not offered
        row("feature", "feature-all", 0.99),  # not one of the three
    ]
    for r in rows:
        (tmp_path / r["run"]).mkdir()
        if r["run"] != "finetune-gone":
            (tmp_path / r["run"] / runs.MODEL).write_bytes(b"")
    (tmp_path / STUDY).write_text("{}")  # what marks a study folder
    (tmp_path / RESULTS_JSON).write_text(json.dumps({"study": {}, "runs": rows}))
    assert demo_models.models_to_show([tmp_path]) == [
        (tmp_path / "mlp-all", "MLP from scratch, all images: 98.44 % on 2,000 test images"),
        (tmp_path / "cnn-n100", "CNN from scratch, 100 per class: 96.15 % on 2,000 test images"),
        (tmp_path / "finetune-all", "EfficientNet-Lite0 ImageNet, fine-tuned, all images: 99.33 % on 2,000 test images"),
    ]
    (tmp_path / RESULTS_JSON).write_text(json.dumps({"study": {}, "runs": rows[-1:]}))
    with pytest.raises(kerastl.UserError, match="has no finished mlp, cnn, finetune run with a model"):
        demo_models.models_to_show([tmp_path])


@pytest.mark.parametrize("what, message", [
    ("unfinished", "has no model.keras: the run has not finished"),
    ("empty", "is not a run folder, .keras file, SavedModel folder or .tflite file"),
    ("missing", "no model at"),
])
def test_a_folder_without_a_model_is_one_line_and_exit_2(tmp_path, mlp_run, capsys, what, message):
    folder = tmp_path / what
    if what != "missing":
        folder.mkdir()
    if what == "unfinished":
        runs.write_config(folder, {"mode": "mlp", "dataset": "mnist"})
    assert run_cli("kerastl.demo", lambda: main([str(mlp_run.folder), str(folder), "--port", "0"])) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1  # refused before any model loads
    assert err.startswith("kerastl.demo: error: ") and message in err and str(folder) in err


def test_a_port_in_use_is_one_line_and_exit_2(mlp_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_cli("kerastl.demo", lambda: main([str(mlp_run.folder), "--port", str(port)])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot listen on 127.0.0.1:{port}" in err[0] and "choose another --port" in err[0], err


def test_the_command_prints_its_url_binds_loopback_and_stops_on_ctrl_c(mlp_run):
    # Ctrl-C as in a terminal: a suite started in the background (nohup, `cmd &`) passes SIGINT on
    # ignored, and Python then installs no KeyboardInterrupt handler (the server ran on for 60 s)
    process = subprocess.Popen([sys.executable, "-m", "kerastl.demo", str(mlp_run.folder), "--port", "0"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = []
        for line in process.stdout:  # until the URL is printed
            lines.append(line)
            if "open http" in line:
                break
        match = re.search(r"open (http://127\.0\.0\.1:\d+/) in a browser", lines[-1])  # the loopback by default
        assert match, lines
        assert request(match.group(1))[0] == 200
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err[-2000:]
    assert out.strip().splitlines()[-1] == "kerastl.demo: stopped" and "Traceback" not in err

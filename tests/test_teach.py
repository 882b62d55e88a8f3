"""`python -m kerastl.teach`: its JSON API end to end on tiny data (add, train, poll, predict, export,
reopen), its refusals (the server stays up), class names, and the command's Ctrl-C. The page in a
real browser: tests/test_teach_browser.py. The API does not depend on the backend beyond kerastl's
own contract, so it runs once, on TensorFlow."""

import http.client
import io
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image

import kerastl
from kerastl import runs
from kerastl.export import metadata
from kerastl.teach import training
from kerastl.teach.__main__ import main
from kerastl.teach.session import Session, SessionError, check_class_name
from tests.helpers import ROOT, SHAPES, backend, make_image_folder, run_in_process
from tests.teach_browser import serving, teaching

pytestmark = pytest.mark.skipif(backend() != "tensorflow", reason="the API does not depend on the backend: checked once, on TensorFlow")
PER_CLASS = 6


def call(url: str, method: str = "GET", body: bytes | None = None, document=None):
    """(status, decoded JSON answer) of one request."""
    if document is not None:
        body = json.dumps(document).encode()
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=600) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for_training(url: str, limit: float = 600) -> dict:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status, answer = call(url + "api/train")
        assert status == 200
        if answer["state"] != "running":
            return answer
        time.sleep(0.3)
    raise AssertionError("training did not finish")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Drawn circles, squares and triangles, PER_CLASS a class, as picture files."""
    return make_image_folder(tmp_path_factory.mktemp("shapes"), per_class=PER_CLASS)


def pictures_of(folder, name):
    return sorted(p for p in (folder / name).iterdir() if p.suffix != ".txt")


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


BLANK = png(np.zeros((64, 64, 3), np.uint8))
NOISE = png(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))


def check_the_gate_in_numpy_is_the_models_output(teacher):
    """The transfer gate computed in numpy from the cached features and the head's logits equals the
    exported (assembled, gated) model's output on the pictures' pixels: the cached features are what
    its classifier reads. A blank picture too, scored far below the threshold."""
    from kerastl.data.folders import load_images
    from kerastl.teach import export

    trained, extractor = teacher.trained, teacher.extractor()
    paths = trained.paths[::PER_CLASS]  # one a class
    cached, computed = extractor.of_files(paths, lambda _: None)
    assert computed == 0
    pixels = np.concatenate([load_images([str(p) for p in paths], (extractor.size,) * 2, 3), np.zeros((1, extractor.size, extractor.size, 3), np.uint8)])
    features = np.concatenate([cached, extractor.of_pixels(pixels[-1:])])
    kernel, bias = trained.models["transfer"].get_layer("classifier").get_weights()
    fitted = trained.gates["transfer"]
    expected = fitted.gate.scores(features @ kernel + bias, features)
    model = export.transfer_model(trained, extractor)
    assert np.asarray(model.predict_on_batch(pixels.astype("float32"))) == pytest.approx(expected, abs=2e-5)
    assert expected[:-1].max(axis=1).min() >= fitted.threshold > expected[-1].max()


@pytest.mark.slow
def test_add_train_poll_predict_export_and_reopen(shapes, tmp_path):
    output = tmp_path / "session"
    with serving(output) as (url, teacher):
        for name in SHAPES:
            for picture in pictures_of(shapes, name):
                status, answer = call(f"{url}api/classes/{name}/examples", "POST", picture.read_bytes())
                assert status == 201 and answer["class"] == name, answer
        assert answer["examples"] == PER_CLASS
        status, again = call(f"{url}api/classes/triangle/examples", "POST", picture.read_bytes())  # the same picture: stored once
        assert status == 201 and again["examples"] == PER_CLASS and again["picture"] == answer["picture"]
        status, classes = call(url + "api/classes")
        assert status == 200 and [(c["name"], c["examples"]) for c in classes] == [(name, PER_CLASS) for name in SHAPES]

        started = time.monotonic()
        status, answer = call(url + "api/train", "POST")
        assert status == 202 and answer["state"] == "running" and answer["labels"] == list(SHAPES)
        status, refused = call(url + "api/train", "POST")
        assert status == 409 and "running" in refused["error"]
        busy = (409, {"error": "a training is running; wait for it to finish"})  # its snapshot's pictures must stay
        first = SHAPES[0]
        assert call(url + f"api/classes/{first}/rename", "POST", document={"name": "renamed"}) == busy
        assert call(url + f"api/classes/{first}", "DELETE") == busy
        assert call(url + f"api/classes/{first}/examples/x.png", "DELETE") == busy
        assert [(c["name"], c["examples"]) for c in call(url + "api/classes")[1]] == [(name, PER_CLASS) for name in SHAPES]
        done = wait_for_training(url)
        print(f"\ntrained in {time.monotonic() - started:.1f} s: " + json.dumps(done["results"]))
        assert done["state"] == "done" and done["error"] is None and done["progress"]["fraction"] == 1.0
        for model in ("transfer", "scratch"):
            result = done["results"][model]
            assert result["scored_by"] == f"{min(4, PER_CLASS)}-fold cross-validation" and result["held_out"] == 3 * PER_CLASS
            confusion = np.array(result["confusion"])
            assert confusion.shape == (3, 3) and confusion.sum() == 3 * PER_CLASS and (confusion.sum(1) == PER_CLASS).all()
            assert result["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
        assert done["results"]["transfer"]["features_computed"] == 3 * PER_CLASS
        assert done["results"]["transfer"]["accuracy"] >= 0.8  # drawn shapes are easy for ImageNet features (measured: 1.0)

        square = pictures_of(shapes, "square")[0]
        status, answer = call(url + "api/predict", "POST", square.read_bytes())
        assert status == 200 and [r["model"] for r in answer["results"]] == ["transfer", "scratch"]
        for result in answer["results"]:
            probabilities = [p["probability"] for p in result["top"]]
            assert sorted(p["label"] for p in result["top"]) == sorted(SHAPES) and probabilities == sorted(probabilities, reverse=True)
            assert sum(probabilities) == pytest.approx(1, abs=1e-4) if result["model"] == "scratch" else 0.5 < sum(probabilities) <= 1 + 1e-6
        transfer_top = answer["results"][0]["top"]
        assert transfer_top[0]["label"] == "square"

        # "not sure": the transfer model's gate (kerastl.teach.gate); the CNN has none
        threshold = done["results"]["transfer"]["threshold"]
        assert 0 < threshold < 1 and "threshold" not in done["results"]["scratch"]
        assert [(r["abstained"], r["threshold"]) for r in answer["results"]] == [(False, threshold), (False, None)]
        for picture in (BLANK, NOISE):
            transfer = call(url + "api/predict", "POST", picture)[1]["results"][0]
            assert transfer["abstained"] is True and transfer["top"][0]["probability"] < threshold, transfer
        check_the_gate_in_numpy_is_the_models_output(teacher)

        # Fine-tune: stopped at once, the last models stay; then to the end, with its progress on the way
        status, answer = call(url + "api/finetune", "POST")
        assert status == 202 and answer["state"] == "running" and answer["trained"]
        assert call(url + "api/finetune", "POST") == (409, {"error": "a training is running; wait for it to finish"})
        assert call(url + "api/train", "POST")[0] == 409
        assert call(url + "api/train/stop", "POST")[0] == 200
        stopped = wait_for_training(url)
        assert stopped["state"] == "failed" and stopped["error"] == "stopped before it finished", stopped
        assert stopped["results"] == done["results"]  # the training's results, untouched
        assert [r["model"] for r in call(url + "api/predict", "POST", square.read_bytes())[1]["results"]] == ["transfer", "scratch"]
        assert call(url + "api/finetune", "POST")[0] == 202
        seen = []
        while (status := call(url + "api/train")[1])["state"] == "running":
            seen.append((status["progress"]["fraction"], status["progress"]["step"]))
            time.sleep(0.1)
        assert status["state"] == "done", status
        assert any(0 < f < 1 and step.startswith("fine-tune: ") for f, step in seen), seen
        assert [f for f, _ in seen] == sorted(f for f, _ in seen)  # the bar only moves forward
        tuned = status["results"]["finetuned"]
        print("fine-tuned: " + json.dumps(tuned))
        assert {k: v for k, v in status["results"].items() if k != "finetuned"} == done["results"]
        assert tuned["scored_by"] == f"fold 1 of {min(4, PER_CLASS)}-fold cross-validation"
        confusion = np.array(tuned["confusion"])
        fold_1 = training.splits(np.repeat(np.arange(3), PER_CLASS))[0][0][1]  # the pictures fold 1 scored (frozen and fine-tuned)
        assert tuned["held_out"] == confusion.sum() == len(fold_1) < 3 * PER_CLASS and (confusion.sum(1) >= 1).all()
        assert tuned["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
        assert tuned["frozen_accuracy"] in {i / len(fold_1) for i in range(len(fold_1) + 1)} and tuned["epochs"] == 5  # finetune.yaml's CPU epochs
        status, answer = call(url + "api/predict", "POST", square.read_bytes())
        assert status == 200 and [r["model"] for r in answer["results"]] == ["transfer", "scratch", "finetuned"]
        tuned_top = answer["results"][2]["top"]

        status, exported = call(url + "api/export", "POST")
        assert status == 200, exported
        assert exported["run"].startswith("runs/finetune-pictures-")  # the fine-tuned model, not the frozen one
        run_dir = output / exported["run"]
        assert sorted(exported["files"]) == sorted(f"{exported['run']}/export/{name}" for name in
                                                   ["model_float32.tflite", "MODEL_CARD.md", runs.LABELS, "export_report.json"])
        # a normal kerastl run: kerastl.predict answers as the page's fine-tuned model did, with the class names
        assert runs.read_config(run_dir)["mode"] == "finetune"
        expected = kerastl.predict(run_dir, [square])[0]["predictions"]
        assert [p["label"] for p in expected] == [p["label"] for p in tuned_top]
        assert [p["probability"] for p in expected] == pytest.approx([p["probability"] for p in tuned_top], abs=1e-4)
        report = json.loads((run_dir / "export" / "export_report.json").read_text())
        assert report["labels"] == list(SHAPES)
        if report["mediapipe"].get("version"):  # MediaPipe's ImageClassifier loaded the file and named the classes
            (row,) = [r for r in report["rows"] if r["file"] == "model_float32.tflite"]
            assert not row["mediapipe"]["refused"] and row["mediapipe"]["class_names_match"] and row["mediapipe"]["agreement"] >= 0.9, row
        assert "## How kerastl.teach scored it" in (run_dir / "export" / "MODEL_CARD.md").read_text()
        # the fine-tuned model's gate travels: metrics.json's threshold is the file's, and MediaPipe applies it (it answers
        # the pictures of no class exactly where LiteRT's top score reaches the threshold)
        assert runs.read_metrics(run_dir)["confidence"]["threshold"] == tuned["threshold"]
        assert metadata.read_score_threshold(run_dir / "export" / "model_float32.tflite") == pytest.approx(tuned["threshold"], rel=1e-6)
        assert f"default score threshold of **{tuned['threshold']:.4f}**" in (run_dir / "export" / "MODEL_CARD.md").read_text()
        (gated,) = report["abstain"]["rows"]
        print("abstain: " + json.dumps(gated))
        if report["mediapipe"].get("version"):
            assert {name: gated["mediapipe"][name] for name in ("blank", "white")} == {
                name: gated["litert"][name]["answered"] for name in ("blank", "white")}, gated
        with urllib.request.urlopen(url + "files/" + urllib.parse.quote(exported["files"][0]), timeout=60) as download:
            assert download.read() == (output / exported["files"][0]).read_bytes()
        cnn_dir = output / exported["runs"][1]
        assert runs.read_config(cnn_dir)["mode"] == "cnn" and runs.read_labels(cnn_dir) == list(SHAPES)
        status, renamed = call(url + "api/classes/square/rename", "POST", document={"name": "box"})
        assert status == 200 and call(url + "api/finetune", "POST") == (
            409, {"error": f"{PER_CLASS} pictures of the last training were removed or renamed since: press Train first"})
        assert call(url + "api/classes/box/rename", "POST", document={"name": "square"})[0] == 200

    # Reopened: the same classes; retraining computes no feature again; Stop stops the CNN.
    with teaching(output) as url:
        assert [(c["name"], c["examples"]) for c in call(url + "api/classes")[1]] == [(name, PER_CLASS) for name in SHAPES]
        assert call(url + "api/train", "POST")[0] == 202
        while "transfer" not in (status := call(url + "api/train")[1])["results"]:
            assert status["state"] == "running"
            time.sleep(0.2)
        assert status["results"]["transfer"]["features_computed"] == 0
        status, stopped = call(url + "api/train/stop", "POST")  # the CNN stops after its current step
        assert status == 200
        stopped = wait_for_training(url)
        assert stopped["state"] == "failed" and stopped["error"] == "stopped before it finished", stopped
        assert call(url + "api/predict", "POST", square.read_bytes())[0] == 409  # nothing finished in this server


def test_bad_requests_get_one_clear_line_and_the_server_stays_up(shapes, tmp_path):
    circle = pictures_of(shapes, "circle")[0].read_bytes()
    bomb = io.BytesIO()
    Image.new("1", (8000, 6000)).save(bomb, format="PNG")  # 48 megapixels in a few kilobytes
    with teaching(tmp_path / "session") as url:
        def refused(method, path, body=None, document=None):
            status, answer = call(url + path, method, body, document)
            return status, answer["error"]

        assert refused("POST", "api/classes/cat/examples", b"not a picture") == (400, "not added to 'cat': not an image")
        status, error = refused("POST", "api/classes/cat/examples", bomb.getvalue())
        assert status == 400 and "more than the 40 megapixel limit" in error
        assert refused("POST", "api/classes/cat/examples", circle[: len(circle) // 2])[0] == 400  # a truncated file
        assert refused("POST", "api/classes/cat/examples", b"")[0] == 400
        status, error = refused("POST", "api/classes/..%2Fx/examples", circle)
        assert status == 400 and "class name '../x'" in error
        assert refused("POST", "api/classes", document={"name": "../x"})[0] == 400
        assert refused("POST", "api/classes", document={"name": "test"}) == (
            400, "class name 'test' is reserved: a folder of that name is read as a split of the dataset")
        assert refused("POST", "api/classes", body=b"{not json")[0] == 400
        assert refused("POST", "api/train") == (400, "add at least 2 classes to train (there are 0)")
        assert call(url + "api/classes/cat/examples", "POST", circle)[0] == 201
        assert call(url + "api/classes/cat/examples", "POST", pictures_of(shapes, "circle")[1].read_bytes())[0] == 201
        assert refused("POST", "api/train") == (400, "add at least 2 classes to train (there is 1)")
        assert call(url + "api/classes", "POST", document={"name": "dog"})[0] == 201
        assert refused("POST", "api/train") == (400, "every class needs at least 2 pictures to train and score: 'dog' has 0")
        assert refused("POST", "api/predict", circle) == (409, "nothing is trained yet: press Train first")
        assert refused("POST", "api/finetune") == (409, "nothing is trained yet: press Train first")
        assert refused("POST", "api/export") == (409, "nothing is trained yet: press Train first")
        assert refused("DELETE", "api/classes/bird") == (404, "no class 'bird'")
        assert refused("DELETE", "api/classes/cat/examples/..%2F..%2Fsecret.png")[0] == 404
        assert refused("GET", "files/runs/..%2F..%2Fpictures%2Fcat")[0] == 404
        assert refused("GET", "api/nothing")[0] == 404

        # a body over the limit is refused unread (its Content-Length says enough)
        host, port = urllib.parse.urlsplit(url).netloc.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.putrequest("POST", "/api/classes/cat/examples")
        connection.putheader("Content-Length", str(21 * 2**20))
        connection.endheaders()
        reply = connection.getresponse()
        assert reply.status == 413 and json.loads(reply.read())["error"] == "send one picture of at most 20 MB"
        connection.close()

        status, classes = call(url + "api/classes")  # still up, and nothing of the refused requests was kept
        assert status == 200 and [(c["name"], c["examples"]) for c in classes] == [("cat", 2), ("dog", 0)]
        assert call(url + "api/classes/dog/rename", "POST", document={"name": "puppy"})[0] == 200
        assert call(url + "api/classes/puppy", "DELETE")[1] == [{"name": "cat", "examples": 2, "pictures": classes[0]["pictures"]}]
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert [str(p.parent) for p in files] == ["session/pictures/cat"] * 2  # nothing else written, nowhere else


@pytest.mark.parametrize("name, ok", [
    ("cat", True), ("Red apple", True), ("no-2_b+c.d", True), ("../x", False), ("a/b", False), ("..", False), (".hidden", False),
    ("", False), ("x" * 41, False), ("val", False), ("Train", False), ("a..b", False), ("ends.", False), ("tab\there", False),
])
def test_class_names_become_folder_names_only_when_safe(name, ok, tmp_path):
    if ok:
        assert check_class_name(name) == name
        assert Session(tmp_path).add_class(name) == name and (tmp_path / "pictures" / name).is_dir()
    else:
        with pytest.raises(SessionError, match="class name"):
            check_class_name(name)


def test_the_command_and_the_server_start_no_framework_until_they_train():
    """Importing the command (what --help and a refused flag run) and the page's server loads neither Keras nor
    TensorFlow nor scikit-learn: Keras starts once the server listens (the backbone's warm-up)."""
    code = ("import sys, kerastl.teach.__main__, kerastl.teach.server; "
            "print([m for m in ('keras', 'tensorflow', 'sklearn') if m in sys.modules])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout.strip() == "[]"


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_in_process("kerastl.teach", main, ["--output-dir", str(tmp_path), "--port", str(port)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"cannot listen on 127.0.0.1:{port}" in err


def test_the_command_serves_loopback_warns_for_other_hosts_and_stops_on_ctrl_c(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "kerastl.teach", "--output-dir", str(tmp_path / "s"), "--port", "0",
                                "--host", "0.0.0.0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "open http" in line:
                break
        assert any("warning: --host 0.0.0.0: the page is open to other machines" in line for line in lines), lines
        match = re.search(r"open (http://127\.0\.0\.1:\d+/) in a browser", lines[-1])
        assert match, lines
        with urllib.request.urlopen(match.group(1), timeout=60) as page:
            html = page.read().decode()
        assert 'id="pad"' in html and 'id="camera"' in html and re.findall(r"https?://|//[a-z]", html) == []
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, err[-2000:]
    assert out.strip().splitlines()[-1] == "kerastl.teach: stopped" and "Traceback" not in err

"""The demo page in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

A "7" drawn on the canvas with the mouse, and again with a finger (touch events), must be read as
7 by an MLP, a CNN and a fine-tuned EfficientNet-Lite0; a dropped picture is classified too; and
the page asks nothing of any address but the demo's own. Skipped where no Chromium is installed
(.ci/run installs it). The page and the server do not depend on the backend (tests/test_demo.py
checks each backend's models over HTTP), so the three runs train once, on TensorFlow.
"""

import numpy as np
import pytest
from PIL import Image

import kerastl
from tests.helpers import backend
from tests.demo_browser import SEVEN_STROKES, answers, browser_page, chromium, draw_seven_and_read, serving

pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install -e '.[test]')")
pytestmark = [
    pytest.mark.skipif(chromium() is None, reason="no Chromium installed (apt-get install chromium)"),
    pytest.mark.skipif(backend() != "tensorflow", reason="the page does not depend on the backend: checked once, on TensorFlow"),
]
RUNS = (  # the smallest runs that still read a drawn 7 (test accuracy about 95 %, 97 %, 77 %)
    ("mlp", dict(limit=6000, epochs=3)),
    ("cnn", dict(limit=6000, epochs=3)),
    ("finetune", dict(limit=3000, head_epochs=1, epochs=1, img_size=32)),
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser-runs")
    folders = [kerastl.run(mode, test_limit=500, min_steps=0, seed=0, output_dir=str(out), run_name=mode, log=lambda _: None, **options).folder
               for mode, options in RUNS]
    with serving(folders) as url:
        yield url


def test_a_seven_drawn_with_the_mouse_is_a_seven_for_every_model(served, tmp_path):
    screenshot = tmp_path / "demo.png"
    with browser_page() as page:
        shown = draw_seven_and_read(page, served, screenshot)
        requested = list(page.requested)
    print("\n" + "\n".join(f"{name}: " + ", ".join(f"{label} {100 * p:.1f} %" for label, p in top) for name, top in shown.items()))
    assert list(shown) == ["mlp", "cnn", "finetune"]
    for name, top in shown.items():
        assert len(top) == 3 and top[0][0] == "7", (name, top)
        assert top[0][1] > top[1][1] >= top[2][1] and sum(p for _, p in top) <= 1 + 1e-6
    # the page, its model list, and one picture per stroke; nothing from any other address
    assert [url for url in requested if not url.startswith(("data:", "blob:"))] == [
        served, served + "models", *[served + "predict"] * len(SEVEN_STROKES)]
    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.width == 1280 and image.height >= 600


def test_a_seven_drawn_with_a_finger_is_a_seven(served):
    with browser_page(touch=True) as page:
        page.goto(served)
        page.wait_for_selector("body[data-ready=true]")
        box = page.locator("#pad").bounding_box()
        touch = page.context.new_cdp_session(page)
        for points in SEVEN_STROKES:
            path = [points[0]] + [tuple(a + (b - a) * t / 10 for a, b in zip(p, q)) for p, q in zip(points, points[1:]) for t in range(1, 11)]
            for kind, (x, y) in zip(["touchStart"] + ["touchMove"] * (len(path) - 1), path):
                touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": box["x"] + x, "y": box["y"] + y}]})
            touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        page.wait_for_selector(f"body[data-answered='{len(SEVEN_STROKES)}']", timeout=60_000)
        assert {name: top[0][0] for name, top in answers(page).items()} == {"mlp": "7", "cnn": "7", "finetune": "7"}


def test_a_dropped_picture_is_classified(served, mnist, tmp_path):
    index = int(np.flatnonzero(mnist["y_test"] == 2)[0])  # a photo-like picture: a grey 2 on light paper, 150x150
    picture = tmp_path / "two.jpg"
    Image.fromarray(230 - (mnist["x_test"][index, ..., 0] * 0.8).astype(np.uint8)).resize((150, 150)).save(picture, quality=90)
    with browser_page() as page:
        page.goto(served)
        page.wait_for_selector("body[data-ready=true]")
        data = list(picture.read_bytes())
        dropped = page.evaluate_handle(
            """bytes => { const t = new DataTransfer();
                          t.items.add(new File([new Uint8Array(bytes)], "two.jpg", {type: "image/jpeg"})); return t; }""", data)
        page.dispatch_event("#pad-box", "drop", {"dataTransfer": dropped})
        page.wait_for_selector("body[data-answered='1']", timeout=60_000)
        top = {name: best[0][0] for name, best in answers(page).items()}
        status = page.inner_text("#status")
    assert top["mlp"] == "2" and top["cnn"] == "2", top
    assert status == "two.jpg: answered"

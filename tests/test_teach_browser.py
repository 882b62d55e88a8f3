"""The teach page in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright,
with Chromium's fake webcam. Pictures from a drawn canvas (two classes) and from the webcam (a
third), Train, Fine-tune, the three accuracies shown, a drawn ring tried, the export's download links; and the page
asks nothing of any address but its own. Skipped where no Chromium is installed (.ci/run installs it).
The page does not depend on the backend (tests/test_teach.py checks the API), so it runs once, on TensorFlow.
"""

import pytest

from tests.demo_browser import browser_page, chromium
from tests.helpers import backend
from tests.teach_browser import FAKE_CAMERA, teach_in_the_page, teaching

pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install -e '.[test]')")
pytestmark = [
    pytest.mark.skipif(chromium() is None, reason="no Chromium installed (apt-get install chromium)"),
    pytest.mark.skipif(backend() != "tensorflow", reason="the page does not depend on the backend: checked once, on TensorFlow"),
]


@pytest.mark.slow
def test_pictures_from_the_canvas_and_the_webcam_train_both_models_and_export(tmp_path):
    output = tmp_path / "session"
    with teaching(output) as url, browser_page(viewport=(1280, 900), launch_args=FAKE_CAMERA) as page:
        shown = teach_in_the_page(page, url, tmp_path / "teach.png")
        requested = list(page.requested)
    print("\n", shown)
    assert shown["counts"]["ring"] == 3 and shown["counts"]["cross"] == 3 and shown["counts"]["camera"] >= 2
    stored = {c.name: len(list(c.iterdir())) for c in (output / "pictures").iterdir()}
    assert stored == shown["counts"]  # what the page counted is what the folder holds
    assert set(shown["accuracies"]) == {"transfer", "scratch", "finetuned"}
    assert set(shown["answers"]) == {"transfer", "scratch", "finetuned"}
    assert all(0 <= a <= 1 for a in shown["accuracies"].values())
    for model, top in shown["answers"].items():
        assert sorted(label for label, _ in top) == ["camera", "cross", "ring"] and top[0][1] >= top[1][1] >= top[2][1], (model, top)
    assert shown["answers"]["transfer"][0][0] == "ring"  # a drawn ring, like the three it learned from
    for model, (abstained, verdict) in shown["verdicts"].items():  # "not sure" shown exactly when the API says it abstained
        assert abstained in ("true", "false") and (abstained == "true") == verdict.startswith("not sure: "), (model, verdict)
    assert shown["verdicts"]["scratch"] == ["false", ""]  # the CNN has no gate
    assert sorted(link.rsplit("/", 1)[1] for link in shown["downloads"]) == sorted(
        ["model_float32.tflite", "MODEL_CARD.md", "labels.txt", "export_report.json"])
    assert "written to" in shown["status"]
    served = url.rstrip("/")
    assert [u for u in requested if not u.startswith(("data:", "blob:", served))] == []  # nothing from elsewhere

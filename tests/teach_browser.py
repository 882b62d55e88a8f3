"""The teach server in this process, and its page driven in headless Chromium (Playwright) with a fake
webcam: used by tests/test_teach.py, tests/test_teach_browser.py, and to take the README's screenshot:

    python tests/teach_browser.py --screenshot docs/teach.png
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
from pathlib import Path
from typing import Iterator

QUICK = dict(min_steps=0, quantize=("float32",))  # the configs' epochs as written; one LiteRT file
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
# Strokes on the 280x280 pad: a ring for "ring", a cross for "cross" (pad coordinates)
RING = tuple((140 + 80 * math.cos(t * math.pi / 6), 140 + 80 * math.sin(t * math.pi / 6)) for t in range(13))
CROSS = (((60, 60), (220, 220)), ((220, 60), (60, 220)))


@contextlib.contextmanager
def teaching(output_dir, **options) -> Iterator[str]:
    """The teach server on a free port of 127.0.0.1, in a thread of this process; yields its URL.
    `options` go to Teacher (default QUICK)."""
    with serving(output_dir, **options) as (url, _):
        yield url


@contextlib.contextmanager
def serving(output_dir, **options):
    """`teaching`, yielding (its URL, its kerastl.teach.teacher.Teacher)."""
    from kerastl.teach.server import make_server
    from kerastl.teach.session import Session
    from kerastl.teach.teacher import Teacher
    from tests.helpers import in_a_thread

    teacher = Teacher(Session(output_dir), log=lambda _: None, **{**QUICK, **options})
    try:
        with in_a_thread(make_server(teacher, "127.0.0.1", 0)) as url:
            yield url, teacher
    finally:
        teacher.stop()


def draw(page, canvas: str, strokes, side: int) -> None:
    page.locator(canvas).scroll_into_view_if_needed()  # the mouse reaches only what is on the screen
    box = page.locator(canvas).bounding_box()
    scale = box["width"] / side
    for points in strokes:
        page.mouse.move(box["x"] + points[0][0] * scale, box["y"] + points[0][1] * scale)
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=4)
        page.mouse.up()


def add_class(page, name: str) -> None:
    page.fill("#new-class", name)
    page.click("#add-class")
    page.wait_for_selector(f".class[data-name='{name}']")


def pictures_of(page, name: str) -> int:
    return int(page.get_attribute(f".class[data-name='{name}']", "data-examples"))


def teach_in_the_page(page, url: str, screenshot: Path | None = None, drawings: int = 3, record_ms: int = 1200) -> dict:
    """Two classes from the canvas (rings and crosses, each drawn a little differently) and one from
    the fake webcam; train; fine-tune; read the three accuracies; try a ring; export. Returns what the page showed."""
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    for name, shape in (("ring", [RING]), ("cross", CROSS)):
        add_class(page, name)
        for i in range(drawings):
            page.click("#clear")
            wobble = [[(x + 9 * i * (-1) ** j, y - 7 * i) for j, (x, y) in enumerate(stroke)] for stroke in shape]
            draw(page, "#pad", wobble, 280)
            page.click("#add-drawing")
            page.wait_for_selector(f".class[data-name='{name}'][data-examples='{i + 1}']")  # selectors: the page's CSP forbids eval
    add_class(page, "camera")
    page.click("#camera-start")
    page.wait_for_selector("#record:not([disabled])")
    page.locator("#record").scroll_into_view_if_needed()
    box = page.locator("#record").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.wait_for_timeout(record_ms)
    page.mouse.up()
    page.wait_for_selector(".class[data-name='camera']:not([data-examples='0']):not([data-examples='1'])")
    page.wait_for_timeout(600)  # the last snapshots of the hold land
    counts = {name: pictures_of(page, name) for name in ("ring", "cross", "camera")}

    page.click("#train")
    page.wait_for_selector("body[data-state=done]", timeout=600_000)
    page.wait_for_selector("#finetune:not([disabled])")
    page.click("#finetune")
    page.wait_for_selector("body[data-state=done] .result[data-model=finetuned]", timeout=600_000)
    accuracies = page.eval_on_selector_all(
        ".result", "cards => Object.fromEntries(cards.map(c => [c.dataset.model, Number(c.querySelector('.accuracy').dataset.accuracy)]))")
    draw(page, "#try-pad", [[(x * 200 / 280, y * 200 / 280) for x, y in RING]], 200)
    page.wait_for_selector("body[data-answered='1']", timeout=60_000)
    answers = page.eval_on_selector_all(".answer", "cards => Object.fromEntries(cards.map(c => [c.dataset.model, "
                                                   "[...c.querySelectorAll('li[data-label]')].map(li => [li.dataset.label, Number(li.dataset.probability)])]))")
    verdicts = page.eval_on_selector_all(".answer", "cards => Object.fromEntries(cards.map(c => [c.dataset.model, "
                                                    "[c.dataset.abstained, c.querySelector('.verdict').textContent]]))")
    page.click("#export")
    page.wait_for_selector("body[data-exported]", timeout=600_000)
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    downloads = page.eval_on_selector_all("#downloads a", "links => links.map(a => a.getAttribute('href'))")
    return {"counts": counts, "accuracies": accuracies, "answers": answers, "verdicts": verdicts, "downloads": downloads,
            "status": page.inner_text("#export-status")}


def main(argv=None) -> int:
    from tests.demo_browser import browser_page

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--screenshot", type=Path, required=True)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder, teaching(Path(folder) / "session", min_steps=None) as url, \
            browser_page(viewport=(1280, 900), launch_args=FAKE_CAMERA) as page:
        shown = teach_in_the_page(page, url, args.screenshot)
    print(shown)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())

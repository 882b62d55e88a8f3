"""Drive the demo page in a real browser (headless Chromium through Playwright): draw, read, screenshot.

Used by tests/test_demo_browser.py, and to take the README's screenshot:

    python tests/demo_browser.py RUN_DIR [RUN_DIR ...] --screenshot docs/demo.png
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from pathlib import Path
from typing import Iterator

# A "7" as a person draws it on the 280x280 pad: the bar, then the stem, in two strokes.
SEVEN_STROKES = (((70, 62), (205, 62)), ((205, 62), (168, 140), (128, 228)))
PAD = 280


def chromium() -> str | None:
    """The system Chromium (Debian's `chromium` package), if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def serving(model_paths) -> Iterator[str]:
    """The demo server for these models, in a thread of this process; yields its URL."""
    from kerastl.demo import models, server
    from tests.helpers import in_a_thread

    loaded = models.load_models(models.models_to_show(model_paths), warn=lambda _: None)
    with in_a_thread(server.make_server(loaded, "127.0.0.1", 0)) as url:
        yield url


@contextlib.contextmanager
def browser_page(viewport=(1280, 720), touch: bool = False, launch_args=()):
    """A page of headless Chromium (a touch screen with `touch`; more Chromium flags in `launch_args`,
    e.g. a fake webcam); `page.requested` lists every URL it asked for."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox", *launch_args])
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, has_touch=touch)
            page = context.new_page()
            page.requested = []
            page.on("request", lambda request: page.requested.append(request.url))
            yield page
        finally:
            browser.close()


def draw(page, strokes) -> None:
    """Each stroke as a mouse drag through its points (pad coordinates), in small steps."""
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / PAD
    at = lambda x, y: (box["x"] + x * scale, box["y"] + y * scale)  # noqa: E731
    for points in strokes:
        page.mouse.move(*at(*points[0]))
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*at(*point), steps=12)
        page.mouse.up()


def answers(page) -> dict[str, list[tuple[str, float]]]:
    """Each model card's top classes as shown: name -> [(label, probability), ...]."""
    return page.eval_on_selector_all(
        "section.model",
        """cards => Object.fromEntries(cards.map(card => [card.dataset.name,
             [...card.querySelectorAll("ol.top li[data-label]")].map(li => [li.dataset.label, Number(li.dataset.probability)])]))""",
    )


def draw_seven_and_read(page, url: str, screenshot: Path | None = None) -> dict[str, list[tuple[str, float]]]:
    """Open the page, draw the 7 stroke by stroke, wait for the answer to the last stroke, read it."""
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    draw(page, SEVEN_STROKES)
    page.wait_for_selector(f"body[data-answered='{len(SEVEN_STROKES)}']", timeout=60_000)
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    return answers(page)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--screenshot", type=Path, required=True)
    args = p.parse_args(argv)
    with serving(args.models) as url, browser_page(viewport=(1180, 560)) as page:
        for name, top in draw_seven_and_read(page, url, args.screenshot).items():
            print(name, " ".join(f"{label} {100 * probability:.1f}%" for label, probability in top))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())

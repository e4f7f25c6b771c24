"""The README's screenshots, made on demand (never by the test suite): every page at desktop size
(1280 wide) and the Draw page at phone size (390x844), with a digit drawn, into docs/screenshots/.

    python -m tests.screenshots            # or: make screenshots

Starts the app on a free port with the committed checkpoints and its own archive database in a
temporary folder, and drives Debian Chromium as ``tests/test_browser.py`` does.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.test_browser import (
    CANVAS,
    CHROMIUM,
    CHROMIUM_ARGS,
    COMMITTED,
    IDLE,
    METRIC,
    MODEL_PICKER,
    ONE,
    PHONE,
    READY,
    ROOT,
    SLIDER,
    TIMEOUT_MS,
    VIEWPORT,
    open_page,
    running_app,
    stroke,
)

OUT = ROOT / "docs" / "screenshots"
MAIN_HEIGHT = "document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight"
PAGES = (("latent", "Latent explorer", 1), ("compare", "Compare conv vs MLP", 3), ("archive", "Archive", 0))


def full_page(page, path: Path, *, charts: int, viewport: dict[str, int]) -> None:
    """The whole page, once its charts are drawn and its images loaded. The app scrolls inside its
    main block, so the viewport is grown until the page fits it."""
    page.wait_for_function(READY, arg=charts)
    for _ in range(4):
        height = page.evaluate(MAIN_HEIGHT)
        page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], height + 80)})
        page.wait_for_timeout(800)  # charts re-layout to the new size, images below the fold load
        page.wait_for_function(READY, arg=charts)
        if page.evaluate(MAIN_HEIGHT) == height:
            break
    page.screenshot(path=str(path))
    page.set_viewport_size(viewport)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for the PNG files (default {OUT})")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work, running_app(COMMITTED, Path(work)) as url, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        desktop = browser.new_page(viewport=VIEWPORT)
        desktop.set_default_timeout(TIMEOUT_MS)
        open_page(desktop, url, "", "Draw & recognise")
        desktop.wait_for_selector(CANVAS)
        stroke(desktop, ONE)
        desktop.wait_for_selector(METRIC)
        desktop.wait_for_function(IDLE)
        full_page(desktop, args.out / "draw.png", charts=1, viewport=VIEWPORT)
        for path, heading, charts in PAGES:
            open_page(desktop, url, path, heading)
            if path == "latent":  # a 2-D model: the browser-side sliders and the clickable map
                desktop.locator(MODEL_PICKER).click()
                desktop.get_by_role("option", name="conv-2", exact=False).first.click()
                desktop.wait_for_selector(SLIDER, state="attached")
            desktop.wait_for_function(IDLE)
            full_page(desktop, args.out / f"{path}.png", charts=charts, viewport=VIEWPORT)

        phone = browser.new_context(**PHONE).new_page()
        phone.set_default_timeout(TIMEOUT_MS)
        open_page(phone, url, "", "Draw & recognise")
        phone.wait_for_selector(CANVAS)
        stroke(phone, ONE)
        phone.wait_for_selector(METRIC)
        phone.wait_for_function(IDLE)
        phone.screenshot(path=str(args.out / "draw-phone.png"))  # the first screen: what a phone shows
        browser.close()
    print(f"screenshots written to {args.out}")


if __name__ == "__main__":
    main()

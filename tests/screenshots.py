"""The README's screenshots, made on demand (never by the test suite), in both themes: every page
at desktop size (1280 wide) and the Draw, Compare and Train pages at phone size (390x844), with a
digit drawn, and the Read a number page with a photo of a handwritten number read
(``number-read``), into docs/screenshots/. Dark-theme files are ``NAME.png``, light-theme ones ``NAME-light.png``.

    python -m tests.screenshots            # or: make screenshots

The Train page is shown after a run of its quick preset (started once, about a minute on a quiet
machine). Starts the app on a free port with the committed checkpoints and its own archive database,
runs folder and trained models in a temporary folder, and drives Debian Chromium as ``tests/test_browser.py`` does; the theme is the
browser's preference (Playwright's ``color_scheme``), which the app follows.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from unittest import mock

from cvae_core import runs
from tests.browser import (
    CANVAS,
    CHROMIUM,
    CHROMIUM_ARGS,
    COMMITTED,
    IDLE,
    METRIC,
    MODEL_PICKER,
    ONE,
    PHONE,
    ROOT,
    SLIDER,
    TIMEOUT_MS,
    VIEWPORT,
    open_page,
    running_app,
    stroke,
)
from tests.test_browser_ui import whole_page

OUT = ROOT / "docs" / "screenshots"
THEMES = {"dark": "", "light": "-light"}  # colour scheme -> file name suffix
PAGES = (("number", "Read a number", 0), ("latent", "Latent explorer", 1), ("compare", "Compare conv vs MLP", 8),
         ("train", "Train a model", 0), ("archive", "Archive", 0))
TRAIN_RUN_MS = 900_000  # the quick preset from Start to the model in the picker, on a busy machine


def full_page(page, path: Path, *, charts: int, viewport: dict[str, int]) -> None:
    """The whole page, once its charts are drawn and its images loaded."""
    whole_page(page, charts, viewport)
    page.screenshot(path=str(path))
    page.set_viewport_size(viewport)


def train_page(page, url: str) -> None:
    """The Train page after the quick preset's run: started on the first call, reopened after."""
    done = [r for r in runs.all_runs() if r.status().state == "done"]
    if done:
        open_page(page, url, f"train?run={done[0].id}", "Train a model")
    else:
        open_page(page, url, "train", "Train a model")
        page.get_by_role("button", name="Start training").click()
    page.get_by_text("is in the model picker").wait_for(timeout=TRAIN_RUN_MS)
    page.wait_for_function(IDLE)


def draw_a_one(page, url: str) -> None:
    open_page(page, url, "", "Draw & recognise")
    page.wait_for_selector(CANVAS)
    stroke(page, ONE)
    page.wait_for_selector(METRIC)
    page.wait_for_function(IDLE)


def number_photo(path: Path) -> None:
    """A photo of "90210" written by hand (MNIST test digits, photographed on ruled paper by
    ``cvae_core.numbers.synth``, seeded), enlarged to digits about 110 pixels high, as a PNG."""
    import numpy as np
    from PIL import Image

    from cvae_core.data import load_mnist
    from cvae_core.numbers import synth

    data = load_mnist(checksums=False)
    images, labels = data.test_images.numpy(), data.test_labels.numpy()
    text = "90210"
    picks = [int(np.flatnonzero(labels == int(c))[i]) for i, c in enumerate(text)]
    glyphs = [synth._trim(images[j].astype(np.float32) / 255) for j in picks]
    number = synth.make_number(glyphs, text, "mnist", np.random.default_rng(1))
    photo = Image.fromarray(number.image)
    f = 110 / np.median([b[3] - b[1] for b in number.boxes])
    photo.resize((round(photo.width * f), round(photo.height * f)), Image.Resampling.BICUBIC).save(path)


def read_a_number(page, url: str, out: Path, suffix: str) -> None:
    """The Read a number page with that photo uploaded and read: the number, its boxes, the cards."""
    open_page(page, url, "number", "Read a number")
    page.get_by_role("radio", name="Upload", exact=True).click()  # a segmented control's options are radios
    page.wait_for_function(IDLE)  # the uploader of the rerun, not one it replaces
    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "90210.png"
        number_photo(photo)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(photo))
        page.get_by_text("Each digit as read").wait_for()  # the browser reads the file from its path: keep it till then
    page.wait_for_function(IDLE)
    full_page(page, out / f"number-read{suffix}.png", charts=0, viewport=VIEWPORT)


def shoot(browser, url: str, out: Path, scheme: str) -> None:
    """Every screenshot in one colour scheme."""
    suffix = THEMES[scheme]
    desktop = browser.new_context(color_scheme=scheme, viewport=VIEWPORT).new_page()
    desktop.set_default_timeout(TIMEOUT_MS)
    draw_a_one(desktop, url)
    full_page(desktop, out / f"draw{suffix}.png", charts=1, viewport=VIEWPORT)
    for path, heading, charts in PAGES:
        open_page(desktop, url, path, heading)
        if path == "latent":  # a 2-D model: the browser-side sliders and the clickable map
            desktop.locator(MODEL_PICKER).click()
            desktop.get_by_role("option", name="conv-2", exact=False).first.click()
            desktop.wait_for_selector(SLIDER, state="attached")
        desktop.wait_for_function(IDLE)
        full_page(desktop, out / f"{path}{suffix}.png", charts=charts, viewport=VIEWPORT)
    read_a_number(desktop, url, out, suffix)
    train_page(desktop, url)
    full_page(desktop, out / f"train{suffix}.png", charts=2, viewport=VIEWPORT)
    desktop.context.close()

    phone = browser.new_context(color_scheme=scheme, **PHONE).new_page()
    phone.set_default_timeout(TIMEOUT_MS)
    draw_a_one(phone, url)
    phone.screenshot(path=str(out / f"draw-phone{suffix}.png"))  # the first screen: what a phone shows
    open_page(phone, url, "compare", "Compare conv vs MLP")
    phone.wait_for_function(IDLE)
    full_page(phone, out / f"compare-phone{suffix}.png", charts=8, viewport=PHONE["viewport"])
    open_page(phone, url, "train", "Train a model")
    phone.wait_for_function(IDLE)
    phone.screenshot(path=str(out / f"train-phone{suffix}.png"))
    train_page(phone, url)
    full_page(phone, out / f"train-phone{suffix}.png", charts=2, viewport=PHONE["viewport"])
    phone.context.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for the PNG files (default {OUT})")
    parser.add_argument("--theme", choices=sorted(THEMES), action="append",
                        help="only this colour scheme (repeatable; default: both)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work, \
            mock.patch.dict(os.environ, {"CVAE_RUNS_DIR": f"{work}/runs", "CVAE_TRAINED_DIR": f"{work}/trained"}), \
            running_app(COMMITTED, Path(work)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for scheme in args.theme or THEMES:
            shoot(browser, url, args.out, scheme)
        browser.close()
    print(f"screenshots written to {args.out}")


if __name__ == "__main__":
    main()

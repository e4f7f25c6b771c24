"""What a visitor sees, in a real browser: both themes, the charts' text contrast, the phone layout.

The app has a light and a dark theme and follows the browser's preference (``prefers-color-scheme``,
set here through Playwright's ``color_scheme``). In the light theme every text label of every chart
on the Draw (with a 2-D model, so the latent map is drawn), Latent and Compare pages must reach a
contrast of 4.5:1 against what is behind it, and so in the dark theme (WCAG AA for text): the text colour is read from the
page, the background from a screenshot around the label, so a label on a coloured heatmap cell is
measured against that cell. At phone size (390x844): the robustness table's measured columns are on
screen, "What did you write?" fits one row, the images under the answer stay inside the page, and
the canvas's own hover toolbar (which duplicated Undo and Clear) is hidden.

Uses the committed checkpoints when there are any, else the tiny ones of ``conftest.py``.
"""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser import (
    CANVAS,
    IDLE,
    MAIN_HEIGHT,
    METRIC,
    MODEL_PICKER,
    ONE,
    PHONE,
    READY,
    VIEWPORT,
    new_tab,
    open_page,
    stroke,
)

pytestmark = pytest.mark.browser

MIN_CONTRAST = 4.5  # WCAG 2 AA, normal text
# Every text element of every chart with its colour, effective opacity and box (viewport pixels);
# hover labels are left out (they come and go with the mouse).
CHART_TEXT = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] svg text')]
  .filter((t) => t.textContent.trim() && !t.closest('.hoverlayer'))
  .map((t) => {
    let opacity = 1;
    for (let e = t; e && e instanceof SVGElement; e = e.parentElement) {
      const s = getComputedStyle(e);
      opacity *= parseFloat(s.opacity) * (e === t ? parseFloat(s.fillOpacity) : 1);
    }
    const box = t.getBoundingClientRect();
    return {text: t.textContent.trim(), fill: getComputedStyle(t).fill, opacity,
            x: box.x, y: box.y, width: box.width, height: box.height};
  })
  .filter((t) => t.width > 0 && t.height > 0 && t.opacity > 0.05)"""


# ----------------------------------------------------------------------------------- contrast


def luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour given as 0-255 channels."""
    channels = [c / 255 for c in rgb]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def css_rgb(colour: str) -> tuple[float, float, float]:
    """"rgb(1, 2, 3)" or "rgba(1, 2, 3, 0.5)" -> (1, 2, 3) (alpha is applied by the caller)."""
    inside = colour[colour.index("(") + 1 : colour.index(")")]
    r, g, b = (float(v) for v in inside.replace("/", ",").split(",")[:3])
    return r, g, b


def background_behind(shot: np.ndarray, box: dict[str, float]) -> tuple[float, float, float]:
    """The most common colour on a ring of pixels just outside the text's box: what it is read against."""
    top, left = int(box["y"]) - 2, int(box["x"]) - 2
    bottom, right = int(box["y"] + box["height"]) + 2, int(box["x"] + box["width"]) + 2
    top, left = max(top, 0), max(left, 0)
    bottom, right = min(bottom, shot.shape[0] - 1), min(right, shot.shape[1] - 1)
    ring = np.concatenate([shot[top, left:right], shot[bottom, left:right], shot[top:bottom, left], shot[top:bottom, right]])
    (colour, _), = Counter(map(tuple, ring.tolist())).most_common(1)
    return colour


def chart_text_contrasts(page) -> list[tuple[float, str, str]]:
    """(contrast, text, colours) of every chart label on screen, lowest contrast first."""
    labels = page.evaluate(CHART_TEXT)
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(float)
    found = []
    for label in labels:
        behind = background_behind(shot, label)
        fill = np.array(css_rgb(label["fill"]))
        seen = tuple(label["opacity"] * fill + (1 - label["opacity"]) * np.array(behind))  # text over its background
        found.append((contrast(seen, behind), label["text"], f"{label['fill']} on rgb{behind}"))
    return sorted(found)


def whole_page(page, charts: int, viewport: dict[str, int]) -> None:
    """Grow the viewport until the main block fits it (the app scrolls inside that block), so that
    every chart is on screen and in the screenshot."""
    for _ in range(4):
        page.wait_for_function(READY, arg=charts)
        height = page.evaluate(MAIN_HEIGHT)
        page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], height + 80)})
        page.wait_for_timeout(800)  # charts re-layout to the new size
        if page.evaluate(MAIN_HEIGHT) == height:
            break
    page.wait_for_function(READY, arg=charts)
    page.wait_for_function(IDLE)


def new_page(browser, scheme: str, device: dict):
    """A tab of its own (``browser`` and ``server`` are ``conftest.py``'s) in colour ``scheme``."""
    return new_tab(browser, color_scheme=scheme, **device)


def pick_model(page, name: str) -> None:
    page.locator(MODEL_PICKER).click()
    page.get_by_role("option", name=name, exact=False).first.click()
    page.wait_for_function(IDLE)


# --------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_app_follows_the_browsers_colour_scheme(browser, server, scheme):
    page = new_page(browser, scheme, {"viewport": VIEWPORT})
    try:
        open_page(page, server, "", "Draw & recognise")
        background = page.evaluate("getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor")
        assert (luminance(css_rgb(background)) > 0.5) == (scheme == "light"), background
    finally:
        page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_chart_labels_have_contrast_in_either_theme(browser, server, scheme):
    page = new_page(browser, scheme, {"viewport": VIEWPORT})
    try:
        open_page(page, server, "", "Draw & recognise")
        pick_model(page, "conv-2")  # a 2-D model: the Draw page adds its latent map
        page.wait_for_selector(CANVAS)
        stroke(page, ONE)
        page.wait_for_selector(METRIC)
        page.wait_for_function(IDLE)
        checked = {}
        for heading, charts in (("Draw & recognise", 2), ("Latent explorer", 1), ("Compare conv vs MLP", 8)):
            if checked:  # the next page, through the sidebar: the same session, so still conv-2
                page.get_by_role("link", name=heading).click()
                page.get_by_role("heading", name=heading).wait_for()
            whole_page(page, charts, VIEWPORT)
            checked[heading] = chart_text_contrasts(page)
            for _ in range(3):  # a heatmap's cells are an image painted after its text: a label on a
                if all(c > 1.0 for c, _, _ in checked[heading]):  # cell not painted yet is at 1:1
                    break
                page.wait_for_timeout(1500)
                checked[heading] = chart_text_contrasts(page)
            page.set_viewport_size(VIEWPORT)
        for heading, labels in checked.items():
            assert labels, f"no chart text found on {heading}"
            low = [item for item in labels if item[0] < MIN_CONTRAST]
            assert not low, f"{heading}: chart labels below {MIN_CONTRAST}:1: {low[:10]}"
    finally:
        page.context.close()


TOOLBAR_SHOWN = """() => {
  const host = [...document.querySelectorAll('[class*="st-key-draw_canvas_"] *')].find((e) => e.shadowRoot);
  const box = host.shadowRoot.querySelector('.dc-toolbar').getBoundingClientRect();
  const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
  return Boolean(hit && hit.closest('[class*="st-key-draw_canvas_"]'));
}"""
OVERFLOW = """() => { const main = document.querySelector('[data-testid="stMain"]');
  return main.scrollWidth - main.clientWidth; }"""


def test_the_canvas_toolbar_is_hidden(browser, server):
    """Hovering the canvas used to show the component's own toolbar above it (a second Undo and
    Clear, over the Draw/Upload switch): its middle is now not the canvas's to click."""
    page = new_page(browser, "dark", {"viewport": VIEWPORT})
    try:
        open_page(page, server, "", "Draw & recognise")
        page.wait_for_selector(MODEL_PICKER)  # the stylesheet comes with the sidebar, after the canvas
        page.locator(CANVAS).hover()
        page.wait_for_timeout(500)  # the toolbar slides up after a short delay
        assert not page.evaluate(TOOLBAR_SHOWN)
    finally:
        page.context.close()


def test_phone_draw_page_fits_the_screen(browser, server):
    """390 px wide: "What did you write?" is one row of ten, the images under the answer wrap
    instead of running off the side, and nothing scrolls sideways."""
    page = new_page(browser, "light", PHONE)
    try:
        open_page(page, server, "", "Draw & recognise")
        page.wait_for_selector(CANVAS)
        stroke(page, ONE)
        page.wait_for_selector(METRIC)
        page.wait_for_function(IDLE)
        digits = page.locator('.st-key-draw_truth [role="radio"]')
        tops = {round(digits.nth(i).bounding_box()["y"]) for i in range(digits.count())}
        assert digits.count() == 10 and len(tops) == 1, tops
        width = PHONE["viewport"]["width"]
        images = page.locator('[data-testid="stImage"] img')
        for i in range(images.count()):
            box = images.nth(i).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        assert page.evaluate(OVERFLOW) <= 0
    finally:
        page.context.close()


def test_phone_robustness_table_has_one_row_per_model(browser, server):
    """On a phone the robustness table is turned: the models are rows, and the table is inside the screen."""
    page = new_page(browser, "light", PHONE)
    try:
        open_page(page, server, "compare", "Compare conv vs MLP")
        table = page.locator('.st-key-compare_robust_narrow [data-testid="stDataFrame"]')
        table.wait_for()
        page.wait_for_selector(MODEL_PICKER)
        # The stylesheet may land after the tables on a busy machine: wait for it to hide the wide one.
        expect(page.locator(".st-key-compare_robust_wide")).to_be_hidden()
        assert table.is_visible()
        box = table.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["viewport"]["width"], box
        assert page.evaluate(OVERFLOW) <= 0
    finally:
        page.context.close()

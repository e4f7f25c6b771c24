"""The app in a real browser: ``streamlit run`` on a free port, driven by Debian Chromium (Playwright).

At desktop size (1280x900): draws a "1" and a "0" with mouse strokes on the canvas and reads the
"Recognised digit" metric, takes a stroke back with the visible Undo button and starts again with
Clear; moves a latent slider with the keyboard and checks that the decoded image (drawn in the
browser) follows while the server hears of it once, not once per key press; clicks a test digit
on the latent map and checks the sliders and the image follow; opens every page and asserts that
no error or exception element is shown. At phone size (390x844, touch): the answer is on the
first screen right after a stroke, and Clear works with a tap.

Nothing here writes into the project: the README's screenshots are made on demand by
``python -m tests.screenshots``, which reuses these helpers.

Uses the committed checkpoints when there are any (then the drawn digits must be read right),
else the tiny ones of ``conftest.py`` (then only that a digit is shown: they are barely trained).
"""

from __future__ import annotations

import pytest

from tests.browser import (
    BAR,
    CANVAS,
    DECODED,
    IDLE,
    MAP_POINTS,
    METRIC,
    MODEL_PICKER,
    ONE,
    PHONE,
    READY,
    ROOT,
    SLIDER,
    TIMEOUT_MS,
    VIEWPORT,
    app_button,
    assert_no_error,
    open_page,
    recognised,
    ring,
    running_app,
    stroke,
)

pytestmark = pytest.mark.browser


def test_draw_one_and_zero(page, server, models):
    from playwright.sync_api import expect

    open_page(page, server, "", "Draw & recognise")
    page.wait_for_selector(CANVAS)
    stroke(page, ONE)
    one = recognised(page)
    assert (len(one) == 1 and one in "0123456789") or one.endswith("?") or one == "Not a digit"
    if models[1]:
        assert one == "1"
    assert_no_error(page)

    # A second stroke, then Undo: the canvas shows the "1" alone again, and so does the answer.
    seen = page.locator('[data-testid="stImage"]', has_text="What the model sees").locator("img")
    alone = seen.get_attribute("src")
    stroke(page, BAR)
    expect(seen).not_to_have_attribute("src", alone, timeout=TIMEOUT_MS)  # the server has the second stroke
    page.wait_for_function(IDLE)
    app_button(page, "Undo").click()
    expect(seen).to_have_attribute("src", alone, timeout=TIMEOUT_MS)  # the same 28x28 input as before
    expect(page.locator(METRIC)).to_have_text(one, timeout=TIMEOUT_MS)

    app_button(page, "Clear").click()
    page.wait_for_selector(METRIC, state="detached")
    stroke(page, ring())
    zero = recognised(page)
    if models[1]:
        assert zero == "0"
    assert_no_error(page)
    save = page.get_by_role("button", name="Save to archive")
    if save.count():
        save.click()
        page.wait_for_selector('[data-testid="stAlertContentSuccess"]')
    assert_no_error(page)


def test_phone_answer_on_the_first_screen_and_clear_by_touch(page, server, models):
    """390x844 with touch: right after a stroke the answer is on screen without scrolling; the
    visible Clear button works with a tap (the canvas's own toolbar only shows on hover)."""
    context = page.context.browser.new_context(**PHONE)
    phone = context.new_page()
    phone.set_default_timeout(TIMEOUT_MS)
    try:
        open_page(phone, server, "", "Draw & recognise")
        phone.wait_for_selector(CANVAS)
        stroke(phone, ONE)
        answer = recognised(phone)
        if models[1]:
            assert answer == "1"
        box = phone.locator(METRIC).bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["viewport"]["height"], box
        clear = app_button(phone, "Clear")
        clear.tap()
        phone.wait_for_selector(METRIC, state="detached")
        assert clear.is_disabled()  # nothing left to clear: an empty canvas
        assert_no_error(phone)
    finally:
        context.close()


def test_latent_slider_moves_the_decoded_digit(page, server):
    from playwright.sync_api import expect

    open_page(page, server, "latent", "Latent explorer")
    page.locator(MODEL_PICKER).click()  # a 2-D model: the browser-side sliders
    page.get_by_role("option", name="conv-2", exact=False).first.click()
    slider = page.locator(SLIDER)
    slider.wait_for(state="attached")
    picture = page.locator(DECODED)
    page.wait_for_function(IDLE)
    before = picture.get_attribute("data-frame")
    sent = int(picture.get_attribute("data-sent") or 0)
    slider.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    expect(picture).not_to_have_attribute("data-frame", before, timeout=TIMEOUT_MS)
    expect(picture).to_have_attribute("aria-label", "A decoded 0 at z = (0.50, 0.00)")
    assert float(slider.input_value()) == pytest.approx(0.5)
    expect(picture).to_have_attribute("data-sent", str(sent + 1))  # ten key presses, one rerun once they rest
    page.wait_for_timeout(1000)
    assert picture.get_attribute("data-sent") == str(sent + 1)
    pixels = picture.evaluate("(c) => c.toDataURL()")
    page.keyboard.press("Home")  # the other end of the slider: another digit
    expect(picture).to_have_attribute("aria-label", "A decoded 0 at z = (-3.00, 0.00)")
    assert picture.evaluate("(c) => c.toDataURL()") != pixels
    assert_no_error(page)

    # Clicking a test digit on the map moves the sliders (and the decoded digit) to it.
    page.wait_for_function(IDLE)  # the released slider's rerun has redrawn the map
    point = page.locator(MAP_POINTS).nth(5).bounding_box()  # plotly's drag layer takes the click, as for a user
    page.mouse.click(point["x"] + point["width"] / 2, point["y"] + point["height"] / 2)
    expect(picture).not_to_have_attribute("aria-label", "A decoded 0 at z = (-3.00, 0.00)", timeout=TIMEOUT_MS)
    z = (float(slider.input_value()), float(page.locator(SLIDER.replace("z0", "z1")).input_value()))
    assert z != (-3.0, 0.0)
    assert picture.get_attribute("aria-label") == f"A decoded 0 at z = ({z[0]:.2f}, {z[1]:.2f})"
    assert_no_error(page)


@pytest.mark.parametrize(
    ("path", "heading", "charts"), [("compare", "Compare conv vs MLP", 3), ("archive", "Archive", 0)]
)
def test_other_pages_open_without_errors(page, server, path, heading, charts):
    if path == "archive" and not (ROOT / "app" / "views" / "archive.py").exists():
        pytest.skip("the archive page is not installed")
    open_page(page, server, path, heading)
    page.wait_for_function(READY, arg=charts)
    assert_no_error(page)


def test_deep_link_is_the_first_request_to_a_fresh_server(page, models, tmp_path_factory):
    """A bookmarked /latent opened on a server nobody has visited yet still runs through the router:
    the sidebar's model picker is there and the page works (a page folder named ``pages/`` would
    have made Streamlit run the page alone)."""
    with running_app(models[0], tmp_path_factory.mktemp("deep_link")) as url:
        context = page.context.browser.new_context(viewport=VIEWPORT)
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        try:
            open_page(tab, url, "latent", "Latent explorer")
            tab.wait_for_selector(MODEL_PICKER)
            tab.wait_for_selector(SLIDER, state="attached")
            assert_no_error(tab)
        finally:
            context.close()

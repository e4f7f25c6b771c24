"""The Latent explorer's sliders on a 16-D model, in a real browser (``app/scrub.py``).

At desktop size: dragging slider z12 changes the decoded digit while the pointer is still down, with
no server rerun (the component counts the server's renders, ``data-renders``, and its own sends,
``data-sent``); on release it sends z once and the server decodes ahead around the new point. At
phone size (390x844, touch): the 16 sliders sit in a box under the digit, and the digit's bounding
box stays inside the viewport while z12 moves.

Uses the committed checkpoints (``MODEL`` is shipped).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import (
    COMMITTED,
    DECODED,
    IDLE,
    MODEL_PICKER,
    PHONE,
    TIMEOUT_MS,
    VIEWPORT,
    assert_no_error,
    new_tab,
    open_page,
    running_app,
)

pytestmark = pytest.mark.browser

MODEL = "mlp-16-recogniser"  # shipped, 16-D
SLIDER = 'input[type="range"][aria-label="z12"]'
PHONE_WIDTH = 640  # narrower viewports get the phone layout (app/scrub.css)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    assert (COMMITTED / f"{MODEL}.safetensors").exists(), f"{MODEL} is a shipped checkpoint"
    with running_app(COMMITTED, tmp_path_factory.mktemp("latent")) as url:
        yield url


def latent_page(browser, server: str, **context):
    """The Latent explorer on ``MODEL``, picked in the sidebar, its sheet drawn."""
    page = new_tab(browser, **context)
    open_page(page, server, "latent", "Latent explorer")
    page.wait_for_function(IDLE)
    phone = page.viewport_size["width"] < PHONE_WIDTH
    if phone:  # the sidebar starts collapsed
        page.get_by_test_id("stExpandSidebarButton").click()
    page.locator(MODEL_PICKER).click()
    page.get_by_role("option", name=f"{MODEL} ", exact=False).first.click()
    page.wait_for_function(IDLE)
    if phone:
        page.get_by_test_id("stSidebarCollapseButton").locator("button").click()
    page.get_by_text(f"Model {MODEL}:").wait_for()
    page.locator(f"{DECODED}[data-frame]").wait_for(state="attached")
    page.wait_for_function(IDLE)  # the picker's rerun has ended: no render of the scrubber is on its way
    page.wait_for_timeout(500)
    return page


def counters(picture) -> dict[str, int]:
    return {name: int(picture.get_attribute(f"data-{name}") or 0) for name in ("frame", "renders", "sent")}


def test_dragging_a_slider_of_a_16d_model_needs_no_server_rerun(browser, server):
    from playwright.sync_api import expect

    page = latent_page(browser, server, viewport=VIEWPORT)
    try:
        picture = page.locator(DECODED)
        before, pixels = counters(picture), picture.evaluate("(c) => c.toDataURL()")
        box = page.locator(SLIDER).bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] / 2, y)  # the thumb sits in the middle at z = 0
        page.mouse.down()
        for step in range(1, 9):
            page.mouse.move(box["x"] + box["width"] * (0.5 + step * 0.05), y)
        page.wait_for_timeout(500)  # anything the server was going to send has had time to arrive
        during = counters(picture)
        assert during["frame"] >= before["frame"] + 4, (before, during)  # the digit followed the pointer...
        assert (during["renders"], during["sent"]) == (before["renders"], before["sent"])  # ...with no rerun
        assert picture.evaluate("(c) => c.toDataURL()") != pixels
        assert picture.get_attribute("data-exact") == "true"
        z12 = float(page.locator(SLIDER).input_value())
        assert z12 > 1.0
        expect(picture).to_have_attribute("aria-label", f"A decoded 0 at z12 = {z12:.2f}; every other dimension 0")
        page.mouse.up()
        expect(picture).to_have_attribute("data-sent", str(before["sent"] + 1))  # released: sent once
        expect(picture).to_have_attribute("data-renders", str(before["renders"] + 1), timeout=TIMEOUT_MS)  # refilled
        page.wait_for_function(IDLE)
        assert counters(picture)["sent"] == before["sent"] + 1
        assert_no_error(page)
    finally:
        page.context.close()


def test_phone_keeps_the_digit_on_screen_while_a_slider_moves(browser, server):
    page = latent_page(browser, server, **PHONE)
    try:
        picture = page.locator(DECODED)
        slider = page.locator(SLIDER)
        slider.scroll_into_view_if_needed()  # scrolls the sliders' own box (and the page if it must)
        height = PHONE["viewport"]["height"]
        frames = counters(picture)["frame"]
        box = slider.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, box  # the slider is on screen
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] / 2, y)
        page.mouse.down()
        for step in range(1, 7):
            page.mouse.move(box["x"] + box["width"] * (0.5 + step * 0.07), y)
            digit = picture.bounding_box()
            assert digit["y"] >= 0 and digit["y"] + digit["height"] <= height, (step, digit)
            assert digit["x"] >= 0 and digit["x"] + digit["width"] <= PHONE["viewport"]["width"], (step, digit)
        page.mouse.up()
        assert counters(picture)["frame"] > frames  # the digit on screen is the one that moved
        assert_no_error(page)
    finally:
        page.context.close()

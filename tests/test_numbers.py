"""Reading a number (``cvae_core.numbers``): the segmentation on written numbers with known boxes
(separate digits, a touching pair, a broken 5, specks, a ruled line), the refusals (blank, a dot,
too wide, too many digits), corrections, the generator, ``predict --number`` and the page."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from benchmarks import numbers as bench
from cvae_core.archive import Archive
from cvae_core.images.preprocess import InputError, prepare_array
from cvae_core.numbers import MAX_DIGITS, Recogniser, merge, read_number, segment, split, synth
from cvae_core.predict import main

ROOT = Path(__file__).resolve().parent.parent
HEIGHT = 60  # digit height in the pictures written here, in pixels
ROUTER = "from app.streamlit_app import run\nrun()\n"


@pytest.fixture(scope="module")
def recogniser() -> Recogniser:
    return Recogniser.default()


@pytest.fixture(scope="module")
def glyphs(mnist, recogniser) -> dict[int, np.ndarray]:
    """One MNIST test digit per label (its ink, cropped) that the recogniser reads alone with
    confidence, so that what is tested is the segmentation, not the model."""
    chosen: dict[int, np.ndarray] = {}
    for img, label in zip(mnist.test_images[:400].numpy(), mnist.test_labels[:400].tolist(), strict=True):
        if label in chosen:
            continue
        ink = synth._trim(img.astype(np.float32) / 255)
        probs, _, flags = recogniser.read(prepare_array(np.pad(ink, 8)).tensor)
        if probs[0].argmax() == label and probs[0].max() > 0.97 and (flags is None or not flags[0]):
            chosen[label] = ink
    assert len(chosen) == 10, f"no confident test digit for {set(range(10)) - set(chosen)}"
    return chosen


def write(inks: list[np.ndarray], gaps: list[float], *, height: int = HEIGHT, margin: int = 30
          ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Digits (ink crops) written left to right at ``height`` pixels, ``gaps`` between them in
    digit heights (negative: overlapping): (light-on-dark float picture, each digit's ink box)."""
    shaped = [np.asarray(Image.fromarray(g, mode="F").resize(
        (max(1, round(g.shape[1] * height / g.shape[0])), height), Image.Resampling.BILINEAR)) for g in inks]
    xs, x = [], margin
    for i, s in enumerate(shaped):
        x += round(gaps[i - 1] * height) if i else 0
        xs.append(x)
        x += s.shape[1]
    picture = np.zeros((height + 2 * margin, x + margin), dtype=np.float32)
    boxes = []
    for s, x0 in zip(shaped, xs, strict=True):
        region = picture[margin : margin + height, x0 : x0 + s.shape[1]]
        np.maximum(region, np.clip(s, 0, 1), out=region)
        cols, rows = np.flatnonzero((s > 0.25).any(0)), np.flatnonzero((s > 0.25).any(1))
        boxes.append((x0 + int(cols[0]), margin + int(rows[0]), x0 + int(cols[-1]) + 1, margin + int(rows[-1]) + 1))
    return picture, boxes


def on_paper(picture: np.ndarray) -> np.ndarray:
    """Dark ink on light paper, 8-bit, as a scan."""
    return np.rint(255 * (0.92 - 0.8 * np.clip(picture, 0, 1))).astype(np.uint8)


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def assert_boxes(reading, truth: list[tuple[int, int, int, int]], *, height: int = HEIGHT) -> None:
    found = [d.box for d in reading.digits]
    assert len(found) == len(truth), (found, truth)
    assert bench.match(tuple(truth), found) == list(range(len(truth))), (found, truth)
    for f, t in zip(found, truth, strict=True):  # each box holds its digit and not much more
        slack = 0.05 * height
        assert f[0] <= t[0] + slack and f[2] >= t[2] - slack and (f[2] - f[0]) <= (t[2] - t[0]) + 0.3 * height, (f, t)


# ------------------------------------------------------------------------------ segmentation


def test_separate_digits_are_read_in_their_boxes(glyphs, recogniser):
    picture, truth = write([glyphs[3], glyphs[7], glyphs[2], glyphs[0]], [0.5, 0.3, 0.8])
    reading = read_number(on_paper(picture), recogniser=recogniser)
    assert reading.text == "3720"
    assert_boxes(reading, truth)
    assert reading.size == (picture.shape[1], picture.shape[0])
    for d in reading.digits:
        assert d.image.shape == (28, 28) and d.digit is not False and sum(d.probs) <= 1 + 1e-4


def test_the_overlay_room_for_the_readings_continues_the_pictures_edge(glyphs, recogniser):
    """Above the picture, the room for the digits' readings has the picture's own background: paper
    for a scan, black for a canvas drawing (not a white band on a dark page)."""
    from app.views.number import overlay

    picture, _ = write([glyphs[3], glyphs[7]], [0.5])
    for image, light in ((on_paper(picture), True), (np.rint(255 * np.clip(picture, 0, 1)).astype(np.uint8), False)):
        data = png(image)
        shown = np.asarray(overlay(data, read_number(image, recogniser=recogniser)).convert("L"))
        assert shown.shape[0] > image.shape[0]  # room was added above
        corner = float(np.median(shown[:4, :4]))
        assert (corner > 200) if light else (corner < 40), corner


def test_a_touching_pair_is_cut_where_both_halves_read_as_digits(glyphs, recogniser):
    picture, truth = write([glyphs[1], glyphs[4], glyphs[6], glyphs[8]], [0.4, -0.12, 0.4])
    marks, _ = segment.find_marks(segment.find_ink(picture))
    assert len(marks) == 3, "the 4 and the 6 should touch in this picture"
    reading = read_number(picture, recogniser=recogniser)
    assert reading.text == "1468"
    assert_boxes(reading, truth)


def test_a_pair_fused_along_a_stroke_is_cut_into_two_boxes(glyphs, recogniser):
    """An 8 and a 4 overlapping by a fifth of their height: no path between them crosses little
    ink, so the cheapest paths near the middle of the mark find them. Where the digits overlap,
    any cut gives one the other's edge, so the boxes are matched to the digits, not held to a few
    pixels."""
    picture, truth = write([glyphs[2], glyphs[8], glyphs[4], glyphs[7]], [0.4, -0.2, 0.4])
    marks, _ = segment.find_marks(segment.find_ink(picture))
    assert len(marks) == 3, "the 8 and the 4 should be one mark in this picture"
    reading = read_number(picture, recogniser=recogniser)
    assert reading.text == "2847"
    assert bench.match(tuple(truth), [d.box for d in reading.digits]) == [0, 1, 2, 3]


def test_a_marks_width_is_measured_without_its_slant():
    """A stroke 6 pixels wide leaning right by half its height: its box is 36 pixels wide, the
    stroke 6."""
    mask = np.zeros((60, 36), dtype=bool)
    for y in range(60):
        x = round(0.5 * (59 - y))
        mask[y, x : x + 6] = True
    mark = segment.Mark(box=(0, 0, 36, 60), mask=mask)
    assert mark.width == 36
    assert mark.upright_width(0.5) == pytest.approx(6, abs=1)
    assert mark.upright_width(0.0) == 36


def test_a_five_with_its_bar_apart_is_one_digit(glyphs, recogniser):
    rng = np.random.default_rng(3)
    five = synth.pen_glyph("5", rng, way=1)  # the bar drawn apart from the body
    pieces, _ = segment.imageops.components(five > 0.25)
    assert len(np.unique(pieces[pieces >= 0])) == 2
    picture, truth = write([glyphs[2], five, glyphs[7]], [0.4, 0.4])
    reading = read_number(picture, recogniser=recogniser)
    assert reading.text == "257"
    assert_boxes(reading, truth)


def test_specks_are_not_digits(glyphs, recogniser):
    picture, truth = write([glyphs[9], glyphs[0], glyphs[2], glyphs[1]], [0.5, 0.5, 0.5])
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0 : picture.shape[0], 0 : picture.shape[1]]
    for _ in range(12):
        cy, cx, r = rng.uniform(0, picture.shape[0]), rng.uniform(0, picture.shape[1]), rng.uniform(1, 3)
        picture = np.maximum(picture, np.hypot(yy - cy, xx - cx) <= r)
    reading = read_number(on_paper(picture), recogniser=recogniser)
    assert reading.text == "9021"
    assert_boxes(reading, truth)


@pytest.mark.parametrize("where", [0.95, 0.6], ids=["under the digits", "through the digits"])
def test_a_ruled_line_is_not_part_of_the_digits(glyphs, recogniser, where):
    picture, truth = write([glyphs[5], glyphs[3], glyphs[8], glyphs[6], glyphs[4]], [0.4, 0.3, 0.5, 0.4])
    y = round(30 + where * HEIGHT)
    slope = 0.01  # a photo is never quite square to the page
    for x in range(picture.shape[1]):
        row = y + round(slope * x)
        picture[row : row + 2, x] = np.maximum(picture[row : row + 2, x], 0.7)
    reading = read_number(on_paper(picture), recogniser=recogniser)
    assert reading.text == "53864"
    assert_boxes(reading, truth)


# ---------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("kind", ["blank", "dot", "noise"])
def test_no_number_is_an_error(recogniser, kind):
    picture = np.full((120, 400), 230, dtype=np.uint8)
    if kind == "dot":
        picture[58:63, 198:203] = 20
    if kind == "noise":
        picture = np.random.default_rng(0).integers(0, 256, picture.shape).astype(np.uint8)
    with pytest.raises(InputError) as e:
        read_number(picture, recogniser=recogniser)
    assert {"blank": "blank", "dot": "dot", "noise": "noise"}[kind] in str(e.value).lower()


def test_a_picture_far_too_wide_is_refused_and_a_wide_one_is_bounded(glyphs, recogniser):
    with pytest.raises(InputError, match="limit"):
        read_number(np.zeros((100, 20_000), dtype=np.uint8), recogniser=recogniser)
    wide = np.full((100, 20_000), 255, dtype=np.uint8)
    with pytest.raises(InputError, match="limit"):
        read_number(png(wide), recogniser=recogniser)  # refused from the PNG header, before decoding
    picture, truth = write([glyphs[4], glyphs[2]], [3.0], height=300, margin=600)  # 4,000 pixels wide
    page = segment.find_ink(picture)
    assert max(page.ink.shape) <= segment.WORK_SIDE
    reading = read_number(picture, recogniser=recogniser)
    assert reading.text == "42"
    assert_boxes(reading, truth, height=300)


def test_more_digits_than_a_number_holds_is_refused(glyphs, recogniser):
    inks = [glyphs[i % 10] for i in range(MAX_DIGITS + 4)]
    picture, _ = write(inks, [0.5] * len(inks), height=30, margin=10)
    with pytest.raises(InputError, match=str(MAX_DIGITS)):
        read_number(picture, recogniser=recogniser)


# ------------------------------------------------------------------------------- corrections


def test_join_and_cut_correct_the_boxes(glyphs, recogniser):
    picture, truth = write([glyphs[3], glyphs[7], glyphs[2]], [0.15, 0.5])
    reading = read_number(picture, recogniser=recogniser)
    assert reading.text == "372"
    joined = merge(reading, 0, recogniser=recogniser)
    assert len(joined.digits) == 2 and joined.digits[0].box[0] == reading.digits[0].box[0]
    assert joined.digits[0].box[2] == reading.digits[1].box[2]
    cut = split(joined, 0, recogniser=recogniser)
    assert cut.text == "372"
    assert_boxes(cut, truth)
    with pytest.raises(InputError):
        merge(reading, 2, recogniser=recogniser)  # the last digit has no next


def test_unsure_and_not_a_digit_positions_are_question_marks(glyphs, recogniser):
    picture, _ = write([glyphs[1], glyphs[2]], [0.5])
    reading = read_number(picture, recogniser=recogniser)
    sure, unsure = reading.digits
    unsure = type(unsure)(box=unsure.box, probs=(0.1,) * 10, not_digit=0.0, digit=True, image=unsure.image)
    flagged = type(sure)(box=sure.box, probs=sure.probs, not_digit=0.9, digit=False, image=sure.image)
    assert unsure.shown == "?" and flagged.shown == "?" and sure.shown == "1"
    assert flagged.to_dict()["digit"] is False and flagged.to_dict()["label"] == 1


# --------------------------------------------------------------------------------- generator


def test_the_generator_is_seeded_and_its_truth_fits_its_pictures(mnist):
    pool = (mnist.test_images.numpy(), mnist.test_labels.numpy())
    a = list(synth.numbers(*pool, count=16, seed=5))
    b = list(synth.numbers(*pool, count=16, seed=5))
    assert [n.text for n in a] == [n.text for n in b] and all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=False))
    assert {len(n.text) for n in a} == set(synth.LENGTHS)
    assert {n.style for n in a} == {"mnist", "pen"}
    for n in a:
        h, w = n.image.shape
        assert n.image.dtype == np.uint8 and len(n.boxes) == len(n.text) and len(n.touching) == len(n.text) - 1
        assert all(0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h for x0, y0, x1, y1 in n.boxes)
        assert [b[0] for b in n.boxes] == sorted(b[0] for b in n.boxes)


def test_the_benchmark_scores_a_reading_against_the_truth():
    truth = synth.Synth(image=np.zeros((10, 10), np.uint8), text="123", boxes=((0, 0, 10, 10), (12, 0, 22, 10),
                        (22, 0, 32, 10)), touching=(False, True), style="mnist")

    class Found:
        def __init__(self, shown: str, label: int, box: tuple[int, ...]) -> None:
            self.shown, self.label, self.box = shown, label, box

    class Reading:
        digits = (Found("1", 1, (0, 0, 10, 10)), Found("?", 3, (12, 0, 32, 10)))  # matches the 3 (ties: the later)
        text = "1?"

    row = bench.score(truth, Reading())
    assert row["count_right"] is False and row["in_place"] == 1 and row["guessed"] == 2 and row["exact"] is False
    assert row["touching"] == 1 and row["touching_apart"] == 0
    summary = bench.summary([row, bench.score(truth, None)])
    assert summary["in_place_percent"] == pytest.approx(100 / 6, abs=0.01)


# ------------------------------------------------------------------------------------ command


def test_predict_number_json_fields_and_exit_codes(tmp_path, capsys, glyphs):
    picture, _ = write([glyphs[9], glyphs[0], glyphs[2], glyphs[1], glyphs[0]], [0.4, 0.3, 0.5, 0.4])
    good = tmp_path / "90210.png"
    Image.fromarray(on_paper(picture)).save(good)
    blank = tmp_path / "blank.png"
    Image.new("L", (300, 100), 255).save(blank)
    code = main(["--number", str(good), str(blank), str(tmp_path / "missing.png"), "--json"])
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1 and len(out) == 3
    assert set(out[0]) == {"file", "number", "digits"} and out[0]["number"] == "90210"
    for d in out[0]["digits"]:
        assert set(d) == {"label", "probs", "digit", "box"} and len(d["probs"]) == 10 and len(d["box"]) == 4
    assert [d["label"] for d in out[0]["digits"]] == [9, 0, 2, 1, 0]
    assert set(out[1]) == {"file", "error"} and "no number" in out[1]["error"].lower()
    assert out[2]["error"] == "No such file."
    assert main(["--number", str(good)]) == 0
    assert capsys.readouterr().out.strip() == f"{good}: 90210  (5 digits)"
    assert main(["--number"]) == 2  # no files: bad usage
    assert main(["--number", str(good), "--k", "0"]) == 2


def test_predict_number_as_a_command(tmp_path, glyphs):
    picture, _ = write([glyphs[4], glyphs[2]], [0.5])
    good = tmp_path / "42.png"
    Image.fromarray(on_paper(picture)).save(good)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "cvae_core.predict", "--number", str(good), str(tmp_path), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["number"] == "42" and "folder" in lines[1]["error"]


# --------------------------------------------------------------------------------------- page


def start(monkeypatch, archive: str) -> AppTest:
    monkeypatch.setenv("CVAE_ARCHIVE_URL", archive)
    at = AppTest.from_string(ROUTER, default_timeout=120).run()
    at.switch_page(str(ROOT / "app" / "views" / "number.py")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_reads_an_uploaded_number_and_saves_its_corrected_digits(monkeypatch, tmp_path, glyphs):
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    at = start(monkeypatch, url)
    assert at.title[0].value == "Read a number"
    picture, _ = write([glyphs[1], glyphs[2], glyphs[3]], [0.5, 0.5])
    at.button_group(key="number_mode").set_value("Upload").run()
    at.file_uploader(key="number_upload").set_value(("123.png", png(on_paper(picture)), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.metric[0].value == "123"
    captions = [c.value for c in at.caption]
    assert sum("%" in c for c in captions) == 3  # each digit's two best candidates
    at.selectbox(key="number_truth_0_2").set_value(8).run()  # the visitor says the last digit is an 8
    at.button(key="number_save").click().run()
    assert not at.exception, [e.value for e in at.exception]
    items = sorted(Archive.from_url(url).list(), key=lambda item: item.id)
    assert [(i.source, i.label, i.true_label, i.number) for i in items] == [
        ("number", 1, 1, "128"), ("number", 2, 2, "128"), ("number", 3, 8, "128")]
    assert any("Saved 3 digits" in s.value for s in at.success)
    at.selectbox(key="number_truth_0_1").set_value(7).run()  # a second correction, saved again:
    at.button(key="number_save").click().run()  # the same three items, relabelled
    items = sorted(Archive.from_url(url).list(), key=lambda item: item.id)
    assert [(i.true_label, i.number) for i in items] == [(1, "178"), (7, "178"), (8, "178")]


def test_page_joins_and_cuts_boxes(monkeypatch, tmp_path, glyphs):
    at = start(monkeypatch, f"sqlite:///{tmp_path / 'archive.db'}")
    picture, _ = write([glyphs[1], glyphs[2], glyphs[3]], [0.3, 0.5])
    at.button_group(key="number_mode").set_value("Upload").run()
    at.file_uploader(key="number_upload").set_value(("123.png", png(on_paper(picture)), "image/png")).run()
    at.button(key="number_join_0_0").click().run()
    assert not at.exception
    assert [s.key for s in at.selectbox if s.key.startswith("number_truth_")] == ["number_truth_1_0", "number_truth_1_1"]
    assert len(at.metric[0].value) == 2
    at.button(key="number_cut_1_0").click().run()
    assert not at.exception and at.metric[0].value == "123"


# ------------------------------------------------------------------------------------ browser

DRAWN_123 = [[(100, 30), (100, 100), (100, 170)],  # in the wide canvas's pixels (720 x 200)
             [(190, 65), (215, 38), (255, 35), (282, 62), (275, 100), (230, 140), (195, 170), (290, 170)],
             [(350, 48), (385, 30), (430, 40), (440, 75), (400, 98), (440, 118), (448, 150), (410, 173), (355, 162)]]


def choose(page, selectbox: str, option: str, idle: str) -> None:
    """Pick ``option`` in a select box; its menu is opened again if a late rerun (the canvas sends
    its drawing more than once) closed it before the option was clicked."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(5):
        page.wait_for_function(idle)
        page.locator(selectbox).click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=5_000)
        except PlaywrightTimeout:  # the menu closed under us
            continue
        page.wait_for_function(idle)
        return
    pytest.fail(f"could not pick {option} in {selectbox}")


@pytest.mark.browser
def test_browser_a_drawn_123_reads_123_and_a_correction_is_saved(tmp_path):
    """In Chromium: "123" drawn with the mouse on the wide canvas reads 123; the last digit is then
    said to be an 8 and the number saved: three labelled archive items of source "number"."""
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS, IDLE, TIMEOUT_MS, VIEWPORT, running_app

    with running_app(ROOT / "checkpoints", tmp_path) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/number")
        canvas = page.locator("canvas.upper-canvas")
        canvas.wait_for(state="visible")
        box = canvas.bounding_box()
        assert box["width"] == 720
        for points in DRAWN_123:
            page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
            page.mouse.down()
            for x, y in points[1:]:
                page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
            page.mouse.up()
        number = page.locator('[data-testid="stMetric"]:has-text("The number") [data-testid="stMetricValue"]')
        page.wait_for_function("(el) => el.innerText.trim() === '123'", arg=number.element_handle())
        choose(page, ".st-key-number_truth_0_2 [data-testid='stSelectbox']", "8", IDLE)
        page.get_by_role("button", name="Save 3 digits to the archive").click()
        page.wait_for_selector('[data-testid="stAlertContentSuccess"]:has-text("Saved 3 digits")')
        assert not page.locator('[data-testid="stException"]').count()
        browser.close()
    items = sorted(Archive.from_url(f"sqlite:///{tmp_path / 'archive.db'}").list(), key=lambda item: item.id)
    assert [(i.source, i.label, i.true_label, i.number) for i in items] == [
        ("number", 1, 1, "128"), ("number", 2, 2, "128"), ("number", 3, 8, "128")]


def test_the_benchmark_runs_and_writes_its_table_into_the_readme(mnist, tmp_path, monkeypatch):
    section = bench.run(data=mnist, count=4, quick=True)
    assert section["all"]["numbers"] == 4 and section["numbers_per_s"] > 0
    assert section["ten_digit_one_core_ms"]["n"] == 10 and torch.get_num_threads() >= 1
    assert [r["target"] for r in section["targets"]] == list(bench.TARGETS)
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"sections": {"numbers": section}}))
    monkeypatch.setattr(bench, "RESULTS_JSON", results)
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{bench.README_START}\nold\n{bench.README_END}\nafter\n")
    assert bench.main(["--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
    assert "| digit count right | >= 98 % |" in text and "10-digit number end to end" in text

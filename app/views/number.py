"""Read a number: write a number on a wide canvas (mouse or finger) or upload a photo of one; see
it read digit by digit, with a box and the reading drawn over each digit and each digit's two
best candidates; correct it (a digit's true label, two boxes joined, one box cut in two) and save
its digits to the archive as labelled data, each with the source "number" and the number it
came from.

The reading is ``cvae_core.numbers.read_number`` with the best recogniser
(``catalogue.recogniser_ranking``, as ``predict --number`` uses), cached on the input's bytes;
corrections are ``cvae_core.numbers.merge`` and ``split``, kept in this session for this input.
A digit the model is unsure of (below 60 %) or does not take for a digit is shown as ``?``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
from PIL import Image, ImageDraw, ImageFont

from app import archive_ui, cached_models, figures
from app.draw import inputs
from app.draw.answer import percent
from cvae_core import catalogue, inference
from cvae_core.archive import ArchiveError, Record, RecordError
from cvae_core.checkpoints import checkpoint_dir
from cvae_core.images.files import MAX_BYTES, InputError, decode_image
from cvae_core.nondigits import font_dir
from cvae_core.numbers import UNSURE, NumberReading, Recogniser, merge, read_number, split

log = logging.getLogger(__name__)

KEY = "number_"  # session-state namespace of this page
CANVAS = {"Wide": (720, 200), "Phone": (340, 150)}  # width, height in CSS pixels
SHOWN_WIDTH = 960  # the picture with its boxes is drawn at most this wide
MAX_NAME = 60
SURE, UNSURE_COLOUR = (22, 163, 74), (217, 119, 6)  # box colours: read, and shown as "?"


@dataclass
class Correction:
    """This session's reading of one input (``mark``: its bytes' hash and the model), as corrected."""

    mark: str
    reading: NumberReading
    version: int = 0  # bumped by each join or cut: the digits' label controls start afresh


# ---------------------------------------------------------------------------------------- input


def clear_canvas() -> None:
    st.session_state[KEY + "generation"] = st.session_state.get(KEY + "generation", 0) + 1
    st.session_state.pop(KEY + "initial", None)


def undo_stroke() -> None:
    objects = st.session_state.get(KEY + "objects") or []
    if len(objects) <= 1:
        clear_canvas()
        return
    revision = (st.session_state.get(KEY + "initial") or {}).get("revision", 0) + 1
    st.session_state[KEY + "initial"] = {"objects": objects[:-1], "revision": revision}


def canvas_size() -> str:
    """The canvas size chosen, else the one that fits the visitor's screen: a phone's browser says
    "Mobile" in its user agent (the server cannot know the screen's width otherwise)."""
    if KEY + "size" not in st.session_state:
        st.session_state[KEY + "size"] = "Phone" if "Mobi" in (st.context.headers.get("User-Agent") or "") else "Wide"
    return st.session_state[KEY + "size"]


def canvas_input() -> tuple[bytes | None, str | None]:
    """The wide canvas with Undo, Clear, the pen and the canvas size; (PNG bytes or None, problem)."""
    from streamlit_drawable_canvas import st_canvas  # here: the component registers only inside a running app

    width, height = CANVAS[canvas_size()]
    # The key contains "draw_canvas_": app/style.css clips the component's hover toolbar for it,
    # as on the Draw page (the page's own Undo and Clear work by touch too).
    result = st_canvas(
        stroke_width=st.session_state.get(KEY + "stroke", 12), stroke_color="#FFFFFF", background_color="#000000",
        width=width, height=height, drawing_mode="freedraw", return_image_data=True,
        initial_drawing=st.session_state.get(KEY + "initial"),
        key=f"{KEY}draw_canvas_{st.session_state.get(KEY + 'generation', 0)}",
    )
    objects = (result.json_data or {}).get("objects") or []
    st.session_state[KEY + "objects"] = objects
    with st.container(horizontal=True, gap="small", vertical_alignment="center"):
        st.button("Undo", key=KEY + "undo", icon=":material/undo:", on_click=undo_stroke, disabled=not objects)
        st.button("Clear", key=KEY + "clear", icon=":material/delete:", on_click=clear_canvas, disabled=not objects)
        with st.popover("Pen", icon=":material/edit:"):
            st.slider("Stroke width", 4, 30, 12, key=KEY + "stroke")
            st.segmented_control("Canvas", list(CANVAS), required=True, key=KEY + "size",
                                 on_change=clear_canvas, help="Phone: a canvas that fits a phone's screen.")
    if not objects:
        return None, None
    try:
        data, _ = inputs.canvas_image(result)
    except InputError as e:
        return None, str(e)
    return data, None


def upload_input() -> tuple[bytes | None, str | None, str | None]:
    """(file bytes, shown name, problem) for the uploader."""
    upload = st.file_uploader(
        "A photo or scan of a number", type=["png", "jpg", "jpeg"], key=KEY + "upload",
        max_upload_size=MAX_BYTES // 1_000_000,
        help=f"Dark ink on light paper or light on dark; PNG or JPEG, up to {MAX_BYTES / 1e6:g} MB.",
    )
    if upload is None:
        return None, None, None
    name = upload.name if len(upload.name) <= MAX_NAME else upload.name[: MAX_NAME - 1] + "…"
    if upload.size > MAX_BYTES:
        return None, name, f"The file is {upload.size / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:g} MB."
    return upload.getvalue(), name, None


# -------------------------------------------------------------------------------------- reading


@st.cache_data(max_entries=16, show_spinner="Reading the number…")
def read(_entry: catalogue.ModelEntry, signature: str, data: bytes) -> tuple[NumberReading | None, str | None]:
    """The number in an image file's bytes (``signature`` keys the model): (reading, None) or (None, problem)."""
    try:
        return read_number(data, recogniser=Recogniser(_entry.ckpt)), None
    except InputError as e:
        return None, str(e)


def recogniser() -> catalogue.ModelEntry | None:
    """The best recogniser, loaded (what ``predict --number`` uses)."""
    for entry in catalogue.recogniser_ranking(cached_models.available_models()):
        loaded = cached_models.load(entry)
        if loaded is not None:
            return loaded
    return None


def correction(entry: catalogue.ModelEntry, data: bytes) -> Correction | str:
    """This input's reading as corrected in this session (a new input starts from the model's reading),
    or the problem with the input."""
    mark = hashlib.sha256(data).hexdigest() + entry.signature
    current: Correction | None = st.session_state.get(KEY + "correction")
    if current is not None and current.mark == mark:
        return current
    reading, problem = read(entry, entry.signature, data)
    if reading is None:
        return problem or "No number found."
    current = Correction(mark, reading)
    st.session_state[KEY + "correction"] = current
    return current


def _change(how: str, i: int) -> None:
    """Button callback: join digit ``i`` with the next one, or cut it in two."""
    current: Correction = st.session_state[KEY + "correction"]
    entry = recogniser()
    if entry is None:
        return
    try:
        fix = merge if how == "join" else split
        current.reading = fix(current.reading, i, recogniser=Recogniser(entry.ckpt))
    except InputError as e:
        st.session_state[KEY + "flash"] = str(e)
        return
    current.version += 1


# -------------------------------------------------------------------------------------- display


def _font(size: int) -> ImageFont.ImageFont:
    path = font_dir() / "DejaVuSans-Bold.ttf"
    return ImageFont.truetype(str(path), size) if path.exists() else ImageFont.load_default(size)


def overlay(data: bytes, reading: NumberReading) -> Image.Image:
    """The picture with a box around each digit and its reading above it ("?" in orange)."""
    img = decode_image(data).convert("RGB")
    scale = min(1.0, SHOWN_WIDTH / img.width)
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BOX)
    size = max(12, round(0.3 * np.median([d.box[3] - d.box[1] for d in reading.digits]) * scale))
    width = max(2, round(size / 8))  # of the boxes' lines
    top = size + 6 + 2 * width  # room above the picture for the readings of digits at its top edge
    # The room continues the picture's own top edge (paper, or a canvas's black), not a white band.
    edge = np.asarray(img)[: max(1, img.height // 20)].reshape(-1, 3)
    canvas = Image.new("RGB", (img.width, img.height + top), tuple(int(v) for v in np.median(edge, axis=0)))
    canvas.paste(img, (0, top))
    draw = ImageDraw.Draw(canvas)
    font = _font(size)
    for d in reading.digits:
        colour = UNSURE_COLOUR if d.unsure else SURE
        x0, y0, x1, y1 = (round(v * scale) for v in d.box)
        x0, y0, x1, y1 = x0 - 2 * width, y0 - 2 * width, x1 + 2 * width, y1 + 2 * width  # around the ink, not on it
        draw.rectangle([x0, y0 + top, x1 - 1, y1 - 1 + top], outline=colour, width=width)
        text = d.shown
        tx = x0 + (x1 - x0) / 2
        draw.text((tx, y0 + top - 2), text, fill=colour, font=font, anchor="mb", stroke_width=2,
                  stroke_fill=(255, 255, 255))
    return canvas


def digit_card(i: int, reading: NumberReading, version: int) -> int | None:
    """One digit: what the model saw, its two best candidates, its true label, join and cut. Returns the label."""
    d = reading.digits[i]
    with st.container(border=True, width=200, key=f"{KEY}card_{i}"):
        st.image(figures.upscale(d.image, 2), output_format="PNG", width=56)
        (best, p1), (second, p2) = d.top(2)
        if d.digit is False:
            st.caption(f":orange[not a digit] (best guess {best})")
        elif d.unsure:
            st.caption(f":orange[{best} or {second}?] {percent(p1)} · {percent(p2)}")
        else:
            st.caption(f"**{best}** {percent(p1)} · {second} {percent(p2)}")
        label = st.selectbox("True digit", [None, *range(10)], key=f"{KEY}truth_{version}_{i}",
                             index=0 if d.unsure else 1 + d.label,
                             format_func=lambda v: "not known" if v is None else str(v),
                             help="What is written here: saved with the digit as its label.")
        with st.container(horizontal=True, gap="small"):
            if i + 1 < len(reading.digits):
                st.button("Join", key=f"{KEY}join_{version}_{i}", on_click=_change, args=("join", i),
                          icon=":material/join:", help="This box and the next are one digit.")
            st.button("Cut", key=f"{KEY}cut_{version}_{i}", on_click=_change, args=("cut", i),
                      icon=":material/content_cut:", help="This box holds two digits.")
    return label


def records(entry: catalogue.ModelEntry, name: str | None, reading: NumberReading, truths: list[int | None],
            source_image: Image.Image) -> list[Record]:
    """One archive record per digit: source "number", the number as corrected, the digit's crop as its original."""
    number = "".join(UNSURE if t is None else str(t) for t in truths)
    x = torch.from_numpy(np.stack([d.image for d in reading.digits])).unsqueeze(1)  # (N, 1, 28, 28)
    labels = torch.tensor([d.label for d in reading.digits])
    recons = inference.reconstruct(entry.model, x, labels).numpy()  # (N, 28, 28)
    return [
        Record(model=reading.model, source="number", label=d.label, confidence=d.confidence, sigma=0.0,
               input_image=d.image, recon_image=recon, original=source_image.crop(d.box), filename=name,
               true_label=truth, probs=tuple(d.probs), not_digit=d.not_digit, number=number)
        for d, truth, recon in zip(reading.digits, truths, recons, strict=True)
    ]


def save(entry: catalogue.ModelEntry, data: bytes, name: str | None, reading: NumberReading,
         truths: list[int | None]) -> None:
    """Each digit to the archive; the archive finds one saved before (same pixels and model) and
    writes the label onto it, so saving again after a correction or a failure stores nothing twice."""
    saved = []
    try:
        for record in records(entry, name, reading, truths, decode_image(data)):
            saved.append(archive_ui.get_archive().store(record).id)
    except RecordError as e:
        st.error(f"Not saved. {e}")
    except ArchiveError as e:
        st.error(f"Not saved ({len(saved)} of {len(reading.digits)} digits were). {e} Press Save again to retry.")
    else:
        st.success(f"Saved {len(saved)} digits to the archive: items " + ", ".join(f"#{i}" for i in saved) + ".")


def results(entry: catalogue.ModelEntry, data: bytes, name: str | None) -> None:
    found = correction(entry, data)
    if isinstance(found, str):
        st.info(found, icon=":material/draw:")
        return
    reading = found.reading
    st.metric("The number", reading.text, border=True,
              help=f"Read digit by digit by {entry.name}. “?”: a digit the model is unsure of (no digit reaches "
                   "60 %) or does not take for a digit.")
    flash = st.session_state.pop(KEY + "flash", None)
    if flash:
        st.warning(flash)
    st.image(overlay(data, reading), caption="Each digit as read; orange: shown as “?”.", output_format="PNG")
    st.markdown("**Each digit** · set what is written, join two boxes or cut one in two")
    with st.container(horizontal=True, gap="small", key=KEY + "cards"):
        truths = [digit_card(i, reading, found.version) for i in range(len(reading.digits))]
    if st.button(f"Save {len(truths)} digits to the archive", key=KEY + "save", icon=":material/bookmark_add:",
                 help="Each digit becomes an archive item labelled with its true digit (source “number”)."):
        save(entry, data, name, reading, truths)


def render() -> None:
    st.title("Read a number")
    st.caption("A postcode, a phone number, an amount: write it on one line, or upload a photo.")
    mode = st.segmented_control("Input", ["Draw", "Upload"], default="Draw", required=True, key=KEY + "mode",
                                label_visibility="collapsed")
    name = None
    if mode == "Draw":
        data, problem = canvas_input()
    else:
        data, name, problem = upload_input()
    entry = recogniser()
    if entry is None:
        st.info(cached_models.TRAIN_HELP.format(folder=checkpoint_dir()), icon=":material/model_training:")
        return
    if problem:
        st.error(problem, icon=":material/error:")
        return
    if data is None:
        st.info("Write a number on the black canvas, or switch to **Upload** for a photo of one.", icon=":material/draw:")
        return
    try:
        results(entry, data, name)
    except Exception:  # a bug must not show a traceback; the log has the details
        log.exception("reading a number failed")
        st.error("Something went wrong while reading this number. It has been logged; please try another one.")


if __name__ == "__main__":
    render()

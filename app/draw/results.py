"""The Draw page below its input widgets: everything that needs torch and a model.

The answer comes first, directly under (phone) or beside (desktop) the canvas: the recognised
digit (``app.draw.answer``), then whether the other architecture agrees, the "What did you
write?" control and this session's tally (``app.draw.tally``). Below: the noise slider, the
images, the charts (``app.draw.details``) and the archive controls (``app.draw.save``).
``app/views/draw.py`` imports this module only after the canvas is on screen, so on a cold start
the page is usable while torch loads.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app import cached_models
from app.draw import answer, details, inputs, reading, save, tally
from cvae_core.catalogue import ModelEntry
from cvae_core.images.preprocess import InputError

log = logging.getLogger(__name__)


@st.fragment
def results(entry: ModelEntry, pixels: np.ndarray, source: str, data: bytes, filename: str | None) -> None:
    """Everything that depends on the input, the answer first: it is on screen before the partner
    model is loaded and read and before the images and charts are drawn."""
    top = st.container()
    sigma = st.slider("Noise σ", 0.0, 0.5, 0.0, 0.05, key="draw_sigma",
                      help="Adds Gaussian noise with a fixed seed (the paper's robustness experiment).")
    x = inputs.noisy(pixels, sigma)
    mark = hashlib.sha256(data).hexdigest()
    try:
        mine = reading.recognise(entry, entry.signature, x)[0]
        with top:
            answer.show_answer(entry, mine)
            partner_line = st.empty()
            truth = tally.truth_control(mark)
            score = st.container()
        more = reading.details(entry, entry.signature, x)
        row = details.image_slots(4 if source == "upload" else 3)
        if source == "upload":
            details.show_upload(row[0], inputs.original_image(data))
            row = row[1:]
        details.show_model_view(row, entry, x, more)
        partner = cached_models.partner_model(entry)
        theirs = None
        if partner is not None:
            theirs, their_details = reading.read(partner, partner.signature, x)
            details.show_partner_view(row[2], partner, theirs, their_details)
        with partner_line.container():
            answer.show_partner_line(entry, mine, theirs, partner)
        readings = {entry.name: mine} | ({partner.name: theirs} if partner is not None else {})
        with score:
            tally.tally_line(mark, truth, readings)
        details.show_details(entry, mine, more)
    except Exception:  # a bug must not show a traceback; the log has the details
        log.exception("reading an input failed")
        st.error("Something went wrong while reading this input. It has been logged; please try another one.")
        return
    record = save.build_record(entry=entry, mine=mine, recon=more.recon, x=x, sigma=sigma, source=source, data=data,
                               filename=filename, truth=truth, partner=partner, theirs=theirs)
    save.archive_controls(entry, record, mark, source)


def drawn_input(canvas: Any) -> tuple[bytes | None, np.ndarray | None, str | None]:
    """The canvas's drawing: (PNG bytes, RGBA pixels, None), (None, None, message) when it cannot
    be read, or all None before anything is drawn."""
    if canvas is None or not (canvas.json_data or {}).get("objects"):
        return None, None, None
    try:
        data, rgba = inputs.canvas_image(canvas)
    except InputError as e:
        return None, None, str(e)
    return data, rgba, None


def render(left: DeltaGenerator, right: DeltaGenerator, mode: str, canvas: Any) -> None:
    """The page below its input widgets; ``canvas`` is the canvas's result in Draw mode (None while
    an Undo is on its way to the canvas), else None."""
    filename, rgba = None, None
    if mode == "Upload":
        with left:
            data, filename, problem = inputs.upload_widget()  # the uploader itself shows the file's name
    else:
        data, rgba, problem = drawn_input(canvas)
    with right:
        entry = cached_models.require_model()
        if entry is None:
            return
        if problem:
            st.error(problem, icon=":material/error:")
            return
        if mode == "Draw" and canvas is None:
            st.caption("Redrawing the canvas…")  # an Undo or Clear on its way to the canvas
            return
        if data is None:
            st.info("Draw a digit on the black canvas, or switch to **Upload** for a photo of one.",
                    icon=":material/draw:")
            return
        pixels, problem = inputs.prepare(data) if rgba is None else inputs.prepare_pixels(rgba)
        if pixels is None:
            if mode == "Draw":
                st.info(f"{problem}", icon=":material/draw:")
            else:
                st.error(problem, icon=":material/error:")
            return
        results(entry, pixels, "canvas" if mode == "Draw" else "upload", data, filename)

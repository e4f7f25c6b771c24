"""The Draw page's results: everything that needs torch and a model.

Recognition, the reconstructions by both architectures, the probability chart, the style row,
the noise slider, the latent map and the archive controls, plus the upload widget and the
decoding of the canvas. ``app/views/draw.py`` imports this module only after the canvas is on
screen, so on a cold start the page is usable while torch and the models load.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app import common, figures
from cvae_core.preprocess import MAX_BYTES, InputError

log = logging.getLogger(__name__)

MAX_NAME = 60  # characters of an uploaded file's name that are shown


def upload_input() -> tuple[bytes | None, str | None, str | None]:
    """(file bytes, filename, None) or (None, filename, message)."""
    upload = st.file_uploader(
        "A photo or scan of one digit", type=["png", "jpg", "jpeg"], key="draw_upload",
        max_upload_size=MAX_BYTES // (1024 * 1024),
        help="Dark ink on light paper is inverted automatically. PNG or JPEG, up to 5 MB.",
    )
    if upload is None:
        return None, None, None
    name = upload.name if len(upload.name) <= MAX_NAME else upload.name[: MAX_NAME - 1] + "…"
    if upload.size > MAX_BYTES:  # the server's limit is not enforced everywhere (e.g. AppTest)
        return None, name, f"The file is {upload.size / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB."
    return upload.getvalue(), name, None


def show_recognition(entry: common.ModelEntry, mine: common.Recognition, column: DeltaGenerator) -> None:
    with column:
        st.metric("Recognised digit", str(mine.label), delta=f"{mine.confidence:.1%} sure", delta_color="off",
                  delta_arrow="off", border=True,
                  help="p(label | input): the model's Bayes posterior over the ten labels.")
        threshold = common.ood_threshold(entry)
        if threshold is None:
            st.caption("No “unlike any digit” check: this model has no evaluation recorded.")
        elif mine.best_log_px < threshold:
            st.warning(
                f"This looks unlike any digit: its best log-likelihood, {mine.best_log_px:.0f} nats (as a "
                f"{int(mine.log_px.argmax())}), is below the threshold of {threshold:.0f} nats. "
                + common.ood_explanation(entry), icon=":material/help:",
            )


def show_partner(entry: common.ModelEntry, x: np.ndarray, column: DeltaGenerator) -> None:
    """The other architecture's reading of the same input (its model is loaded on first use)."""
    partner = common.partner_model(entry)
    if partner is None:
        column.caption("No model of the other architecture is available to compare with.")
        return
    theirs, their_details = common.read(partner, partner.signature, x)
    column.image(figures.upscale(their_details.recon, 4), output_format="PNG",
                 caption=f"by {partner.name}, which reads a {theirs.label} ({theirs.confidence:.0%})")


def show_details(entry: common.ModelEntry, mine: common.Recognition, more: common.Details) -> None:
    left, right = st.columns(2)
    left.plotly_chart(figures.probability_bar(mine.probs, mine.label), key="draw_probs",
                      config={"displayModeBar": False})
    with right:
        points = common.test_latents(entry, entry.signature, mine.label) if entry.latent_dim == 2 else None
        if points is not None:
            fig = figures.latent_map(*points, point=more.mean, std=more.std, height=300,
                                     title=f"Where you are among the test {mine.label}s")
            st.plotly_chart(fig, key="draw_where", config={"displayModeBar": False})
            st.caption("The cross is your digit's latent mean; the rings (1σ, 2σ) show its posterior's spread, "
                       "small when the model is sure of the style.")
        else:
            st.caption(f"The latent map is drawn for 2-D models; {entry.name} has {entry.latent_dim} dimensions.")
    st.markdown("**Your style as every digit**")
    st.image(figures.tile(more.restyled, 3, gap=4), output_format="PNG",
             caption="Your input encoded under the recognised label, then decoded as 0, 1, … 9 (left to right).")


def archive_controls(entry: common.ModelEntry, mine: common.Recognition, recon: np.ndarray, x: np.ndarray,
                     sigma: float, source: str, data: bytes, filename: str | None) -> None:
    archive = common.archive_ui()
    if archive is None:
        return
    record = {
        "model": entry.name, "source": source, "label": mine.label, "confidence": mine.confidence,
        "sigma": sigma, "input_image": x, "recon_image": recon,
        "original": common.original_image(data), "filename": filename,
    }
    archive.save_button(record, key="draw_save")
    if archive.autosave_enabled():
        # Each new drawing or upload is saved once per model; moving the noise slider is not a new input.
        done = st.session_state.setdefault("draw_autosaved", set())
        mark = (entry.signature, hashlib.sha256(data).hexdigest())
        if mark not in done:
            archive.autosave(record)
            done.add(mark)


@st.fragment
def results(entry: common.ModelEntry, pixels: np.ndarray, source: str, data: bytes, filename: str | None) -> None:
    """Everything that depends on the input, the recognised digit first: the metric is on screen
    before the images are encoded, the partner model is loaded and read, and the charts are drawn."""
    sigma = st.slider("Noise σ", 0.0, 0.5, 0.0, 0.05, key="draw_sigma",
                      help="Adds Gaussian noise with a fixed seed (the paper's robustness experiment).")
    x = common.noisy(pixels, sigma)
    try:
        seen, recon, other, verdict = st.columns([1, 1, 1, 1.3])
        mine, more = common.read(entry, entry.signature, x)
        show_recognition(entry, mine, verdict)
        seen.image(figures.upscale(x, 4), caption="What the model sees (28×28)", output_format="PNG")
        recon.image(figures.upscale(more.recon, 4), caption=f"Reconstruction by {entry.name}", output_format="PNG")
        show_partner(entry, x, other)
        show_details(entry, mine, more)
    except Exception:  # a bug must not show a traceback; the log has the details
        log.exception("reading an input failed")
        st.error("Something went wrong while reading this input. It has been logged; please try another one.")
        return
    archive_controls(entry, mine, more.recon, x, sigma, source, data, filename)


def render(left: DeltaGenerator, right: DeltaGenerator, mode: str, canvas: Any) -> None:
    """The page below its input widgets; ``canvas`` is the canvas's result in Draw mode, else None."""
    filename, rgba, problem = None, None, None
    if mode == "Upload":
        with left:
            data, filename, problem = upload_input()
            if filename:
                st.text(filename)  # inert text: a name is never markdown or HTML
    else:
        data = None
        if (canvas.json_data or {}).get("objects"):
            try:
                data, rgba = canvas.image_bytes, common.canvas_pixels(canvas)
            except InputError as e:
                problem = str(e)
    with right:
        entry = common.require_model()
        if entry is None:
            return
        if problem:
            st.error(problem, icon=":material/error:")
            return
        if data is None:
            st.info("Draw a digit on the black canvas, or switch to **Upload** for a photo of one.",
                    icon=":material/draw:")
            return
        pixels, problem = common.prepare(data) if rgba is None else common.prepare_pixels(rgba)
        if pixels is None:
            if mode == "Draw":
                st.info(f"{problem}", icon=":material/draw:")
            else:
                st.error(problem, icon=":material/error:")
            return
        results(entry, pixels, "canvas" if mode == "Draw" else "upload", data, filename)

"""Draw & recognise: draw a digit or upload a photo of one; see what the model sees, its
reconstruction by both architectures, the recognised digit, your style as every digit, the
effect of noise, and where your digit sits in the latent space.

The input widgets rerun the page; everything that depends on the noise slider lives in one
fragment, and every model call is cached on the bytes of the 28x28 input.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from app import common, figures
from cvae_core.preprocess import MAX_BYTES, InputError

log = logging.getLogger(__name__)

CANVAS_SIDE = 280  # ten canvas pixels per MNIST pixel
MAX_NAME = 60  # characters of an uploaded file's name that are shown


def canvas_input() -> tuple[bytes | None, str | None]:
    """(PNG bytes of the drawing, None), or (None, message) for an empty or unreadable canvas."""
    stroke = st.slider("Stroke width", 6, 40, 20, key="draw_stroke", persist_state="session")
    result = st_canvas(
        stroke_width=stroke, stroke_color="#FFFFFF", background_color="#000000",
        width=CANVAS_SIDE, height=CANVAS_SIDE, drawing_mode="freedraw", return_image_data=True, key="draw_canvas",
    )
    st.caption("Light ink on dark, like MNIST. Undo and clear are in the canvas toolbar.")
    if not (result.json_data or {}).get("objects"):
        return None, None
    try:
        return common.canvas_png(result), None
    except InputError as e:
        return None, str(e)


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


def show_reading(entry: common.ModelEntry, partner: common.ModelEntry | None, x: np.ndarray) -> common.Reading:
    mine = common.read(entry, entry.signature, x)
    seen, recon, other, verdict = st.columns([1, 1, 1, 1.3])
    seen.image(figures.upscale(x, 4), caption="What the model sees (28×28)", output_format="PNG")
    recon.image(figures.upscale(mine.recon, 4), caption=f"Reconstruction by {entry.name}", output_format="PNG")
    if partner is not None:
        theirs = common.read(partner, partner.signature, x)
        other.image(figures.upscale(theirs.recon, 4), output_format="PNG",
                    caption=f"by {partner.name}, which reads a {theirs.label} ({theirs.confidence:.0%})")
    else:
        other.caption("No model of the other architecture is available to compare with.")
    with verdict:
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
    return mine


def show_details(entry: common.ModelEntry, mine: common.Reading) -> None:
    left, right = st.columns(2)
    left.plotly_chart(figures.probability_bar(mine.probs, mine.label), key="draw_probs",
                      config={"displayModeBar": False})
    with right:
        points = common.test_latents(entry, entry.signature, mine.label) if entry.latent_dim == 2 else None
        if points is not None:
            fig = figures.latent_map(*points, point=mine.mean, std=mine.std, height=300,
                                     title=f"Where you are among the test {mine.label}s")
            st.plotly_chart(fig, key="draw_where", config={"displayModeBar": False})
            st.caption("The cross is your digit's latent mean; the rings (1σ, 2σ) show its posterior's spread, "
                       "small when the model is sure of the style.")
        else:
            st.caption(f"The latent map is drawn for 2-D models; {entry.name} has {entry.latent_dim} dimensions.")
    st.markdown("**Your style as every digit**")
    st.image(figures.tile(mine.restyled, 3, gap=4), output_format="PNG",
             caption="Your input encoded under the recognised label, then decoded as 0, 1, … 9 (left to right).")


def archive_controls(entry: common.ModelEntry, mine: common.Reading, x: np.ndarray, sigma: float,
                     source: str, data: bytes, filename: str | None) -> None:
    archive = common.archive_ui()
    if archive is None:
        return
    record = {
        "model": entry.name, "source": source, "label": mine.label, "confidence": mine.confidence,
        "sigma": sigma, "input_image": x, "recon_image": mine.recon,
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
    sigma = st.slider("Noise σ", 0.0, 0.5, 0.0, 0.05, key="draw_sigma",
                      help="Adds Gaussian noise with a fixed seed (the paper's robustness experiment).")
    x = common.noisy(pixels, sigma)
    try:
        mine = show_reading(entry, common.partner_model(entry), x)
        show_details(entry, mine)
    except Exception:  # a bug must not show a traceback; the log has the details
        log.exception("reading an input failed")
        st.error("Something went wrong while reading this input. It has been logged; please try another one.")
        return
    archive_controls(entry, mine, x, sigma, source, data, filename)


def render() -> None:
    entry = common.require_model()
    st.title("Draw & recognise")
    left, right = st.columns([1, 1.8], gap="large")
    with left:
        mode = st.segmented_control("Input", ["Draw", "Upload"], default="Draw", required=True,
                                    key="draw_mode", persist_state="session")
        filename = None
        if mode == "Upload":
            data, filename, problem = upload_input()
            if filename:
                st.text(filename)  # inert text: a name is never markdown or HTML
        else:
            data, problem = canvas_input()
    with right:
        if problem:
            st.error(problem, icon=":material/error:")
            return
        if data is None:
            st.info("Draw a digit on the black canvas, or switch to **Upload** for a photo of one.",
                    icon=":material/draw:")
            return
        pixels, problem = common.prepare(data)
        if pixels is None:
            if mode == "Draw":
                st.info(f"{problem}", icon=":material/draw:")
            else:
                st.error(problem, icon=":material/error:")
            return
        results(entry, pixels, "canvas" if mode == "Draw" else "upload", data, filename)


if __name__ == "__main__":
    render()

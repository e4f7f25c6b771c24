"""The Draw page under the answer: the row of images (the upload, what the model sees, both
reconstructions), the probability of every label, the latent map for 2-D models and the input's
style as every digit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import streamlit as st
from PIL import Image
from streamlit.delta_generator import DeltaGenerator

from app import figures, latent_space
from app.draw import reading
from app.draw.answer import is_calibrated
from app.markdown import escape_markdown
from cvae_core.catalogue import ModelEntry

if TYPE_CHECKING:
    import plotly.graph_objects as go

UPLOAD_SIDE = 280  # the uploaded image is shown at most this many pixels wide or high
IMAGE_SIDE = 128  # pixels: each image of the row under the answer; the row wraps (two a row on a phone)


def image_slots(count: int) -> list[DeltaGenerator]:
    """``count`` places of ``IMAGE_SIDE`` pixels in a row that wraps when they do not fit."""
    row = st.container(horizontal=True, gap="small")
    return [row.container(width=IMAGE_SIDE) for _ in range(count)]


def show_upload(slot: DeltaGenerator, original: Image.Image | None) -> None:
    """The uploaded picture, made small: a phone photo is not sent back at full size."""
    if original is not None:
        shown = original.copy()
        shown.thumbnail((UPLOAD_SIDE, UPLOAD_SIDE))
        slot.image(shown, caption="Your upload", width="stretch")


def show_model_view(row: list[DeltaGenerator], entry: ModelEntry, x: np.ndarray, more: reading.Details) -> None:
    """What the model sees and its reconstruction, in the first two places of ``row``."""
    row[0].image(figures.upscale(x, 4), caption="What the model sees (28×28)", output_format="PNG", width="stretch")
    row[1].image(figures.upscale(more.recon, 4), caption=f"Reconstruction by {entry.name}", output_format="PNG",
                 width="stretch")


def show_partner_view(slot: DeltaGenerator, partner: ModelEntry, theirs: reading.Recognition,
                      their_details: reading.Details) -> None:
    """The other architecture's reconstruction, captioned with what it reads."""
    slot.image(figures.upscale(their_details.recon, 4), output_format="PNG", width="stretch",
               caption=f"by {partner.name}, which reads {theirs.answer}")


@st.cache_resource(max_entries=64, show_spinner=False)
def probability_figure(probs: np.ndarray, label: int, not_digit: float | None, calibrated: bool) -> go.Figure:
    """``figures.probability_bar``, built once per reading: the reruns of the same input (a save, a
    label, the noise slider back where it was) reuse it, shared and never changed
    (``st.plotly_chart`` sends a copy). Building it was about a sixth of the server's Python time
    per drawn digit."""
    return figures.probability_bar(probs, label, not_digit=not_digit, calibrated=calibrated)


def show_details(entry: ModelEntry, mine: reading.Recognition, more: reading.Details) -> None:
    """The probability of every label, for 2-D models the latent map with your digit on it, and
    (for a digit) your style as every digit: each at the full width of the column, titled in page
    text, so nothing is squeezed or cut off on a phone."""
    st.markdown("**The probability of each label**")
    st.plotly_chart(probability_figure(mine.probs, mine.label, mine.not_digit, is_calibrated(entry)),
                    key="draw_probs", config={"displayModeBar": False})
    points = latent_space.test_latents(entry, entry.signature, mine.label) if entry.latent_dim == 2 else None
    if points is not None:
        st.markdown(f"**Where your digit is among the test {mine.label}s**")
        st.plotly_chart(figures.latent_map(*points, point=more.mean, std=more.std, height=380),
                        key="draw_where", config={"displayModeBar": False})
        st.caption("The cross is where the model places the style of your digit; the rings show how far from "
                   "there it could be (one and two standard deviations): small rings, a style it is sure of.",
                   help="The cross is the posterior mean of the latent code under the recognised label; the solid "
                        "and dotted rings are the 1σ and 2σ ellipses of the posterior's spread (its standard "
                        "deviation per dimension).")
    else:
        st.caption(f"The latent map is drawn for 2-D models; {escape_markdown(entry.name)} has "
                   f"{entry.latent_dim} dimensions.")
    if mine.flagged:
        return  # a style is a digit's: there is none to draw as every digit
    st.markdown("**Your style as every digit**")
    st.image(figures.tile(more.restyled, 3, gap=4), output_format="PNG",
             caption="Your input encoded under the recognised label, then decoded as 0, 1, … 9 (left to right).")

"""Draw & recognise: draw a digit or upload a photo of one; see what the model sees, its
reconstruction by both architectures, the recognised digit, your style as every digit, the
effect of noise, and where your digit sits in the latent space.

This file draws the input widgets and imports nothing heavy; the results, which need torch and
a model, come from ``app.draw_results``, imported once the canvas has been sent. On a cold start
the canvas is on screen while torch loads (about 2.5 s of import here) instead of after it.
The input widgets rerun the page; everything that depends on the noise slider lives in one
fragment, and every model call is cached on the 28x28 input. The recognised digit is computed
and shown first; the partner model, the reconstructions and the charts follow it. A drawing
goes to preprocessing as the canvas's pixel array; an upload as its file bytes.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from streamlit_drawable_canvas import st_canvas

CANVAS_SIDE = 280  # ten canvas pixels per MNIST pixel


def canvas_input() -> Any:
    """The stroke-width control and the canvas; returns the canvas's result."""
    stroke = st.slider("Stroke width", 6, 40, 20, key="draw_stroke", persist_state="session")
    result = st_canvas(
        stroke_width=stroke, stroke_color="#FFFFFF", background_color="#000000",
        width=CANVAS_SIDE, height=CANVAS_SIDE, drawing_mode="freedraw", return_image_data=True, key="draw_canvas",
    )
    st.caption("Light ink on dark, like MNIST. Undo and clear are in the canvas toolbar.")
    return result


def render() -> None:
    st.title("Draw & recognise")
    left, right = st.columns([1, 1.8], gap="large")
    with left:
        mode = st.segmented_control("Input", ["Draw", "Upload"], default="Draw", required=True,
                                    key="draw_mode", persist_state="session")
        canvas = canvas_input() if mode == "Draw" else None
    from app import draw_results  # torch and the models: only now, with the canvas already sent

    draw_results.render(left, right, mode, canvas)


if __name__ == "__main__":
    render()

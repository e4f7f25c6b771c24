"""Draw & recognise: draw a digit or upload a photo of one; see the recognised digit at once,
then what the model sees, its reconstruction by both architectures, your style as every digit,
the effect of noise, and where your digit sits in the latent space.

The page draws the input widgets (``app.draw.canvas``, which imports nothing heavy); the results,
which need torch and a model, come from ``app.draw.results``, imported once the canvas has been
sent. On a cold start the canvas is on screen while torch loads (about 2.5 s of import here)
instead of after it.
"""

from __future__ import annotations

import streamlit as st

from app.draw import canvas


def render() -> None:
    st.title("Draw & recognise")
    left, right = st.columns([1, 1.3], gap="large")  # the left one fits the 280-pixel canvas beside the sidebar
    with left:
        mode = st.segmented_control("Input", ["Draw", "Upload"], default="Draw", required=True,
                                    key="draw_mode", persist_state="session", label_visibility="collapsed")
        if mode == "Draw":
            drawn = canvas.canvas_widget()
        else:
            drawn = None
            canvas.clear_canvas()  # the canvas is unmounted: back in Draw mode it starts empty, as it shows
    from app.draw import results  # torch and the models: only now, with the canvas already sent

    results.render(left, right, mode, drawn)


if __name__ == "__main__":
    render()

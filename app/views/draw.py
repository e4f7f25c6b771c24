"""Draw & recognise: draw a digit or upload a photo of one; see the recognised digit at once,
then what the model sees, its reconstruction by both architectures, your style as every digit,
the effect of noise, and where your digit sits in the latent space.

This file draws the input widgets and imports nothing heavy; the results, which need torch and
a model, come from ``app.draw_results``, imported once the canvas has been sent. On a cold start
the canvas is on screen while torch loads (about 2.5 s of import here) instead of after it.

The canvas's own toolbar shows only on hover, so touch screens never see it: visible Undo and
Clear buttons sit under the canvas. Clear mounts a fresh canvas (a new widget key); Undo redraws
the canvas from its last drawing minus the last stroke (``initial_drawing``, with a revision
number so that the same drawing twice is still a change), and the canvas sends the result back.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from streamlit_drawable_canvas import st_canvas

CANVAS_SIDE = 280  # ten canvas pixels per MNIST pixel
BACKGROUND = "#000000"
GENERATION = "draw_canvas_generation"  # bumped by Clear: a new canvas key
INITIAL = "draw_canvas_initial"  # the drawing Undo asked the canvas to show
OBJECTS = "draw_canvas_objects"  # the strokes on the canvas at the last run
UNDOING = "draw_canvas_undoing"  # strokes expected once the canvas has applied an Undo


def canvas_key() -> str:
    return f"draw_canvas_{st.session_state.get(GENERATION, 0)}"


def clear_canvas() -> None:
    st.session_state[GENERATION] = st.session_state.get(GENERATION, 0) + 1
    for key in (INITIAL, OBJECTS, UNDOING):
        st.session_state.pop(key, None)


def undo_stroke() -> None:
    objects = st.session_state.get(OBJECTS) or []
    if len(objects) <= 1:
        clear_canvas()
        return
    revision = (st.session_state.get(INITIAL) or {}).get("revision", 0) + 1
    st.session_state[INITIAL] = {"objects": objects[:-1], "revision": revision}
    st.session_state[UNDOING] = len(objects) - 1


def canvas_input() -> Any:
    """The canvas with Undo, Clear and the pen width under it; returns the canvas's result, or
    None while an Undo is on its way to the canvas (the result then still shows the old drawing)."""
    stroke = st.session_state.get("draw_stroke", 20)
    result = st_canvas(
        stroke_width=stroke, stroke_color="#FFFFFF", background_color=BACKGROUND,
        width=CANVAS_SIDE, height=CANVAS_SIDE, drawing_mode="freedraw", return_image_data=True,
        initial_drawing=st.session_state.get(INITIAL), key=canvas_key(),
    )
    objects = (result.json_data or {}).get("objects") or []
    st.session_state[OBJECTS] = objects
    with st.container(horizontal=True, gap="small", vertical_alignment="center"):
        st.button("Undo", key="draw_undo", icon=":material/undo:", on_click=undo_stroke, disabled=not objects,
                  help="Take back the last stroke.")
        st.button("Clear", key="draw_clear", icon=":material/delete:", on_click=clear_canvas, disabled=not objects,
                  help="Start again on an empty canvas.")
        with st.popover("Pen", icon=":material/edit:"):
            st.slider("Stroke width", 6, 40, 20, key="draw_stroke", persist_state="session")
    expected = st.session_state.pop(UNDOING, None)
    if expected is not None and len(objects) != expected:
        return None
    return result


def render() -> None:
    st.title("Draw & recognise")
    left, right = st.columns([1, 1.3], gap="large")  # the left one fits the 280-pixel canvas beside the sidebar
    with left:
        mode = st.segmented_control("Input", ["Draw", "Upload"], default="Draw", required=True,
                                    key="draw_mode", persist_state="session", label_visibility="collapsed")
        if mode == "Draw":
            canvas = canvas_input()
        else:
            canvas = None
            clear_canvas()  # the canvas is unmounted: back in Draw mode it starts empty, as it shows
    from app import draw_results  # torch and the models: only now, with the canvas already sent

    draw_results.render(left, right, mode, canvas)


if __name__ == "__main__":
    render()

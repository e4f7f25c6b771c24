"""The Draw page's canvas: a digit drawn with the mouse or a finger, with Undo, Clear and a pen width.

The canvas's own toolbar shows only on hover, so touch screens never see it: visible Undo and
Clear buttons sit under the canvas. Both work by redrawing the canvas that is already on screen
(``initial_drawing``, with a revision number so that the same drawing twice is still a change):
Undo with its last drawing minus the last stroke, Clear with nothing; the canvas sends the result
back. Clear never mounts a new canvas: a stroke begun just after the click would land on the old
canvas while the new one replaced it, and be lost. It may still land on the canvas before Clear
reaches it; then the canvas's next value holds the cleared strokes followed by the new ones, and
the new ones are put back (``CLEARED``).

A drawing is finished when it is cleared or the canvas is left for an upload; then, with "Save
automatically" on, it is saved (``app.archive_ui``, imported only then: it needs the archive).
This module imports nothing heavy: the canvas is on screen while torch loads.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from streamlit_drawable_canvas import st_canvas

CANVAS_SIDE = 280  # ten canvas pixels per MNIST pixel
BACKGROUND = "#000000"
GENERATION = "draw_canvas_generation"  # bumped when the canvas is unmounted (Upload): a new canvas key
INITIAL = "draw_canvas_initial"  # the drawing Undo or Clear asked the canvas to show
OBJECTS = "draw_canvas_objects"  # the strokes on the canvas at the last run
UNDOING = "draw_canvas_undoing"  # strokes expected once the canvas has applied an Undo or Clear
CLEARED = "draw_canvas_cleared"  # the strokes Clear took away, until the canvas has sent another drawing


def canvas_key() -> str:
    return f"draw_canvas_{st.session_state.get(GENERATION, 0)}"


def sent_objects() -> list | None:
    """The strokes in the drawing the canvas sent with this rerun (None before it sent any)."""
    state = st.session_state.get(canvas_key())
    drawing = (state or {}).get("drawing") if hasattr(state, "get") else None
    return ((drawing or {}).get("raw") or {}).get("objects")


def clear_canvas() -> None:
    """The canvas is unmounted (Upload): the drawing is finished, and Draw starts on a new canvas."""
    _finish_drawing()
    st.session_state[GENERATION] = st.session_state.get(GENERATION, 0) + 1
    for key in (INITIAL, OBJECTS, UNDOING, CLEARED):
        st.session_state.pop(key, None)


def _show(objects: list) -> None:
    """Ask the canvas on screen to show ``objects`` (and expect them back)."""
    revision = (st.session_state.get(INITIAL) or {}).get("revision", 0) + 1
    st.session_state[INITIAL] = {"objects": objects, "revision": revision}
    st.session_state[UNDOING] = len(objects)


def clear_drawing() -> None:
    """Clear: the drawing is finished; the same canvas is emptied."""
    _finish_drawing()
    cleared = sent_objects()
    st.session_state[CLEARED] = cleared if cleared is not None else st.session_state.get(OBJECTS) or []
    _show([])


def undo_stroke() -> None:
    objects = st.session_state.get(OBJECTS) or []
    if len(objects) <= 1:
        from app import archive_ui  # loaded already: a stroke was read

        archive_ui.abandon_drawing()
    _show(objects[:-1])


def _finish_drawing() -> None:
    from app import archive_ui  # imported here: the archive is not needed to show the canvas

    archive_ui.finish_drawing()


def _keep_strokes_drawn_after_clear() -> None:
    """A stroke drawn after Clear was pressed but before the canvas emptied lands on the old drawing:
    the canvas then sends the cleared strokes followed by the new ones. Put the new ones back."""
    cleared, sent = st.session_state.get(CLEARED), sent_objects()
    if cleared is None or sent is None or sent == cleared:
        return  # nothing new from the canvas yet
    st.session_state.pop(CLEARED)
    if len(sent) > len(cleared) and sent[: len(cleared)] == cleared:
        _show(sent[len(cleared) :])


def canvas_widget() -> Any:
    """The canvas with Undo, Clear and the pen width under it; returns the canvas's result, or
    None while an Undo or Clear is on its way to the canvas (the result then still shows the old
    drawing)."""
    _keep_strokes_drawn_after_clear()
    stroke = st.session_state.get("draw_stroke", 20)
    result = st_canvas(
        stroke_width=stroke, stroke_color="#FFFFFF", background_color=BACKGROUND,
        width=CANVAS_SIDE, height=CANVAS_SIDE, drawing_mode="freedraw", return_image_data=True,
        initial_drawing=st.session_state.get(INITIAL), key=canvas_key(),
    )
    objects = (result.json_data or {}).get("objects") or []
    expected = st.session_state.pop(UNDOING, None)
    waiting = expected is not None and len(objects) != expected  # Undo or Clear is on its way to the canvas
    shown = st.session_state[INITIAL]["objects"] if waiting else objects
    st.session_state[OBJECTS] = shown
    with st.container(horizontal=True, gap="small", vertical_alignment="center"):
        st.button("Undo", key="draw_undo", icon=":material/undo:", on_click=undo_stroke, disabled=not shown,
                  help="Take back the last stroke.")
        st.button("Clear", key="draw_clear", icon=":material/delete:", on_click=clear_drawing, disabled=not shown,
                  help="Start again on an empty canvas.")
        with st.popover("Pen", icon=":material/edit:"):
            st.slider("Stroke width", 6, 40, 20, key="draw_stroke", persist_state="session")
    return None if waiting else result

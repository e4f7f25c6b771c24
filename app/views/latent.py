"""Latent explorer: pick a digit, move through the latent space with one slider per dimension,
click the test-set map to jump there, see the manifold grid and interpolation strips.

Each section is a fragment, so a slider reruns only its own section; decodes are cached. For a
2-D model the sliders and the decoded digit are scrubbed in the browser (``app.scrub``): the
digit follows a slider without a server round trip, and the map is redrawn only when a slider
is released. Many-dimensional models keep Streamlit sliders, each move decoded on the server.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import common, figures, scrub

STEP = scrub.STEP
MAP_KEY = "latent_map"
SCRUB_KEY = "latent_scrub"


def slider_keys(entry: common.ModelEntry) -> list[str]:
    return [f"latent_z{i}" for i in range(entry.latent_dim)]


def move_to_clicked_point() -> None:
    """Callback of the map: put the first two sliders on the clicked test digit."""
    points = st.session_state[MAP_KEY].selection.points
    if points:
        for key, axis in (("latent_z0", "x"), ("latent_z1", "y")):
            on_grid = round(points[0][axis] / STEP) * STEP  # a value the slider can show
            st.session_state[key] = float(np.clip(round(on_grid, 2), -common.SPAN, common.SPAN))


def take_scrubbed_point() -> None:
    """Callback of the browser-side sliders: their released position becomes the page's z."""
    for i, value in enumerate(scrub.moved_to(SCRUB_KEY)):
        st.session_state[f"latent_z{i}"] = float(np.clip(round(value, 2), -common.SPAN, common.SPAN))


def reset_to_origin(keys: list[str]) -> None:
    for key in keys:
        st.session_state[key] = 0.0


def sliders_and_image(entry: common.ModelEntry, label: int, keys: list[str]) -> tuple[float, ...]:
    """Many dimensions: Streamlit sliders in an expander, each move decoded on the server."""
    controls, picture = st.columns([1.1, 2.6], gap="medium")
    with controls, st.expander(f"All {len(keys)} latent sliders", expanded=False):
        for i, key in enumerate(keys):
            st.slider(f"z{i}", -common.SPAN, common.SPAN, step=STEP, key=key, persist_state="session")
    z = tuple(float(st.session_state[key]) for key in keys)
    image = common.decode_point(entry, entry.signature, label, z)
    shown = ", ".join(f"{v:.2f}" for v in z[:2]) + ", …"
    picture.image(figures.upscale(image, 10), caption=f"A decoded {label} at z = ({shown})", output_format="PNG")
    controls.caption(f"The clickable map is drawn for 2-D models; {entry.name} has {entry.latent_dim} dimensions.")
    return z


@st.fragment
def explorer(entry: common.ModelEntry, label: int) -> None:
    keys = slider_keys(entry)
    for key in keys:
        st.session_state.setdefault(key, 0.0)
    if entry.latent_dim != 2:
        sliders_and_image(entry, label, keys)
        st.button("Back to the origin", key="latent_reset", on_click=reset_to_origin, args=(keys,),
                  icon=":material/my_location:")
        return
    z = tuple(float(st.session_state[key]) for key in keys)
    scrubbing, plane = st.columns([2.1, 1.6], gap="medium")
    with scrubbing:
        strips = common.decode_points(entry, entry.signature, label, scrub.strip_points(z))
        scrub.scrubber(key=SCRUB_KEY, z=z, label=label, strips=strips, on_change=take_scrubbed_point)
        st.button("Back to the origin", key="latent_reset", on_click=reset_to_origin, args=(keys,),
                  icon=":material/my_location:")
        st.caption("The sliders pick images decoded ahead for every slider position, so the digit follows "
                   "them at once; the map catches up when a slider is released.")
    with plane:
        every = st.toggle("All labels", key="latent_all_labels", persist_state="session",
                          help="Show the test digits of every label, coloured, instead of this label only.")
        points = common.test_latents(entry, entry.signature, None if every else label)
        if points is None:
            st.caption("This checkpoint stores no test-set latents to draw.")
            return
        fig = figures.latent_map(*points, point=z, span=common.SPAN, height=400,
                                 title="Test digits in latent space — click one to go there")
        st.plotly_chart(fig, key=MAP_KEY, on_select=move_to_clicked_point, selection_mode="points",
                        config={"displayModeBar": False})


@st.fragment
def manifold_section(entry: common.ModelEntry, label: int) -> None:
    st.subheader("Manifold")
    n = st.slider("Grid size n", 5, 25, 15, key="latent_grid_n", persist_state="session")
    grid = common.manifold(entry, entry.signature, label, n)
    factor = max(1, 640 // (n * grid.shape[-1]))
    others = "; the other dimensions are held at 0" if entry.latent_dim > 2 else ""
    st.image(figures.tile(grid, factor, gap=1), output_format="PNG",
             caption=f"{n}×{n} decoded {label}s for z₀ from −3 (left) to 3 (right) and z₁ from 3 (top) to −3 "
                     f"(bottom){others}. Inside the prior's bulk the digits are clear; far out they blur.")


def example_latent(entry: common.ModelEntry, label: int, index: int) -> tuple[float, ...]:
    """The stored latent mean of the ``index``-th test digit of ``label`` (the origin without stored latents)."""
    points = common.test_latents(entry, entry.signature, label)
    if points is None or not len(points[0]):
        return (0.0,) * entry.latent_dim
    z = points[0]
    return tuple(float(v) for v in z[index % len(z)])


@st.fragment
def interpolation_section(entry: common.ModelEntry, label: int) -> None:
    st.subheader("Interpolation")
    start, end, options = st.columns(3)
    steps = options.slider("Steps", 3, 15, 9, key="latent_interp_steps")
    same_style = options.toggle("Same style at both ends", value=True, key="latent_interp_same_style",
                                help="On: only the label changes, in the style of the first example. "
                                     "Off: the style moves from one test example to the other as well.")
    y0 = start.selectbox("From the digit", range(10), index=label, key="latent_interp_from")
    i0 = start.number_input("its test example", 1, 1000, 1, key="latent_interp_from_example",
                            help="Which test digit of that label gives the style (its stored latent mean).")
    y1 = end.selectbox("to the digit", range(10), index=(label + 1) % 10, key="latent_interp_to")
    i1 = end.number_input("its test example", 1, 1000, 2, key="latent_interp_to_example", disabled=same_style)
    z0 = example_latent(entry, y0, i0 - 1)
    z1 = z0 if same_style else example_latent(entry, y1, i1 - 1)
    strip = common.interpolation(entry, entry.signature, z0, z1, y0, y1, steps)
    st.image(figures.tile(strip, 3, gap=4), output_format="PNG",
             caption=f"From a {y0} to a {y1}: the label weights and the latent code move together, "
                     "in equal steps, left to right.")


def render() -> None:
    st.title("Latent explorer")
    entry = common.require_model()
    if entry is None:
        return
    st.caption(f"Model {entry.name}: a {entry.arch} CVAE with a {entry.latent_dim}-D latent space. "
               "Choose a digit, then move the sliders: the decoder draws that digit in the style at z.")
    label = st.segmented_control("Digit", list(range(10)), default=0, required=True, key="latent_label",
                                 persist_state="session")
    explorer(entry, label)
    st.divider()
    manifold_section(entry, label)
    st.divider()
    interpolation_section(entry, label)


if __name__ == "__main__":
    render()

"""Latent explorer: pick a digit, move through the latent space with one slider per dimension,
click the test-set map to jump there, see the manifold grid and interpolation strips.

Each section is a fragment, so a slider reruns only its own section; decodes are cached. For
every latent size the sliders and the decoded digit are scrubbed in the browser (``app.scrub``):
the digit follows a slider without a server round trip, and the server decodes ahead around the
new point (and, for a 2-D model, redraws the map) only when a slider is released. Many sliders
form a grid beside the digit; on a phone they scroll in a box under it, so the digit stays on
screen. "Random style" samples the prior, z ~ N(0, I); "Reset" goes back to the origin. For
many-dimensional models the manifold grid spans the principal plane of the chosen digit's test
latents (the two directions in which that digit's styles vary most), not the first two coordinates.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import cached_models, figures, latent_space, scrub
from cvae_core.catalogue import ModelEntry

STEP = scrub.STEP
MAP_KEY = "latent_map"
SCRUB_KEY = "latent_scrub"
LABEL_KEY = "latent_label"
PLANE_SPREAD = 2.5  # the principal-plane manifold spans this many standard deviations each way


def slider_keys(entry: ModelEntry) -> list[str]:
    return [f"latent_z{i}" for i in range(entry.latent_dim)]


def move_to_clicked_point() -> None:
    """Callback of the map: put the first two sliders on the clicked test digit."""
    points = st.session_state[MAP_KEY].selection.points
    if points:
        for key, axis in (("latent_z0", "x"), ("latent_z1", "y")):
            on_grid = round(points[0][axis] / STEP) * STEP  # a value the slider can show
            st.session_state[key] = float(np.clip(round(on_grid, 2), -latent_space.SPAN, latent_space.SPAN))


def scrub_key(entry: ModelEntry) -> str:
    """One scrubber per latent size: another size mounts sliders of its own."""
    return f"{SCRUB_KEY}_{entry.latent_dim}"


def take_scrubbed_point(key: str) -> None:
    """Callback of the browser-side sliders: their released position becomes the page's z."""
    for i, value in enumerate(scrub.moved_to(key)):
        st.session_state[f"latent_z{i}"] = float(np.clip(round(value, 2), -latent_space.SPAN, latent_space.SPAN))


def on_grid(value: float) -> float:
    """``value`` on the sliders' grid and range."""
    return float(np.clip(round(round(value / STEP) * STEP, 2), -latent_space.SPAN, latent_space.SPAN))


def reset_to_origin(keys: list[str]) -> None:
    for key in keys:
        st.session_state[key] = 0.0


def sample_prior(keys: list[str]) -> None:
    """A point drawn from the prior N(0, I), on the sliders' grid."""
    for key, value in zip(keys, np.random.default_rng().standard_normal(len(keys)), strict=True):
        st.session_state[key] = on_grid(float(value))


def point_buttons(keys: list[str]) -> None:
    with st.container(horizontal=True, gap="small"):
        st.button("Random style", key="latent_sample", on_click=sample_prior, args=(keys,),
                  icon=":material/casino:", help="A sample from the prior: z drawn from N(0, I), the distribution "
                                                 "the model learned to use for styles.")
        st.button("Reset", key="latent_reset", on_click=reset_to_origin, args=(keys,),
                  icon=":material/my_location:", help="Back to the origin, z = 0.")


def scrubbing(entry: ModelEntry, label: int, keys: list[str], z: tuple[float, ...]) -> None:
    """The decoded digit with its sliders (``app.scrub``), then the point buttons."""
    key = scrub_key(entry)
    scrub.scrubber(key=key, entry=entry, z=z, label=label, on_change=lambda: take_scrubbed_point(key))
    point_buttons(keys)
    after = ("the map catches up when a slider is released" if entry.latent_dim == 2 else
             f"the clickable map is drawn for 2-D models ({entry.name} has {entry.latent_dim} dimensions)")
    st.caption(f"The sliders pick images decoded ahead for every slider position, so the digit follows them at once; "
               f"{after}.")


@st.fragment
def explorer(entry: ModelEntry, label: int) -> None:
    keys = slider_keys(entry)
    for key in keys:
        st.session_state.setdefault(key, 0.0)
    z = tuple(float(st.session_state[key]) for key in keys)
    if entry.latent_dim != 2:
        scrubbing(entry, label, keys, z)
        return
    left, plane = st.columns([2.1, 1.6], gap="medium")
    with left:
        scrubbing(entry, label, keys, z)
    with plane:
        every = st.toggle("All labels", key="latent_all_labels", persist_state="session",
                          help="Show the test digits of every label, coloured, instead of this label only.")
        points = latent_space.test_latents(entry, entry.signature, None if every else label)
        if points is None:
            st.caption("This checkpoint stores no test-set latents to draw.")
            return
        st.caption("Test digits in latent space: click one to go there.")
        fig = figures.latent_map(*points, point=z, span=latent_space.SPAN, height=400)
        st.plotly_chart(fig, key=MAP_KEY, on_select=move_to_clicked_point, selection_mode="points",
                        config={"displayModeBar": False})


@st.cache_data(max_entries=32, show_spinner=False)
def principal_manifold(_entry: ModelEntry, signature: str, label: int, n: int) -> tuple[np.ndarray, str] | None:
    """An n x n grid (n, n, 28, 28) over the principal plane of ``label``'s test latents (their mean,
    +-PLANE_SPREAD standard deviations along the two main axes), and which dimensions lead each axis."""
    points = latent_space.test_latents(_entry, signature, label)
    if points is None or len(points[0]) < 3:
        return None
    z = points[0].astype(np.float64)
    centre = z.mean(0)
    _, singular, axes = np.linalg.svd(z - centre, full_matrices=False)  # rows of ``axes``: principal directions
    spread = singular[:2] / np.sqrt(len(z) - 1)  # standard deviation along each
    steps = np.linspace(-PLANE_SPREAD, PLANE_SPREAD, n)
    across, down = np.meshgrid(steps, steps[::-1])  # rows from the top: high to low on axis 2
    grid = centre + (across.reshape(-1, 1) * spread[0]) * axes[0] + (down.reshape(-1, 1) * spread[1]) * axes[1]
    images = latent_space.decode_uint8(_entry, label, grid)  # cached here, not again per point
    lead = [", ".join(f"z{i}" for i in np.argsort(-np.abs(axis))[:2]) for axis in axes[:2]]
    return images.reshape(n, n, *images.shape[1:]).astype(np.float32) / 255, f"axis 1 mostly {lead[0]}, axis 2 mostly {lead[1]}"


@st.fragment
def manifold_section(entry: ModelEntry, label: int) -> None:
    st.subheader("Manifold", help="Each picture is the decoder's drawing of one digit at one point of the latent "
                 "space. For 16-D models the grid lies on the principal plane of the test digits' latent means: the "
                 "plane of their two largest principal components, where their styles vary most.")
    n = st.slider("Grid size n", 5, 25, 15, key="latent_grid_n", persist_state="session")
    plane = principal_manifold(entry, entry.signature, label, n) if entry.latent_dim > 2 else None
    if plane is not None:
        grid, lead = plane
        caption = (f"{n}×{n} decoded {label}s along the two directions in which the test {label}s' styles vary "
                   f"most ({lead}), ±{PLANE_SPREAD:g} standard deviations around their average style.")
    else:
        grid = latent_space.manifold(entry, entry.signature, label, n)
        others = "; the other dimensions are held at 0" if entry.latent_dim > 2 else ""
        caption = (f"{n}×{n} decoded {label}s for z₀ from −3 (left) to 3 (right) and z₁ from 3 (top) to −3 "
                   f"(bottom){others}. Near the centre, where most codes lie, the digits are clear; far out they blur.")
    factor = max(1, 640 // (n * grid.shape[-1]))
    st.image(figures.tile(grid, factor, gap=1), output_format="PNG", caption=caption)


def example_latent(entry: ModelEntry, label: int, index: int) -> tuple[float, ...]:
    """The stored latent mean of the ``index``-th test digit of ``label`` (the origin without stored latents)."""
    points = latent_space.test_latents(entry, entry.signature, label)
    if points is None or not len(points[0]):
        return (0.0,) * entry.latent_dim
    z = points[0]
    return tuple(float(v) for v in z[index % len(z)])


@st.fragment
def interpolation_section(entry: ModelEntry, label: int) -> None:
    st.subheader("Interpolation", help="The decoder gets the digit as label weights (1 for the digit, 0 for the "
                 "others). Here those weights slide from one digit to the other while the latent code, the style, "
                 "moves between the two examples.")
    start, end, options = st.columns(3)
    steps = options.slider("Steps", 3, 15, 9, key="latent_interp_steps")
    same_style = options.toggle("Same style at both ends", value=True, key="latent_interp_same_style",
                                help="On: only the label changes, in the style of the first example. "
                                     "Off: the style moves from one test example to the other as well.")
    classes = entry.config.num_classes
    st.session_state.setdefault("latent_interp_from", label)
    st.session_state.setdefault("latent_interp_to", (label + 1) % classes)
    y0 = start.selectbox("From the digit", range(classes), key="latent_interp_from")
    i0 = start.number_input("its test example", 1, 1000, 1, key="latent_interp_from_example",
                            help="Which test digit of that label gives the style (its stored latent mean).")
    y1 = end.selectbox("to the digit", range(classes), key="latent_interp_to")
    i1 = end.number_input("its test example", 1, 1000, 2, key="latent_interp_to_example", disabled=same_style)
    z0 = example_latent(entry, y0, i0 - 1)
    z1 = z0 if same_style else example_latent(entry, y1, i1 - 1)
    strip = latent_space.interpolation(entry, entry.signature, z0, z1, y0, y1, steps)
    st.image(figures.tile(strip, 3, gap=4), output_format="PNG",
             caption=f"From a {y0} to a {y1}: the digit and the style change together, "
                     "in equal steps, left to right.")


def follow_label(classes: int) -> None:
    """A new digit: the interpolation starts from it (and goes to the next one)."""
    label = st.session_state[LABEL_KEY]
    st.session_state["latent_interp_from"] = label
    st.session_state["latent_interp_to"] = (label + 1) % classes


def render() -> None:
    st.title("Latent explorer")
    entry = cached_models.require_model()
    if entry is None:
        return
    st.caption(f"Model {entry.name}: a {entry.arch} CVAE with a {entry.latent_dim}-D latent space. "
               "Choose a digit, then move the sliders: the decoder draws that digit in the style at z.")
    classes = entry.config.num_classes
    label = st.segmented_control("Digit", list(range(classes)), default=0, required=True, key=LABEL_KEY,
                                 persist_state="session", on_change=follow_label, args=(classes,))
    explorer(entry, label)
    st.divider()
    manifold_section(entry, label)
    st.divider()
    interpolation_section(entry, label)


if __name__ == "__main__":
    render()

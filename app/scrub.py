"""The latent explorer's sliders and decoded digit, scrubbed in the browser (for 2-D models).

No server round trip is fast enough for a slider that follows the hand (Streamlit's own floor
is ~100-300 ms here), so the browser already holds the answer: for the current point z and label
the server decodes, with ``cvae_core``, one *strip* per latent dimension, the images with z_i at
every slider position and the other coordinates held (2 x 121 images, 190 KB as uint8). The
sliders and the picture live in this small component; moving slider i shows
``strips[i][position]`` at once. The slider values in ``st.session_state`` stay the source of
truth: a released slider sends its z back (``on_change``), the page stores it and recentres the
strips; a point set by the server (a click on the map, "Back to the origin") moves the sliders, while
the server's answers to the sliders' own moves (which may arrive after further moves) do not.
The picture is exact whenever z differs from the strips' centre in one coordinate at most,
which holds for one slider moved at a time. Arrow keys send z once they rest (``KEYS_SETTLE_MS``
in the script), not once per key press. The script and its CSS are ``scrub.js`` and ``scrub.css``
beside this file.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import numpy as np
import streamlit as st

from app.latent_space import SPAN

STEP = 0.05
POSITIONS = np.round(np.arange(-SPAN, SPAN + STEP / 2, STEP), 2)  # the 121 slider positions
SCALE = 10  # a 28x28 digit shown at 280x280

ASSETS = Path(__file__).parent
HTML = '<div class="scrub"></div>'
_component = st.components.v2.component(
    "cvae_latent_scrubber", html=HTML, css=(ASSETS / "scrub.css").read_text(encoding="utf-8"),
    js=(ASSETS / "scrub.js").read_text(encoding="utf-8"), isolate_styles=False,
)


def strip_points(z: tuple[float, ...]) -> np.ndarray:
    """(D * 121, D) float32: for each dimension i in turn, z with z_i at every slider position."""
    d, n = len(z), len(POSITIONS)
    points = np.tile(np.asarray(z, dtype=np.float32), (d * n, 1))
    for i in range(d):
        points[i * n : (i + 1) * n, i] = POSITIONS
    return points


def scrubber(*, key: str, z: tuple[float, ...], label: int, strips: np.ndarray, on_change: Callable[[], None]) -> None:
    """The sliders and the picture; ``strips`` is uint8 (D * 121, 28, 28) decoded at ``strip_points(z)``."""
    data = {"z": list(z), "label": label, "strips": base64.b64encode(strips.tobytes()).decode("ascii"),
            "count": len(POSITIONS), "span": SPAN, "step": STEP, "side": strips.shape[-1], "scale": SCALE}
    _component(key=key, data=data, default={"z": list(z)}, on_z_change=on_change)


def moved_to(key: str) -> tuple[float, ...]:
    """The z the browser sent last (call from ``on_change``)."""
    return tuple(float(v) for v in st.session_state[key]["z"])

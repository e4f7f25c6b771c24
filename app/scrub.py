"""The latent explorer's sliders and decoded digit, scrubbed in the browser, for any latent size.

No server round trip is fast enough for a slider that follows the hand (Streamlit's own floor
is ~100-300 ms here), so the browser already holds the answer: for the current point z and label
the server decodes, with ``cvae_core``, the images with one coordinate z_i at every slider
position and the others held, for every dimension i (D x 121 images: 242 for a 2-D model, 1,936
for a 16-D one), and sends them as one PNG sheet, a row per dimension (0.1 MB for 2-D, 0.4-0.6 MB
for 16-D). The sliders and the picture live in this small component; moving slider i shows the
sheet's cell (i, position) at once. The slider values in ``st.session_state`` stay the source of
truth: a released slider sends its z back (``on_change``), the page stores it and the server
decodes a new sheet around it; a point set by the server (a click on the map, "Reset") moves the
sliders, while the server's answers to the sliders' own moves (which may arrive after further
moves) do not. The picture is exact whenever z differs from the sheet's centre in one coordinate
at most, which holds for one slider moved at a time. Arrow keys send z once they rest
(``KEYS_SETTLE_MS`` in the script), not once per key press.

Why images decoded ahead rather than the decoder in the browser (onnxruntime-web): measured here,
a 16-D sheet is 0.4-0.6 MB and 70-90 ms of decoding for an MLP (conv decoders cost more), once per
released slider and cached; the browser then switches images with one ``drawImage``. The ONNX
route would add an npm build, an export command and a ~10 MB runtime to every visitor's first
load, for the same per-step speed.

On a phone the sliders sit in a box that scrolls under the digit, so the digit stays on screen
while any slider moves. The script and its CSS are ``scrub.js`` and ``scrub.css`` beside this file.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from app import latent_space
from cvae_core.catalogue import ModelEntry

STEP = 0.05
POSITIONS = np.round(np.arange(-latent_space.SPAN, latent_space.SPAN + STEP / 2, STEP), 2)  # the 121 positions
SCALE = 10  # a 28x28 digit shown at 280x280
PNG_LEVEL = 1  # zlib level of the sheet: level 6 saves ~10 % more bytes for twice the time

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


@st.cache_data(max_entries=32, show_spinner=False)  # 0.1 MB each for a 2-D model, 0.4-0.6 MB for 16-D
def sheet(_entry: ModelEntry, signature: str, label: int, z: tuple[float, ...]) -> str:
    """The images of ``strip_points(z)`` decoded under ``label``, as a PNG data URL: row i holds
    dimension i's 121 positions, left to right (``signature`` keys the cache)."""
    images = latent_space.decode_uint8(_entry, label, strip_points(z))  # (D * 121, 28, 28)
    d, n, side = len(z), len(POSITIONS), images.shape[-1]
    grid = images.reshape(d, n, side, side).transpose(0, 2, 1, 3).reshape(d * side, n * side)  # (D * 28, 121 * 28)
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG", compress_level=PNG_LEVEL)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def scrubber(*, key: str, entry: ModelEntry, z: tuple[float, ...], label: int, on_change: Callable[[], None]) -> None:
    """The sliders and the picture of ``entry``'s digit ``label`` around ``z``."""
    data = {"z": list(z), "label": label, "sheet": sheet(entry, entry.signature, label, z),
            "count": len(POSITIONS), "span": latent_space.SPAN, "step": STEP,
            "side": entry.config.image_size, "scale": SCALE}
    _component(key=key, data=data, default={"z": list(z)}, on_z_change=on_change)


def moved_to(key: str) -> tuple[float, ...]:
    """The z the browser sent last (call from ``on_change``)."""
    return tuple(float(v) for v in st.session_state[key]["z"])

"""The framework's floor: the app's two interactive loops with no model behind them.

    streamlit run benchmarks/floor_app.py

``python -m benchmarks`` runs this beside the real app and alternates trials between the two, so
the difference is what our models and pages add on top of Streamlit, the canvas component and the
browser on this machine. It has the same widgets as the app: the same canvas (same size, ink,
image data returned) feeding an ``st.metric`` labelled "Recognised digit", and a latent-style
slider inside an ``st.fragment`` that redraws a 280x280 image. The "recognised digit" here is
just the ink's share of the canvas, so the server does almost nothing.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

CANVAS_SIDE = 280  # as app/draw/canvas.py
IMAGE_SIDE = 28
UPSCALE = 10  # the latent page shows its 28x28 decode at 10x


@st.fragment
def slider_image() -> None:
    value = st.slider("z0", -3.0, 3.0, 0.0, 0.05, key="floor_z0")
    # A 28x28 pattern that differs for every slider value (so every move sends a new image).
    ramp = np.linspace(0.0, 1.0, IMAGE_SIDE, dtype=np.float32)
    image = np.outer(ramp, np.roll(ramp, round(value * 20)))  # (28, 28)
    big = np.kron(image, np.ones((UPSCALE, UPSCALE), dtype=np.float32))  # (280, 280)
    st.image(big, caption=f"z0 = {value:.2f}", clamp=True)


def main() -> None:
    st.set_page_config(page_title="Streamlit floor", layout="wide")
    result = st_canvas(
        stroke_width=20, stroke_color="#FFFFFF", background_color="#000000",
        width=CANVAS_SIDE, height=CANVAS_SIDE, drawing_mode="freedraw", return_image_data=True, key="floor_canvas",
    )
    if (result.json_data or {}).get("objects"):
        ink = float(result.image_data[..., 0].mean()) / 255.0  # (H, W, 4) RGBA
        st.metric("Recognised digit", str(int(ink * 100) % 10), delta=f"{ink:.2%} ink", delta_color="off")
    else:
        st.caption("Draw something.")
    slider_image()


main()

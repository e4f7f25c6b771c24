"""Prototype for issue 5's stretch target: latent slider -> image in under 50 ms.

    streamlit run benchmarks/scrub_app.py

No server round trip fits in 50 ms here (the floor app's slider alone takes ~100 ms), so the
browser must already hold the answer. For the current latent point z and label, the server
decodes, with ``cvae_core``, one *strip* per latent dimension: the images with z_i set to each
slider position (-3 to 3 in steps of 0.05, 121 images) and the other coordinates held, as
uint8. The sliders and the picture live in one small component; moving slider i shows image
``strips[i][position]`` at once, in the browser, with no model code there. The new z then goes
back to the server (``setStateValue``), whose fragment reruns to refresh the other axes' strips
in the background. The picture is exact whenever z differs from the strips' centre in at most
one coordinate, which holds for one slider moved at a time; after a quick move of a second
slider it is approximate for the few hundred ms the refresh takes.

Cost: 2 x 121 decodes per refresh for a 2-D model (190 KB), 16 x 121 for a 16-D one (1.5 MB).
``python -m benchmarks`` times its slider beside the app's and the floor's.
"""

from __future__ import annotations

import base64

import numpy as np
import streamlit as st
import torch

from cvae_core import inference
from cvae_core.checkpoints import Checkpoint, list_checkpoints, load_checkpoint

SPAN, STEP = 3.0, 0.05
POSITIONS = np.round(np.arange(-SPAN, SPAN + STEP / 2, STEP), 2)  # the 121 slider positions
SCALE = 10  # 28x28 shown at 280x280, like the app's latent page
KEY = "scrub"
POINT = "scrub_point"  # the z the strips are centred on

HTML = '<div class="scrub"></div>'
CSS = """
.scrub { display: flex; gap: 1.5rem; align-items: flex-start; font-family: sans-serif; }
.scrub .sliders { display: flex; flex-direction: column; gap: 0.4rem; min-width: 16rem; }
.scrub label { display: flex; gap: 0.6rem; align-items: center; }
.scrub input { flex: 1; }
.scrub canvas { image-rendering: pixelated; border-radius: 4px; }
"""
JS = """
const STATE = new WeakMap();

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector('.scrub');
  let s = STATE.get(root);
  if (!s) {
    s = { z: data.z.slice(), last: 0, frame: 0 };
    const sliders = document.createElement('div');
    sliders.className = 'sliders';
    s.inputs = data.z.map((v, i) => {
      const label = document.createElement('label');
      const input = document.createElement('input');
      Object.assign(input, { type: 'range', min: -data.span, max: data.span, step: data.step, value: v });
      input.setAttribute('aria-label', 'z' + i);
      const shown = document.createElement('span');
      shown.textContent = 'z' + i + ' ' + v.toFixed(2);
      input.addEventListener('input', () => {
        s.z[i] = Number(input.value); s.last = i;
        shown.textContent = 'z' + i + ' ' + s.z[i].toFixed(2);
        draw(s);
      });
      input.addEventListener('change', () => setStateValue('z', s.z.slice()));
      label.append(shown, input);
      sliders.append(label);
      return input;
    });
    s.canvas = document.createElement('canvas');
    s.canvas.width = s.canvas.height = data.side * data.scale;
    s.canvas.setAttribute('data-bench-image', '');
    s.small = document.createElement('canvas');
    s.small.width = s.small.height = data.side;
    root.append(sliders, s.canvas);
    STATE.set(root, s);
  }
  const raw = atob(data.strips);
  s.strips = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  Object.assign(s, { centre: data.z, side: data.side, span: data.span, step: data.step,
                     count: data.count });
  draw(s);
}

function draw(s) {
  const moved = s.z.map((v, i) => Math.abs(v - s.centre[i]) > 1e-6 ? i : -1).filter((i) => i >= 0);
  const axis = moved.length ? (moved.includes(s.last) ? s.last : moved[0]) : 0;
  const pos = Math.round((s.z[axis] + s.span) / s.step);
  const n = s.side * s.side;
  const offset = (axis * s.count + pos) * n;
  const image = new ImageData(s.side, s.side);
  for (let p = 0; p < n; p++) {
    const v = s.strips[offset + p];
    image.data[4 * p] = image.data[4 * p + 1] = image.data[4 * p + 2] = v;
    image.data[4 * p + 3] = 255;
  }
  s.small.getContext('2d').putImageData(image, 0, 0);
  const ctx = s.canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(s.small, 0, 0, s.canvas.width, s.canvas.height);
  s.canvas.setAttribute('data-exact', String(moved.length <= 1));
  s.canvas.setAttribute('data-frame', String(++s.frame));
}
"""

scrubber = st.components.v2.component("cvae_latent_scrubber", html=HTML, css=CSS, js=JS, isolate_styles=False)


@st.cache_resource(show_spinner=False)
def load_model() -> Checkpoint | None:
    """The app's default model: conv at latent 2, else any 2-D model, else the first checkpoint."""
    ckpts = [load_checkpoint(p) for p in list_checkpoints()]
    ranked = sorted(ckpts, key=lambda c: (c.config.latent_dim != 2, c.config.arch != "conv", c.path.stem))
    return ranked[0] if ranked else None


@st.cache_data(max_entries=256, show_spinner=False)
def strips(name: str, label: int, z: tuple[float, ...]) -> str:
    """Base64 of uint8 (D, 121, 28, 28): for each dimension i, z with z_i at every slider position."""
    model = load_model().model
    d, n = len(z), len(POSITIONS)
    points = torch.tensor(z, dtype=torch.float32).repeat(d * n, 1)  # (D*121, D)
    for i in range(d):
        points[i * n : (i + 1) * n, i] = torch.from_numpy(POSITIONS).float()
    images = inference.decode(model, points, torch.full((d * n,), label))  # (D*121, 28, 28)
    return base64.b64encode((images * 255 + 0.5).to(torch.uint8).numpy().tobytes()).decode("ascii")


def remember_point() -> None:
    st.session_state[POINT] = tuple(float(v) for v in st.session_state[KEY]["z"])


@st.fragment
def explorer(ckpt: Checkpoint, label: int) -> None:
    z = st.session_state.setdefault(POINT, (0.0,) * ckpt.config.latent_dim)
    data = {"z": list(z), "strips": strips(ckpt.path.stem, label, z), "count": len(POSITIONS),
            "span": SPAN, "step": STEP, "side": ckpt.config.image_size, "scale": SCALE}
    scrubber(key=KEY, data=data, default={"z": list(z)}, on_z_change=remember_point)


def main() -> None:
    st.set_page_config(page_title="Latent scrubbing prototype", layout="wide")
    ckpt = load_model()
    if ckpt is None:
        st.info("No checkpoint found: train one with python -m cvae_core.train.")
        return
    st.caption(f"{ckpt.path.stem}: the sliders pick pre-decoded images in the browser.")
    label = st.segmented_control("Digit", list(range(10)), default=0, required=True, key="scrub_label")
    explorer(ckpt, label)


main()

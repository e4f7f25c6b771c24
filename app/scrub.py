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
which holds for one slider moved at a time.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import numpy as np
import streamlit as st

from app.common import SPAN

STEP = 0.05
POSITIONS = np.round(np.arange(-SPAN, SPAN + STEP / 2, STEP), 2)  # the 121 slider positions
SCALE = 10  # a 28x28 digit shown at 280x280

HTML = '<div class="scrub"></div>'
CSS = """
.scrub { display: flex; gap: 1.5rem; align-items: flex-start; flex-wrap: wrap; }
.scrub .sliders { display: flex; flex-direction: column; gap: 0.6rem; min-width: 14rem; flex: 1; }
.scrub label { display: flex; flex-direction: column; gap: 0.2rem; font-size: 0.9rem; }
.scrub input { width: 100%; accent-color: var(--st-primary-color, #F5A623); }
.scrub figure { margin: 0; }
.scrub canvas { image-rendering: pixelated; border-radius: 4px; display: block; }
.scrub figcaption { font-size: 0.85rem; opacity: 0.7; margin-top: 0.3rem; }
"""
JS = """
const STATE = new WeakMap();

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector('.scrub');
  let s = STATE.get(root);
  if (!s) {
    s = { frame: 0, last: 0, served: null, sent: [] };
    const sliders = document.createElement('div');
    sliders.className = 'sliders';
    s.inputs = data.z.map((v, i) => {
      const label = document.createElement('label');
      const shown = document.createElement('span');
      const input = document.createElement('input');
      Object.assign(input, { type: 'range', min: -data.span, max: data.span, step: data.step });
      input.setAttribute('aria-label', 'z' + i);
      input.addEventListener('input', () => {
        s.z[i] = Number(input.value); s.last = i;
        draw(s);
      });
      input.addEventListener('change', () => { s.sent.push(s.z.join(',')); setStateValue('z', s.z.slice()); });
      label.append(shown, input);
      sliders.append(label);
      return { input, shown };
    });
    const figure = document.createElement('figure');
    s.canvas = document.createElement('canvas');
    s.canvas.width = s.canvas.height = data.side * data.scale;
    s.canvas.setAttribute('role', 'img');
    s.caption = document.createElement('figcaption');
    figure.append(s.canvas, s.caption);
    s.small = document.createElement('canvas');
    s.small.width = s.small.height = data.side;
    root.append(sliders, figure);
    STATE.set(root, s);
  }
  const raw = atob(data.strips);
  s.strips = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  Object.assign(s, { centre: data.z, label: data.label, side: data.side, span: data.span, step: data.step,
                     count: data.count });
  const key = data.z.join(',');
  const echo = s.sent.indexOf(key);
  if (echo >= 0) {  // the server recentred on a point these sliders sent: they may be further on already
    s.sent.splice(0, echo + 1);
  } else if (s.served !== key) {  // a point set by the server (first draw, map click, reset) moves the sliders
    s.sent = [];
    s.z = data.z.slice();
    s.inputs.forEach(({ input }, i) => { input.value = String(s.z[i]); });
  }
  s.served = key;
  draw(s);
}

function draw(s) {
  s.inputs.forEach(({ shown }, i) => { shown.textContent = 'z' + i + ' = ' + s.z[i].toFixed(2); });
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
  s.caption.textContent = 'A decoded ' + s.label + ' at z = (' + s.z.map((v) => v.toFixed(2)).join(', ') + ')';
  s.canvas.setAttribute('aria-label', s.caption.textContent);
  s.canvas.setAttribute('data-exact', String(moved.length <= 1));
  s.canvas.setAttribute('data-frame', String(++s.frame));
}
"""

_component = st.components.v2.component("cvae_latent_scrubber", html=HTML, css=CSS, js=JS, isolate_styles=False)


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

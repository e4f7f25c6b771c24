"""Digits drawn the way a visitor draws them: single strokes in canvas fractions, as a PNG like the
canvas's own (for the latency benchmark) or as page points for a mouse in Chromium; and any 28x28
digit as the value the canvas sends to the server (for the load client)."""

from __future__ import annotations

import base64
import io
import json
import random

import numpy as np

# Single-stroke digits in canvas fractions (x, y).
STROKES: dict[str, list[tuple[float, float]]] = {
    "1": [(0.52, 0.18), (0.50, 0.45), (0.48, 0.82)],
    "7": [(0.28, 0.22), (0.72, 0.22), (0.55, 0.50), (0.42, 0.82)],
    "0": [(0.5 + 0.2 * np.sin(t), 0.5 - 0.32 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 24)],
    "2": [(0.30, 0.32), (0.42, 0.20), (0.62, 0.22), (0.66, 0.38), (0.30, 0.80), (0.72, 0.80)],
}


def canvas_png(digit: str = "2", *, side: int = 280, width: int = 20) -> bytes:
    """A PNG like the one the app's canvas sends: white ink of ``width`` px on black, RGBA."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (side, side), (0, 0, 0, 255))
    points = [(x * side, y * side) for x, y in STROKES[digit]]
    ImageDraw.Draw(img).line(points, fill=(255, 255, 255, 255), width=width, joint="curve")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def stroke_points(box: dict[str, float], digit: str, rng: random.Random) -> list[tuple[float, float]]:
    """The digit's stroke in page pixels inside ``box`` (the canvas's bounding box), shifted and
    scaled a little so no two inputs are the same."""
    dx, dy, s = rng.uniform(-0.06, 0.06), rng.uniform(-0.06, 0.06), rng.uniform(0.85, 1.1)
    return [(box["x"] + box["width"] * (0.5 + s * (x - 0.5) + dx), box["y"] + box["height"] * (0.5 + s * (y - 0.5) + dy))
            for x, y in STROKES[digit]]


# The fields Fabric.js 7 writes for one freehand stroke (as streamlit-drawable-canvas 0.13 sends
# them from Chromium); ``canvas_value`` fills in the geometry.
FABRIC_PATH: dict[str, object] = {
    "lockMovementX": False, "lockMovementY": False, "lockRotation": False, "lockScalingX": False,
    "lockScalingY": False, "lockSkewingX": False, "lockSkewingY": False, "lockScalingFlip": False,
    "type": "Path", "version": "7.4.0", "originX": "center", "originY": "center", "fill": None,
    "stroke": "#FFFFFF", "strokeWidth": 20, "strokeDashArray": None, "strokeLineCap": "round",
    "strokeDashOffset": 0, "strokeLineJoin": "round", "strokeUniform": False, "strokeMiterLimit": 10,
    "scaleX": 1, "scaleY": 1, "angle": 0, "flipX": False, "flipY": False, "opacity": 1, "shadow": None,
    "visible": True, "backgroundColor": "", "fillRule": "nonzero", "paintFirst": "fill",
    "globalCompositeOperation": "source-over", "skewX": 0, "skewY": 0,
}


def canvas_value(pixels: np.ndarray, *, side: int = 280) -> str:
    """The value the Draw page's canvas sends for a drawing that looks like ``pixels`` (a 28x28
    uint8 digit, light ink on dark, e.g. an MNIST test digit): ``{"drawing": {"raw": <Fabric.js
    JSON>, "data": <PNG data URL>}}``. The PNG is the digit enlarged to the canvas (RGBA, opaque,
    as the canvas renders it on its black background); the JSON holds one stroke through the ink,
    row by row (the app reads the pixels; the JSON tells it there is a drawing of one stroke)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).resize((side, side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.convert("RGBA").save(buf, format="PNG")
    data = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    scale = side / pixels.shape[0]
    rows = [(float(np.average(np.arange(len(r)), weights=r)) * scale, y * scale)
            for y, r in enumerate(pixels.astype(np.float64)) if r.sum() > 0]
    rows = rows or [(side / 2, side / 2)]
    path = [["M", *rows[0]], *(["L", x, y] for x, y in rows[1:])]
    xs, ys = [p[0] for p in rows], [p[1] for p in rows]
    stroke = {**FABRIC_PATH, "left": (min(xs) + max(xs)) / 2, "top": (min(ys) + max(ys)) / 2,
              "width": max(xs) - min(xs), "height": max(ys) - min(ys), "path": path}
    raw = {"version": "7.4.0", "objects": [stroke], "background": "#000000"}
    return json.dumps({"drawing": {"raw": raw, "data": data}}, separators=(",", ":"))

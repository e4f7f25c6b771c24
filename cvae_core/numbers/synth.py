"""Handwritten numbers with known digits and boxes, for measuring the reader: seeded, made from
MNIST **test** digits only (the recogniser never trained on them), and from digits drawn as pen
strokes (``cvae_core.nondigits.render_points``).

    from cvae_core.numbers import synth
    for n in synth.numbers(mnist.test_images, mnist.test_labels, count=1000, seed=0):
        n.image, n.text, n.boxes, n.touching

Each number has 3 to 10 digits (``LENGTHS``), written at a random size, slant and baseline
(tilted, wobbling), each digit a little larger or smaller than the others; the gaps go from
overlapping (the digits touch) to wide. Most are then photographed: dark ink on uneven paper,
blur, sensor noise, 8-bit; some on ruled paper, some with specks of dirt. Pen-stroke numbers are
drawn as on the app's canvas (light on black) or photographed like the rest. Whether two
neighbouring digits touch is measured on the ink, not assumed from the gap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFilter

from cvae_core.nondigits import _polyline, render_points
from cvae_core.numbers.segment import Box

LENGTHS = tuple(range(3, 11))
PEN_SHARE = 0.25  # of the numbers, drawn as pen strokes
INK = 0.25  # a pixel of a digit with at least this much ink is part of its box


@dataclass(frozen=True)
class Synth:
    """One generated number with its truth."""

    image: np.ndarray  # (H, W) uint8: a photo (dark on light) or a canvas drawing (light on dark)
    text: str
    boxes: tuple[Box, ...]  # each digit's ink, x0, y0, x1, y1 (exclusive)
    touching: tuple[bool, ...]  # len(text) - 1 entries: digit i touches digit i + 1
    style: str  # "mnist" or "pen"


# ------------------------------------------------------------------------------------ pen digits


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> list[tuple[float, float]]:
    """Points on an ellipse from angle ``a0`` to ``a1`` degrees (0 right, 90 down: y grows downwards)."""
    steps = max(4, round(abs(a1 - a0) / 15))
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in np.linspace(a0, a1, steps + 1)]


# Pen skeletons in a unit box (x right, y down), one list of strokes per way of writing the digit.
PEN_DIGITS: dict[str, list[list[list[tuple[float, float]]]]] = {
    "0": [[_arc(0.5, 0.5, 0.45, 0.5, -90, 285)]],
    "1": [[[(0.5, 0.0), (0.5, 1.0)]], [[(0.35, 0.15), (0.6, 0.0), (0.6, 1.0)]]],
    "2": [[[*_arc(0.5, 0.28, 0.42, 0.28, 195, 380), (0.05, 1.0), (0.95, 1.0)]]],
    "3": [[_arc(0.45, 0.25, 0.42, 0.25, 200, 450) + _arc(0.45, 0.75, 0.48, 0.25, -90, 160)[1:]]],
    "4": [[[(0.65, 0.0), (0.05, 0.65), (0.95, 0.65)], [(0.7, 0.15), (0.7, 1.0)]],
          [[(0.1, 0.0), (0.05, 0.55), (0.9, 0.55)], [(0.75, 0.0), (0.75, 1.0)]]],
    "5": [[[(0.95, 0.0), (0.2, 0.0)], [(0.2, 0.0), (0.15, 0.45), *_arc(0.48, 0.7, 0.45, 0.3, -140, 150)]],
          [[(1.0, -0.2), (0.3, -0.2)], [(0.2, 0.05), (0.15, 0.45), *_arc(0.48, 0.7, 0.45, 0.3, -140, 150)]]],  # bar apart
    "6": [[[(0.8, 0.0), (0.35, 0.25), *_arc(0.5, 0.72, 0.42, 0.28, 200, 560)]]],
    "7": [[[(0.05, 0.0), (0.95, 0.0), (0.35, 1.0)]],
          [[(0.05, 0.05), (0.95, 0.0), (0.35, 1.0)], [(0.3, 0.5), (0.85, 0.5)]]],
    "8": [[_arc(0.5, 0.25, 0.36, 0.25, 90, 450) + _arc(0.5, 0.74, 0.46, 0.26, -90, 270)]],
    "9": [[[*_arc(0.5, 0.3, 0.44, 0.3, 0, 365), (0.94, 0.3), (0.85, 1.0)]]],
}
_PEN_SIDE = 64  # pen digits are drawn in a box this many pixels high


def pen_glyph(digit: str, rng: np.random.Generator, *, way: int | None = None) -> np.ndarray:
    """One digit drawn with a jittered hand (``way``: which of ``PEN_DIGITS[digit]``, else one at
    random): its ink (h, w) float32 in [0, 1], cropped."""
    ways = PEN_DIGITS[digit]
    strokes = ways[int(rng.integers(len(ways))) if way is None else way]
    aspect = rng.uniform(0.5, 0.75)
    margin = 8
    points = []
    for stroke in strokes:
        verts = np.asarray(stroke, dtype=np.float32) + rng.normal(0, 0.03, (len(stroke), 2)).astype(np.float32)
        verts = verts * np.array([aspect, 1.0], dtype=np.float32) * (_PEN_SIDE - 2 * margin) + margin
        points.append(_polyline(torch.from_numpy(verts), 24 * len(stroke)))
    width = torch.tensor([float(rng.uniform(0.07, 0.13) * _PEN_SIDE)])
    ink = render_points(torch.cat(points).unsqueeze(0), width, _PEN_SIDE)[0, 0].numpy()
    return _trim(ink)


def _trim(ink: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero((ink > 0.05).any(1)), np.flatnonzero((ink > 0.05).any(0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)


# ------------------------------------------------------------------------------------ placement


def _shape(glyph: np.ndarray, height: float, slant: float) -> np.ndarray:
    """The glyph scaled to ``height`` pixels (aspect kept) and slanted by ``slant`` (dx/dy, leaning right)."""
    h, w = glyph.shape
    nh = max(4, round(height))
    nw = max(1, round(w * nh / h))
    img = Image.fromarray(glyph, mode="F").resize((nw, nh), Image.Resampling.BILINEAR)
    extra = math.ceil(abs(slant) * nh)
    # Output (x, y) reads input (x + slant * y - shift, y): the top leans right for a positive slant.
    shift = slant * nh if slant > 0 else 0.0
    img = img.transform((nw + extra, nh), Image.Transform.AFFINE, (1, slant, -shift, 0, 1, 0),
                        resample=Image.Resampling.BILINEAR)
    return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)


def _gap(rng: np.random.Generator) -> float:
    """A gap between two digits, in digit heights: a quarter overlap or just touch, the rest
    from close to wide (mostly close, as people write)."""
    if rng.random() < 0.25:
        return float(rng.uniform(-0.2, 0.0))
    return float(0.04 + 0.8 * rng.random() ** 2)


def _compose(glyphs: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, list[Box], list[bool]]:
    """The glyphs written along a baseline: (ink (H, W) float32, boxes, touching)."""
    height = rng.uniform(24, 80)
    slant = rng.uniform(-0.35, 0.35)
    tilt = rng.uniform(-0.04, 0.04)  # the baseline's slope
    shaped = [_shape(g, height * rng.uniform(0.85, 1.15), slant + rng.normal(0, 0.05)) for g in glyphs]
    xs, x = [], 0.0
    for i, s in enumerate(shaped):
        if i:
            x += _gap(rng) * height
        xs.append(round(x))
        x += s.shape[1]
    wobble = np.cumsum(rng.normal(0, 0.04, len(glyphs))) * height
    bottoms = [round(xi * tilt + wobble[i]) for i, xi in enumerate(xs)]
    margin_x, margin_y = round(height * rng.uniform(0.2, 1.0)), round(height * rng.uniform(0.2, 0.7))
    left = margin_x - min(0, min(xs))
    top = margin_y + max(s.shape[0] - b for s, b in zip(shaped, bottoms, strict=True))
    width = left + max(xi + s.shape[1] for xi, s in zip(xs, shaped, strict=True)) + margin_x
    bottom_most = max(top + b for b in bottoms)
    canvas = np.zeros((bottom_most + margin_y, width), dtype=np.float32)
    placed = []
    for s, xi, b in zip(shaped, xs, bottoms, strict=True):
        y0, x0 = top + b - s.shape[0], left + xi
        region = canvas[y0 : y0 + s.shape[0], x0 : x0 + s.shape[1]]
        np.maximum(region, s, out=region)
        placed.append((x0, y0, s > INK))
    boxes, touching = [], []
    for x0, y0, m in placed:
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        boxes.append((x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1))
    for a, b in itertools.pairwise(placed):
        touching.append(_touch(a, b, canvas.shape))
    return canvas, boxes, touching


def _touch(a: tuple[int, int, np.ndarray], b: tuple[int, int, np.ndarray], shape: tuple[int, int]) -> bool:
    """Do two placed masks overlap or touch (8-neighbours)?"""
    full = np.zeros(shape, dtype=bool)
    x0, y0, m = a
    full[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]] = m
    grown = full.copy()
    grown[1:] |= full[:-1]
    grown[:-1] |= full[1:]
    grown[:, 1:] |= grown[:, :-1].copy()
    grown[:, :-1] |= grown[:, 1:].copy()
    x0, y0, m = b
    return bool((grown[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]] & m).any())


# ----------------------------------------------------------------------------------- appearance


def _ruled_lines(shape: tuple[int, int], boxes: list[Box], rng: np.random.Generator) -> np.ndarray:
    """One or two printed lines across the sheet: under the digits, through them or above."""
    h, w = shape
    height = float(np.median([b[3] - b[1] for b in boxes]))
    base = float(np.median([b[3] for b in boxes]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros(shape, dtype=np.float32)
    for _ in range(int(rng.integers(1, 3))):
        y = base + height * rng.choice([rng.uniform(0.0, 0.15), rng.uniform(-0.7, -0.3), rng.uniform(-1.3, -1.05)])
        slope = rng.uniform(-0.015, 0.015)
        thick = max(1.0, height * rng.uniform(0.02, 0.06))
        d = np.abs(yy - (y + slope * (xx - w / 2)))
        out = np.maximum(out, np.clip(thick / 2 + 0.5 - d, 0, 1) * rng.uniform(0.35, 0.8))
    return out


def _specks(shape: tuple[int, int], height: float, rng: np.random.Generator) -> np.ndarray:
    """A few dots of dirt, up to a twentieth of the digits' height across."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros(shape, dtype=np.float32)
    for _ in range(int(rng.integers(1, 9))):
        r = rng.uniform(0.6, max(1.0, 0.05 * height))
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        out = np.maximum(out, np.clip(r + 0.5 - np.hypot(yy - cy, xx - cx), 0, 1) * rng.uniform(0.5, 1.0))
    return out


def _photo(ink: np.ndarray, height: float, rng: np.random.Generator) -> np.ndarray:
    """Dark ink on unevenly lit paper, blurred, with sensor noise: (H, W) uint8."""
    h, w = ink.shape
    gy, gx = np.linspace(-1, 1, h)[:, None], np.linspace(-1, 1, w)[None, :]
    paper = rng.uniform(0.7, 0.95) + rng.uniform(-0.08, 0.08) * gx + rng.uniform(-0.08, 0.08) * gy
    picture = paper * (1 - rng.uniform(0.55, 0.9) * ink)
    img = Image.fromarray(np.rint(np.clip(picture, 0, 1) * 255).astype(np.uint8))
    if rng.random() < 0.6:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0) * height / 28))
    noisy = np.asarray(img, dtype=np.float32) / 255 + rng.normal(0, rng.uniform(0.0, 0.05), (h, w))
    return np.rint(np.clip(noisy, 0, 1) * 255).astype(np.uint8)


# ------------------------------------------------------------------------------------- numbers


def make_number(glyphs: list[np.ndarray], text: str, style: str, rng: np.random.Generator) -> Synth:
    """Write ``glyphs`` (ink crops, one per character of ``text``) as one number and photograph it."""
    ink, boxes, touching = _compose(glyphs, rng)
    height = float(np.median([b[3] - b[1] for b in boxes]))
    extra = np.zeros_like(ink)
    if rng.random() < 0.3:
        extra = np.maximum(extra, _ruled_lines(ink.shape, boxes, rng))
    if rng.random() < 0.4:
        extra = np.maximum(extra, _specks(ink.shape, height, rng))
    ink = np.maximum(ink, extra)
    if style == "pen" and rng.random() < 0.5:
        image = np.rint(np.clip(ink, 0, 1) * 255).astype(np.uint8)  # as the canvas draws it
    else:
        image = _photo(ink, height, rng)
    return Synth(image=image, text=text, boxes=tuple(boxes), touching=tuple(touching), style=style)


def numbers(test_images: np.ndarray | torch.Tensor, test_labels: np.ndarray | torch.Tensor, *, count: int,
            seed: int = 0, pen_share: float = PEN_SHARE, lengths: tuple[int, ...] = LENGTHS) -> Iterator[Synth]:
    """``count`` numbers, the same for the same seed: lengths in turn over ``lengths``, a share
    ``pen_share`` of them drawn as pen strokes, the rest made of the given MNIST test digits."""
    images = np.asarray(test_images)
    labels = np.asarray(test_labels)
    rng = np.random.default_rng(seed)
    for i in range(count):
        length = lengths[i % len(lengths)]
        if rng.random() < pen_share:
            text = "".join(str(d) for d in rng.integers(0, 10, length))
            glyphs = [pen_glyph(ch, rng) for ch in text]
            style = "pen"
        else:
            picks = rng.integers(0, len(images), length)
            text = "".join(str(int(labels[j])) for j in picks)
            glyphs = [_trim(images[j].astype(np.float32) / 255) for j in picks]
            style = "mnist"
        yield make_number(glyphs, text, style, rng)

"""Small image operations on float32 numpy arrays, for the MNIST treatment in ``preprocess``:
resampling, a Gaussian blur, robust statistics, a smooth background surface, connected
components, disk dilation, stroke width and bounding boxes. Each is written for the small
arrays of one digit (a few hundred pixels a side) and checked against its plain definition in
``tests/test_preprocess.py``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image


def resize(arr: np.ndarray, width: int, height: int, resample: Image.Resampling) -> np.ndarray:
    out = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F").resize((width, height), resample)
    return np.asarray(out, dtype=np.float32)


def fit_side(arr: np.ndarray, side: int, resample: Image.Resampling = Image.Resampling.BOX) -> np.ndarray:
    """Resample so that the longer side is ``side`` (area averaging when reducing)."""
    h, w = arr.shape
    f = side / max(h, w)
    return resize(arr, max(1, round(w * f)), max(1, round(h * f)), resample)


def blur(arr: np.ndarray) -> np.ndarray:
    """A small separable Gaussian (sigma 1 pixel) with edge padding."""
    k0, k1, k2 = np.float32(0.054), np.float32(0.244), np.float32(0.403)  # symmetric 5-tap kernel
    p = np.pad(arr, 2, mode="edge")
    h, w = arr.shape
    rows = k0 * (p[:, :w] + p[:, 4:]) + k1 * (p[:, 1 : w + 1] + p[:, 3 : w + 3]) + k2 * p[:, 2 : w + 2]  # (h+4, w)
    return k0 * (rows[:h] + rows[4:]) + k1 * (rows[1 : h + 1] + rows[3 : h + 3]) + k2 * rows[2 : h + 2]


def quantile(values: np.ndarray, q: float) -> float:
    """``np.quantile(values, q)`` (linear interpolation) by a partial sort: without its fixed
    overhead, which dominates on the small arrays used here."""
    flat = values.ravel()
    pos = q * (flat.size - 1)
    lo = int(pos)
    hi = min(lo + 1, flat.size - 1)
    part = np.partition(flat, (lo, hi))
    return float(part[lo]) + (float(part[hi]) - float(part[lo])) * (pos - lo)


def mad_sigma(values: np.ndarray) -> float:
    """Robust standard deviation (median absolute deviation, scaled for a normal law)."""
    return 1.4826 * quantile(np.abs(values - np.float32(quantile(values, 0.5))), 0.5)


def background(grey: np.ndarray) -> np.ndarray:
    """The 6 coefficients of a smooth surface through the paper (uneven lighting, vignetting, a
    tinted sheet); ``surface`` evaluates it.

    A quadratic in x and y is fitted to the medians of an 8x8 grid of blocks by iteratively
    re-weighted least squares, starting from the border (usually paper); blocks covered by ink
    are outliers and drop out, so thick strokes do not pull the surface up.
    """
    h, w = grey.shape
    gy, gx = max(1, min(8, h // 4)), max(1, min(8, w // 4))
    bh, bw = h // gy, w // gx
    blocks = grey[: gy * bh, : gx * bw].reshape(gy, bh, gx, bw).transpose(0, 2, 1, 3).reshape(gy, gx, -1)
    med = np.median(blocks, axis=2).ravel()
    design, edge = _block_design(gy, gx)
    fitted = np.full_like(med, quantile(med[edge], 0.5))
    coef = np.zeros(6)
    coef[0] = fitted[0]
    paper, used = edge, None  # the spread of the paper: the border's at first, then the blocks kept as paper
    for _ in range(4):
        res = med - fitted
        # Measured over all blocks, the spread would grow with the ink: a bold digit that covers
        # half the blocks let the surface bend up under it (a bold MNIST 8 read as "noise").
        inliers = np.abs(res) <= max(3.0 * mad_sigma(res[paper]), 0.02)
        count = int(inliers.sum())
        terms = 6 if count >= 12 else 3 if count >= 6 else 1
        if count < 1 or (used is not None and np.array_equal(inliers, used)):
            break  # no inliers, or the same as last time: the fit would not change
        used = paper = inliers
        coef = np.zeros(6)
        coef[:terms] = np.linalg.lstsq(design[inliers, :terms], med[inliers], rcond=None)[0]
        fitted = design @ coef
    return coef


@functools.cache
def _block_design(gy: int, gx: int) -> tuple[np.ndarray, np.ndarray]:
    """For a gy x gx grid of blocks: the quadratic's terms at the block centres (gy * gx, 6) and
    which blocks are on the border (gy * gx,). Read-only, shared between calls."""
    yy, xx = np.meshgrid((np.arange(gy) + 0.5) / gy - 0.5, (np.arange(gx) + 0.5) / gx - 0.5, indexing="ij")
    yy, xx = yy.ravel(), xx.ravel()
    design = np.stack([np.ones_like(xx), xx, yy, xx * xx, yy * yy, xx * yy], axis=1)
    edge = (np.abs(yy) == np.abs(yy).max()) | (np.abs(xx) == np.abs(xx).max())
    design.flags.writeable = edge.flags.writeable = False
    return design, edge


def surface(coef: np.ndarray, h: int, w: int, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
    """The fitted background over an h x w image (or its ``rows`` x ``cols`` window), float32.

    Coordinates are fractions of the image, so a fit made at one scale applies at any other.
    """
    y = ((np.arange(h)[rows] + 0.5) / h - 0.5)[:, None]
    x = ((np.arange(w)[cols] + 0.5) / w - 0.5)[None, :]
    c = coef
    # Separably: (terms in y alone) + (terms in x alone) + x * (the cross term's slope in y).
    in_y = (c[0] + c[2] * y + c[4] * y * y).astype(np.float32)  # (h, 1)
    in_x = (c[1] * x + c[3] * x * x).astype(np.float32)  # (1, w)
    return in_y + in_x + (c[5] * y).astype(np.float32) * x.astype(np.float32)


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected components: (labels, -1 off the mask; size of each label in pixels).

    Works on horizontal runs of ink (a few per row for a digit) with union-find.
    """
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = padded[:, 1:] - padded[:, :-1]  # +1 where a run starts, -1 just after it ends
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]  # exclusive; runs come out sorted by row, then column
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = np.searchsorted(rows, np.arange(h + 1)).tolist()
    starts_l, ends_l = starts.tolist(), ends.tolist()  # Python ints: fast in the loop below
    for r in range(1, h):
        i, i_end, j, j_end = first[r - 1], first[r], first[r], first[r + 1]
        while i < i_end and j < j_end:
            if starts_l[j] <= ends_l[i] and starts_l[i] <= ends_l[j]:  # touching, diagonals included
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            if ends_l[i] < ends_l[j]:
                i += 1
            else:
                j += 1
    roots = np.array([root(i) for i in range(len(rows))], dtype=np.int64)
    ids, run_label = np.unique(roots, return_inverse=True)
    sizes = np.bincount(run_label, weights=ends - starts, minlength=len(ids)).astype(np.int64)
    lengths = ends - starts
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    labels = np.full(h * w, -1, dtype=np.int64)
    labels[np.repeat(rows * w + starts, lengths) + offsets] = np.repeat(run_label, lengths)
    return labels.reshape(h, w), sizes


def disk_max(arr: np.ndarray, radius: int) -> np.ndarray:
    """Grey-level dilation by a disk (a round pen tip), on an array padded by ``radius``.

    Row by row of the disk: a horizontal running maximum of each half-width the disk has, then
    one shifted maximum per row, so the cost grows with the radius, not its square.
    """
    p = np.pad(arr, radius)
    h, w = p.shape
    q = np.pad(p, radius)  # (h + 2r, w + 2r)
    reach = [math.isqrt(radius * radius + radius - dy * dy) for dy in range(radius + 1)]  # half-width at row dy
    spans = [q]  # spans[a][:, j] = max of q[:, j : j + 2a + 1]
    for a in range(1, reach[0] + 1):
        spans.append(np.maximum(np.maximum(spans[a - 1][:, 1:-1], q[:, : -2 * a]), q[:, 2 * a :]))
    out = p.copy()
    for dy in range(-radius, radius + 1):
        a = reach[abs(dy)]
        out = np.maximum(out, spans[a][radius + dy : radius + dy + h, radius - a : radius - a + w])
    return out


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: ink mass over the stroke length, taken as half the boundary.

    The boundary is counted in pixel edges of the half-intensity mask; edges overcount a slanted
    boundary by 4/pi on average, hence the pi/4.
    """
    mask = ink > 0.5
    if not mask.any():
        return 0.0
    edges = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
    edges += 2 * (np.count_nonzero(mask[0]) + np.count_nonzero(mask[:, 0]))  # at the crop's rim
    length = max(edges * np.pi / 8.0, 1.0)
    return float(ink.sum()) / length



def bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(first row, last row + 1, first column, last column + 1) of a mask's pixels; None if empty."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def extent(mask: np.ndarray) -> int:
    box = bounds(mask)
    return 0 if box is None else max(box[1] - box[0], box[3] - box[2])


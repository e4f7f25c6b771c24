"""Find the digits of a handwritten number in one picture.

The picture's lighting and polarity are handled as a single digit's are (``cvae_core.images.preprocess``:
the paper's surface fitted and removed, the ink's side detected), then:

1. ``find_ink``: the ink above the noise, as a mask, with ruled lines taken out
   (``_remove_ruled_lines``: long straight bands of thin ink that run on alone between the
   digits; a stroke crossing a line keeps its pixels there);
2. ``find_marks``: connected pieces of ink; specks dropped; pieces that overlap across the
   writing joined, so that a 5 whose bar is detached or a broken 4 stays one mark. Every size is
   relative to the digits' own height, measured on the picture, never MNIST's margins or one
   digit size;
3. the recogniser decides (``Judge``: how confidently a mark reads as one digit, a calibrated
   probability that already leaves out "not a digit"). ``merge``: close neighbours, one of them
   weak, are joined when they read better as one digit. ``split``: a mark that is wide (for a
   digit, or next to this writing's usual digit), or does not read confidently whole, is cut where
   both halves read as digits and together beat it read whole. The candidate cuts
   (``candidate_cuts``) are the paths between the digits that cross the least ink, upright and
   along the writing's slant; the ways of dealing its pieces left and right; and, across a mark
   much wider than the writing's usual digit (two digits fused along a stroke, where no path
   between them is cheap), the cheapest paths near a few places across its middle. Widths are
   measured with the slant taken out (``Mark.upright_width``), and each reading is weighed by how
   likely a digit of that width is in this writing. Halves are cut again while they are wide.
   Flat marks that joined nothing (a dash, the stub of a line) are dropped.

Every mark comes out as a light-on-dark crop holding only its own ink (``Mark.crop``), for the
same MNIST treatment as a single digit. The picture is area-reduced to ``WORK_SIDE`` first and
at most ``MAX_DIGITS`` marks are read, so the cost is bounded whatever the input.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from cvae_core.images import imageops
from cvae_core.images.files import MAX_SIDE, InputError
from cvae_core.images.preprocess import MIN_CONTRAST, _lighting

MAX_DIGITS = 32  # digits in one number; more separate marks than this is refused
MAX_PIECES = 400  # separate pieces of ink: beyond this the picture is texture or noise, not a number
WORK_SIDE = 1600  # the picture is area-reduced to at most this many pixels on its longer side
MIN_SIDE = 8
SPECK = 0.2  # a piece smaller than this share of the digit height, both ways, is a speck
FLAT = 0.3  # a mark lower than this share of the digit height is a dash or the stub of a line
OVERLAP = 0.5  # pieces overlapping by this share of the narrower one's width are one mark
SPLIT_WIDTH = 0.65  # a mark this wide (in digit heights) may be touching digits
MULTI_WIDTH = 1.4  # a mark this wide (in digit heights) is taken to hold two digits or more...
WIDER = 1.4  # ...and one this many times as wide as the writing's usual digit may
NARROW = 0.35  # a mark narrower than this (in digit heights) may be a 1: not a usual digit width
CONFIDENT = 0.5  # a join reads as a digit at least this confidently...
HALF = 0.3  # ...and each half of a cut at least this (an unsure half is shown as "?")
KEEP = 0.8  # a mark read whole this confidently (and not wide) is not cut...
SPLIT_MARGIN = 0.25  # ...and one is cut only when its halves read this much better (a share of its reading)
WIDTH_FREE = 1.5  # a digit up to this many times the writing's usual digit's width is as likely as any...
WIDTH_SPREAD = 0.5  # ...beyond it less likely, falling off over this many usual widths (``_one_digit``)
SHORT = 0.75  # a mark shorter than this share of the digit height is worth less as a digit...
MERGE_GAP = 0.15  # ...and is joined to a neighbour this close (in digit heights) when that reads better
MIN_PART = 0.2  # each side of a cut is at least this wide (in digit heights)
CUTS = 4  # candidate cuts per mark (the paths crossing the least ink, upright or slanted)
GRID = (0.35, 0.45, 0.55, 0.65)  # cuts near these shares of a mark's width...
CORRIDOR = 0.08  # ...wandering at most this many digit heights from there
GRID_WIDER = 1.15  # ...for a mark this many times as wide as the writing's usual digit (or wide for a digit)
CENTRE = 2.0  # what a cut's distance from the middle of the mark costs (whole mark's width), in inked pixels
SIDESTEP = 0.3  # what a cut's step sideways costs, in inked pixels crossed
MAX_SLANT = 0.6  # |dx/dy| of the writing's slant
LINE_COVER = 0.5  # a ruled line is thin ink along this share of its length...
LINE_LENGTH = 2.0  # ...at least this many digit heights long (and half the writing's width)...
LINE_THICK = 0.25  # ...thin meaning no thicker than this share of a digit's height...
LINE_GAPS = 0.5  # ...and alone (between the digits) along at least this many digit heights
LINE_LIGHT = 0.75  # a line whose ink is below this (the writing's is 1) is printed lighter than the writing
LINE_SLOPES = np.linspace(-0.06, 0.06, 13)  # the slopes (dy/dx) at which ruled lines are looked for
PAD = 0.2  # the crop around a mark, as a share of its longer side

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)
Judge = Callable[[Sequence["Mark"]], list[float]]  # marks -> how confidently each reads as one digit


@dataclass(frozen=True)
class Ink:
    """The picture's ink at the working scale: light on dark, lighting removed."""

    ink: np.ndarray  # (h, w) float32 in [0, 1]
    mask: np.ndarray  # (h, w) bool: ink that may belong to digits (ruled lines removed)
    scale: float  # input pixels per working pixel
    size: tuple[int, int]  # the input's (width, height)


@dataclass(frozen=True, eq=False)
class Mark:
    """One candidate digit: its ink within its box (working pixels)."""

    box: Box
    mask: np.ndarray = field(repr=False)  # (y1 - y0, x1 - x0) bool
    pieces: int = 1  # connected pieces of ink it is made of

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    def upright_width(self, slant: float) -> float:
        """Its width with the writing's slant (dx/dy, leaning right) taken out: a slanted digit's
        box is wider than the digit."""
        rows = np.flatnonzero(self.mask.any(1))
        if rows.size == 0:
            return 0.0
        cols = np.arange(self.mask.shape[1])
        inked = self.mask[rows]
        left = np.where(inked, cols, self.mask.shape[1]).min(1)
        right = np.where(inked, cols, -1).max(1) + 1
        shift = slant * (rows - (self.mask.shape[0] - 1) / 2)  # rows above the middle lean right
        return float((right + shift).max() - (left + shift).min())

    @property
    def key(self) -> tuple[Box, bytes]:
        """Identity for caching a reading: the same ink in the same place reads the same."""
        return self.box, np.packbits(self.mask).tobytes()

    def crop(self, page: Ink) -> np.ndarray:
        """Its ink alone, light on dark, in a square with a margin: what ``prepare_array`` reads as a
        digit. The ink's soft edge (a pixel around the mask) is kept; other marks' ink is not."""
        x0, y0, x1, y1 = self.box
        h, w = page.mask.shape
        ry0, rx0, ry1, rx1 = max(y0 - 1, 0), max(x0 - 1, 0), min(y1 + 1, h), min(x1 + 1, w)
        own = np.zeros((ry1 - ry0, rx1 - rx0), dtype=bool)
        own[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0] = self.mask
        near = imageops.disk_max(own, 1)[1:-1, 1:-1]
        others = page.mask[ry0:ry1, rx0:rx1] & ~own
        ink = page.ink[ry0:ry1, rx0:rx1] * (near & ~others)
        side = round(max(ink.shape) * (1 + 2 * PAD))
        out = np.zeros((side, side), dtype=np.float32)
        top, left = (side - ink.shape[0]) // 2, (side - ink.shape[1]) // 2
        out[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
        return out

    def box_in(self, page: Ink) -> Box:
        """The box in the input's pixels."""
        w, h = page.size
        x0, y0, x1, y1 = (round(v * page.scale) for v in self.box)
        return max(0, x0), max(0, y0), min(w, max(x1, x0 + 1)), min(h, max(y1, y0 + 1))


# ------------------------------------------------------------------------------------- the ink


def working_copy(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """The picture checked for size and area-reduced to at most ``WORK_SIDE`` a side; (copy, scale)."""
    h, w = grey.shape
    if min(h, w) < MIN_SIDE:
        raise InputError(f"The image is {w}x{h} pixels; it needs to be at least {MIN_SIDE} pixels high and wide.")
    if max(h, w) > MAX_SIDE:
        raise InputError(f"The image is {w}x{h} pixels; the limit is {MAX_SIDE}x{MAX_SIDE}. Please crop or reduce it.")
    f = max(h, w) / WORK_SIDE
    if f > 1:
        grey = imageops.resize(grey, max(MIN_SIDE, round(w / f)), max(MIN_SIDE, round(h / f)), Image.Resampling.BOX)
    else:
        f = 1.0
    return np.clip(grey.astype(np.float32), 0.0, 1.0), f


def find_ink(grey: np.ndarray, size: tuple[int, int] | None = None) -> Ink:
    """A greyscale picture in [0, 1] (any polarity) -> its ink, with ruled lines removed. ``size``:
    the (width, height) of the picture ``grey`` was reduced from, if it was."""
    work, scale = working_copy(grey)
    scale *= 1.0 if size is None else size[0] / grey.shape[1]
    size = size or (grey.shape[1], grey.shape[0])
    h, w = work.shape
    light = _lighting(work)  # the paper's surface and the ink's polarity, as for one digit
    resid = work - imageops.surface(light.coef, h, w)
    ink = -resid if light.inverted else resid
    smooth = imageops.blur(ink)
    sigma = imageops.mad_sigma(smooth[:: max(1, h // 200), :: max(1, w // 200)])  # a sample is enough
    mask = smooth > max(4.0 * sigma, MIN_CONTRAST / 2)
    if not mask.any():
        raise _blank(sigma)
    level = imageops.quantile(ink[mask], 0.9)
    if level < MIN_CONTRAST:
        raise _blank(sigma)
    floor = min(2.0 * sigma, 0.5 * level)
    norm = np.clip((ink - floor) / (level - floor), 0.0, 1.0)
    mask &= norm > 0.15  # the faint rim that blurring adds is not a stroke
    mask = _remove_ruled_lines(mask, norm)
    return Ink(ink=norm.astype(np.float32), mask=mask, scale=scale, size=size)


def _blank(noise: float) -> InputError:
    if noise >= 0.04:
        return InputError("No number found: the image looks like noise or texture, with no clear strokes.")
    return InputError("No number found: the image is blank or nearly blank. Please write or upload a number.")


def _remove_ruled_lines(mask: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The mask without ruled lines. A ruled line is a straight band (a slope within
    ``LINE_SLOPES``), at least ``LINE_LENGTH`` digit heights long, where the ink is thin (no taller
    than ``LINE_THICK`` of a digit) along ``LINE_COVER`` of its length and runs on alone between
    the digits (``LINE_GAPS``): the bars of a row of 7s are thin too, but stop between the digits
    and have ink below them. A line's pixel is
    removed only where the ink above and below it is no thicker than the line, so a stroke
    crossing the line keeps its pixels there, and where the line is printed lighter than the
    writing, ink clearly darker than the line is kept too (a bar that lies along the line)."""
    h, w = mask.shape
    step = max(1, math.ceil(max(h, w) / 400))  # looked for on a copy of at most 400 pixels a side
    small = _any_pool(mask, step)
    sh, sw = small.shape
    cols = np.flatnonzero(small.any(0))
    if cols.size < 8:
        return mask
    extent = cols[-1] - cols[0] + 1
    height = _ink_height(small)  # the digits' height (in small pixels)
    thin = small & (_vertical_runs(small) <= max(2, LINE_THICK * height))
    xs = np.arange(sw)
    candidates: list[tuple[int, float, int]] = []  # (thin columns, slope, row at x = 0) in small pixels
    for slope in LINE_SLOPES:
        rows = np.arange(sh)[:, None] + np.rint(slope * xs).astype(int)[None, :]  # the band y = b + slope * x
        valid = (rows >= 0) & (rows < sh)
        rows = np.clip(rows, 0, sh - 1)
        straight = np.where(valid, thin[rows, xs[None, :]], False)  # (sh, sw): the thin ink, straightened
        everything = np.where(valid, small[rows, xs[None, :]], False)
        band = straight | np.roll(straight, -1, axis=0)  # a line may be two small pixels thick
        counts = band.sum(1)
        strokes = everything & ~straight  # ink that is not thin: the digits' bodies
        inked = np.vstack([np.zeros((1, sw), dtype=np.int64), np.cumsum(strokes, axis=0)])  # rows [0, r) by column
        reach = max(1, round(height / 2))
        for b in np.flatnonzero(counts >= max(LINE_LENGTH * height, 0.5 * extent)):
            on = np.flatnonzero(band[b])
            span = on[-1] - on[0] + 1
            # The columns without a digit's body within half a digit's height: the gaps between the digits.
            near = (inked[max(b - 1, 0)] - inked[max(b - 1 - reach, 0)]) + (inked[min(b + 3 + reach, sh)] - inked[min(b + 3, sh)])
            alone = band[b] & (near == 0)
            if counts[b] >= LINE_COVER * span and alone.sum() >= LINE_GAPS * height:
                candidates.append((int(counts[b]), float(slope), int(b)))
    found: list[tuple[float, int]] = []  # (slope, row at x = 0): the best of each cluster of candidates
    for _, slope, b in sorted(candidates, reverse=True):
        if all(abs(b - fb) + abs(slope - fs) * sw / 2 > 2 for fs, fb in found):
            found.append((slope, b))
    if not found:
        return mask
    out = mask.copy()
    runs = _vertical_runs(mask)
    yy = np.arange(h)[:, None]
    for slope, b in found:
        centre = (b + 1) * step + slope * (np.arange(w)[None, :] + 0.5)  # the band's middle row, full scale
        near = (np.abs(yy - centre) <= 1.5 * step + 1) & mask
        thick = float(np.median(runs[near])) if near.any() else 0.0
        line = near & (runs <= thick + max(2.0, 0.5 * thick))
        level = imageops.quantile(ink[line], 0.9) if line.any() else 1.0  # the line's core, not its soft edge
        if level < LINE_LIGHT:
            line &= ink <= level + 0.3 * (1.0 - level)  # clearly darker than the line: a stroke along it
        out &= ~line
    return out


def _any_pool(mask: np.ndarray, step: int) -> np.ndarray:
    if step == 1:
        return mask
    h, w = mask.shape
    padded = np.zeros((math.ceil(h / step) * step, math.ceil(w / step) * step), dtype=bool)
    padded[:h, :w] = mask
    return padded.reshape(padded.shape[0] // step, step, padded.shape[1] // step, step).any((1, 3))


def _ink_height(mask: np.ndarray) -> float:
    """The digits' height: the 90th percentile of the ink's vertical extent over the columns that
    have any (the columns a ruled line crosses alone are many, but short)."""
    rows = np.arange(mask.shape[0])[:, None]
    has = mask.any(0)
    if not has.any():
        return 0.0
    top = np.where(mask, rows, mask.shape[0]).min(0)[has]
    bottom = np.where(mask, rows, -1).max(0)[has]
    return float(np.percentile(bottom - top + 1, 90))


def _vertical_runs(mask: np.ndarray) -> np.ndarray:
    """For every ink pixel, the length of the vertical run of ink it belongs to (0 off the ink)."""
    h, w = mask.shape
    m = mask.astype(np.int32)
    down = np.zeros((h, w), dtype=np.int32)  # run length ending here, from above
    up = np.zeros((h, w), dtype=np.int32)  # run length starting here, going down
    down[0] = m[0]
    for y in range(1, h):
        down[y] = (down[y - 1] + 1) * m[y]
    up[-1] = m[-1]
    for y in range(h - 2, -1, -1):
        up[y] = (up[y + 1] + 1) * m[y]
    return np.where(mask, down + up - 1, 0)


# ----------------------------------------------------------------------------------- the marks


def find_marks(page: Ink) -> tuple[list[Mark], float]:
    """The candidate digits left to right, before any merge or split, and the digits' height
    (working pixels). Flat marks are kept for now: a detached bar may belong to a digit."""
    labels, sizes = imageops.components(page.mask)
    if len(sizes) == 0:
        raise _blank(0.0)
    if len(sizes) > MAX_PIECES:
        raise InputError(f"The image has more than {MAX_PIECES} separate marks: it looks like texture or noise, "
                         "not a written number. Please crop it to the number.")
    boxes = _boxes(labels, len(sizes))  # (n, 4) x0, y0, x1, y1
    heights, widths = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    big = sizes >= 0.1 * sizes.max()
    tall = float(np.percentile(heights[big], 75))
    keep = np.flatnonzero(np.maximum(heights, widths) >= SPECK * tall)
    groups = _overlapping(boxes, keep)
    marks = [_mark(labels, boxes, g) for g in groups]
    return sorted(marks, key=_centre), _digit_height(marks)


def _boxes(labels: np.ndarray, n: int) -> np.ndarray:
    ys, xs = np.nonzero(labels >= 0)
    lab = labels[ys, xs]
    out = np.empty((n, 4), dtype=np.int64)
    out[:, 0], out[:, 1] = xs.max() + 1, ys.max() + 1
    out[:, 2], out[:, 3] = 0, 0
    np.minimum.at(out[:, 0], lab, xs)
    np.minimum.at(out[:, 1], lab, ys)
    np.maximum.at(out[:, 2], lab, xs + 1)
    np.maximum.at(out[:, 3], lab, ys + 1)
    return out


def _overlapping(boxes: np.ndarray, keep: np.ndarray) -> list[list[int]]:
    """The kept pieces in groups: two pieces join when their columns overlap by ``OVERLAP`` of the
    narrower's width (a detached bar over its digit, the halves of a broken stroke)."""
    parent = {int(i): int(i) for i in keep}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(keep.tolist(), key=lambda i: boxes[i, 0])
    for a_pos, a in enumerate(order):
        for b in order[a_pos + 1 :]:
            if boxes[b, 0] >= boxes[a, 2]:
                break  # sorted by left edge: nothing further overlaps a
            overlap = min(boxes[a, 2], boxes[b, 2]) - boxes[b, 0]
            narrower = min(boxes[a, 2] - boxes[a, 0], boxes[b, 2] - boxes[b, 0])
            if overlap >= OVERLAP * narrower:
                ra, rb = root(a), root(b)
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _mark(labels: np.ndarray, boxes: np.ndarray, group: list[int]) -> Mark:
    x0, y0 = int(boxes[group, 0].min()), int(boxes[group, 1].min())
    x1, y1 = int(boxes[group, 2].max()), int(boxes[group, 3].max())
    mask = np.isin(labels[y0:y1, x0:x1], group)
    return Mark(box=(x0, y0, x1, y1), mask=mask, pieces=len(group))


def _digit_height(marks: list[Mark]) -> float:
    """The digits' typical height: the median over the marks at least half as tall as the tallest."""
    heights = np.array([m.height for m in marks], dtype=np.float64)
    return float(np.median(heights[heights >= 0.5 * heights.max()]))


def _slant(marks: list[Mark], height: float) -> float:
    """The writing's slant dx/dy (positive leaning right), the median over marks the width of one digit."""
    slants = []
    for m in marks:
        if m.width >= SPLIT_WIDTH * height:
            continue
        ys, xs = np.nonzero(m.mask)
        vy = float(ys.var())
        if vy > 0:
            slants.append(-float(((xs - xs.mean()) * (ys - ys.mean())).mean()) / vy)  # leaning right: > 0
    return float(np.clip(np.median(slants), -MAX_SLANT, MAX_SLANT)) if slants else 0.0


# ---------------------------------------------------------------------------------- the splits


def _sub(mark: Mark, keep: np.ndarray, pieces: int) -> Mark | None:
    """The part of ``mark`` where ``keep`` (its box's shape) holds, trimmed to its ink; None if empty."""
    m = mark.mask & keep
    box = imageops.bounds(m)
    if box is None:
        return None
    r0, r1, c0, c1 = box
    x0, y0 = mark.box[0], mark.box[1]
    return Mark(box=(x0 + c0, y0 + r0, x0 + c1, y0 + r1), mask=m[r0:r1, c0:c1], pieces=pieces)


def _cut_paths(mask: np.ndarray, height: float, slant: float, least: float, *, near: float | None = None
               ) -> list[tuple[float, np.ndarray]]:
    """Paths from the top of a mark to its bottom that cross the least ink: for each row, the column
    where the cut passes (the left part is ``x < path[y]``). Found by dynamic programming on the
    mark straightened along the slant, a sideways step costing ``SIDESTEP`` of an inked pixel, so a
    cut may weave between two digits that lean over each other; the ``CUTS`` cheapest that end
    apart, each leaving ``least`` pixels on either side, with their cost. With ``near`` (a column
    of the straightened mark), the one cheapest path within ``CORRIDOR`` digit heights of it."""
    h, w = mask.shape
    off = np.rint(slant * (np.arange(h) - (h - 1) / 2)).astype(int)  # the writing's lean, row by row
    pad = int(np.abs(off).max()) + 1
    wide = w + 2 * pad
    u = np.arange(wide)[None, :] - pad - off[:, None]  # (h, wide): the mark's column under each straightened one
    inside = (u >= 0) & (u < w)
    ink = np.zeros((h, wide), dtype=np.float32)
    ink[inside] = mask[np.nonzero(inside)[0], u[inside]]
    allowed = (u >= least / 2) & (u <= w - least / 2)
    if near is not None:
        allowed &= np.abs(np.arange(wide)[None, :] - pad - near) <= CORRIDOR * height
    cost = np.where(allowed, ink, np.inf)
    acc = cost[0].copy()
    back = np.zeros((h, wide), dtype=np.int8)
    for y in range(1, h):
        moves = np.stack([np.r_[np.inf, acc[:-1]] + SIDESTEP, acc, np.r_[acc[1:], np.inf] + SIDESTEP])  # from x-1, x, x+1
        pick = moves.argmin(0)
        back[y] = pick - 1
        acc = moves[pick, np.arange(wide)] + cost[y]
    ends = np.flatnonzero(np.isfinite(acc) & (u[-1] >= least) & (u[-1] <= w - least))
    # Equal ink, the cut nearer the middle first: a sliver off the edge is rarely a digit.
    rank = acc + CENTRE * np.abs(u[-1] - w / 2) / max(w, 1)
    chosen: list[int] = []
    for e in ends[np.argsort(rank[ends], kind="stable")].tolist():
        if all(abs(e - c) >= 0.15 * height for c in chosen):
            chosen.append(e)
        if len(chosen) == (1 if near is not None else CUTS):
            break
    paths = []
    for e in chosen:
        col = np.empty(h, dtype=np.int64)
        col[-1] = e
        for y in range(h - 1, 0, -1):
            col[y - 1] = col[y] + back[y, col[y]]
        paths.append((float(rank[e]), col - pad - off))
    return paths


def candidate_cuts(mark: Mark, height: float, slant: float, *, usual: float | None = None, asked: bool = False
                   ) -> list[tuple[Mark, Mark]]:
    """Ways to cut ``mark`` in two: along the paths that cross the least ink (``_cut_paths``; for a
    mark at least ``SPLIT_WIDTH`` digit heights wide without its slant, or any when a person
    ``asked``), upright and along the writing's slant; the cheapest near ``GRID`` shares of its
    width, along the slant, for a mark wide for a digit or ``GRID_WIDER`` times the ``usual``
    digit's width (two digits fused along a stroke have no cheap path between them); and by dealing its pieces
    left and right. Each side holds a tenth of the ink and ``MIN_PART`` digit heights (a quarter
    of the mark when asked)."""
    _h, w = mark.mask.shape
    upright = mark.upright_width(slant)
    out: list[np.ndarray] = []  # the left part of each cut, as a mask of the box
    if asked or upright >= SPLIT_WIDTH * height:
        xx = np.arange(w)[None, :]
        least = min(MIN_PART * height, w / 4) if asked else MIN_PART * height
        paths = [p for s in sorted({0.0, round(slant, 2)}) for p in _cut_paths(mark.mask, height, s, least)]
        out += [xx < path[:, None] for _, path in sorted(paths, key=lambda p: p[0])[:CUTS]]
        # Where two digits are fused along a stroke no path between them is cheap: the cheapest
        # near each of a few places across the middle of the mark, along the slant.
        if asked or upright >= MULTI_WIDTH * height or (usual is not None and upright >= GRID_WIDER * usual):
            s = round(slant, 2)
            out += [xx < path[:, None] for f in GRID for _, path in _cut_paths(mark.mask, height, s, least, near=f * w)]
    if 2 <= mark.pieces <= 6:
        labels, sizes = imageops.components(mark.mask)
        if len(sizes) <= 6:
            centres = [np.nonzero(labels == i)[1].mean() for i in range(len(sizes))]
            order = np.argsort(centres)
            out += [np.isin(labels, order[:k]) for k in range(1, len(order))]
    total = mark.mask.sum()
    cuts, seen = [], set()
    for left in out:
        a, b = _sub(mark, left, 1), _sub(mark, ~left, 1)
        if a is None or b is None or min(a.mask.sum(), b.mask.sum()) < 0.1 * total or (a.key, b.key) in seen:
            continue
        seen.add((a.key, b.key))
        cuts.append((a, b))
    return cuts


def _centre(mark: Mark) -> float:
    return (mark.box[0] + mark.box[2]) / 2


def union(a: Mark, b: Mark) -> Mark:
    """One mark of both."""
    x0, y0 = min(a.box[0], b.box[0]), min(a.box[1], b.box[1])
    x1, y1 = max(a.box[2], b.box[2]), max(a.box[3], b.box[3])
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for m in (a, b):
        mask[m.box[1] - y0 : m.box[3] - y0, m.box[0] - x0 : m.box[2] - x0] |= m.mask
    return Mark(box=(x0, y0, x1, y1), mask=mask, pieces=a.pieces + b.pieces)


class _Scores:
    """The judge's readings, asked for in batches and remembered by mark."""

    def __init__(self, judge: Judge, height: float) -> None:
        self.judge = judge
        self.height = height
        self.known: dict[int, float] = {}
        self.keep: list[Mark] = []  # the marks read, so that their ids stay theirs

    def ask(self, marks: Sequence[Mark]) -> None:
        new = [m for m in marks if id(m) not in self.known]
        if new:
            self.known.update(zip((id(m) for m in new), self.judge(new), strict=True))
            self.keep += new

    def __getitem__(self, mark: Mark) -> float:
        return self.known[id(mark)]

    def worth(self, mark: Mark) -> float:
        """Its reading, discounted when it is much shorter than the digits (a bar, a broken piece)."""
        return self.known[id(mark)] * min(1.0, mark.height / (SHORT * self.height))


def merge(marks: list[Mark], scores: _Scores) -> list[Mark]:
    """Neighbours joined where the recogniser reads them better as one digit: a detached bar, a
    broken stroke. Only close neighbours, one of them weak (not read confidently, or short), that
    together are narrower than ``MULTI_WIDTH`` digit heights; the best joins first, repeated while
    any helps."""
    h = scores.height
    for _ in range(MAX_DIGITS):
        pairs = []
        for a, b in itertools.pairwise(marks):
            weak = min(scores.worth(a), scores.worth(b)) < KEEP
            near = b.box[0] - a.box[2] <= MERGE_GAP * h and max(a.box[2], b.box[2]) - min(a.box[0], b.box[0]) <= MULTI_WIDTH * h
            if weak and near:
                pairs.append((a, b, union(a, b)))
        scores.ask([u for _, _, u in pairs])
        gains = [(scores.worth(u) - scores.worth(a) * scores.worth(b), i) for i, (a, b, u) in enumerate(pairs)
                 if scores[u] >= CONFIDENT]
        best = max(gains, default=None)
        if best is None or best[0] <= 0:
            return marks
        a, b, u = pairs[best[1]]
        marks = sorted([m for m in marks if m is not a and m is not b] + [u], key=_centre)
    return marks


def split(marks: list[Mark], scores: _Scores, slant: float) -> list[Mark]:
    """The marks with touching digits cut apart, by the recogniser's evidence (module docstring).

    A mark read confidently whole, not wide and not much wider than the writing's usual digit
    (``WIDER``) is left alone. For the others, every candidate cut is read in one call to the judge
    per round; a mark is cut when both halves read as digits (``HALF``; or are wide enough to hold
    more) and the product of their readings beats its own reading (by ``SPLIT_MARGIN`` unless it is
    wide), each reading
    weighed by how likely a digit of that width is in this writing (``_one_digit``: a mark twice
    the usual digit's width is less likely one digit than two); wide halves are looked at again in
    the next round."""
    height = scores.height
    usual = _usual_width(marks, scores, height, slant)
    done: list[Mark] = []
    open_ = list(marks)
    while open_:
        if len(done) + len(open_) > MAX_DIGITS:
            raise too_many(len(done) + len(open_))
        options = {id(m): [] if scores[m] >= KEEP and not _wide(m, height, slant) and m.upright_width(slant) < WIDER * usual
                   else candidate_cuts(m, height, slant, usual=usual) for m in open_}
        scores.ask([half for m in open_ for pair in options[id(m)] for half in pair])
        nxt: list[Mark] = []
        for m in open_:
            margin = 1.0 if _wide(m, height, slant) else 1.0 + SPLIT_MARGIN  # a wide mark's reading says little
            best, value = None, scores.worth(m) * _one_digit(m, usual, slant) * margin
            for pair in options[id(m)]:
                v = math.prod(_worth(half, scores, height, slant) * (1.0 if _wide(half, height, slant) else
                                                                    _one_digit(half, usual, slant)) for half in pair)
                if v > value and all(scores[half] >= HALF or _wide(half, height, slant) for half in pair):
                    best, value = pair, v
            if best is None:
                done.append(m)
            else:
                nxt += list(best)
        open_ = nxt
    return sorted(done, key=_centre)


def _usual_width(marks: list[Mark], scores: _Scores, height: float, slant: float) -> float:
    """The width of a digit in this writing: the median over the marks read confidently whole
    that are neither as narrow as a 1 nor wide for a digit (else the digit height, when there are none)."""
    widths = [w for m in marks if scores[m] >= KEEP and NARROW * height <= (w := m.upright_width(slant)) < MULTI_WIDTH * height]
    return float(np.median(widths)) if widths else height


def _one_digit(mark: Mark, usual: float, slant: float) -> float:
    """How likely a mark of this width is one digit of this writing: 1 up to ``WIDTH_FREE`` usual
    digits' width, falling off (a Gaussian in the excess, ``WIDTH_SPREAD`` of the usual width) beyond it."""
    excess = max(0.0, mark.upright_width(slant) / usual - WIDTH_FREE) / WIDTH_SPREAD
    return math.exp(-0.5 * excess**2)


def _wide(mark: Mark, height: float, slant: float) -> bool:
    """Wide enough to be two digits or more: its reading whole says little."""
    return mark.upright_width(slant) >= MULTI_WIDTH * height


def _worth(mark: Mark, scores: _Scores, height: float, slant: float) -> float:
    """What a half is worth to a cut: its reading, or for a half that may hold more digits, at
    least what a confident reading would be (it is split again in the next round)."""
    return max(scores.worth(mark), CONFIDENT) if _wide(mark, height, slant) else scores.worth(mark)


def too_many(n: int) -> InputError:
    return InputError(f"Found {n} separate marks; a number is read up to {MAX_DIGITS} digits. "
                      "Please crop the image to the number.")


@dataclass(frozen=True)
class Layout:
    """The digits' marks left to right, with the digits' height and the writing's slant (working pixels)."""

    marks: list[Mark]
    height: float
    slant: float


def segment(page: Ink, judge: Judge) -> Layout:
    """The digits of the picture left to right: marks found, joined and cut where the recogniser
    says so, flat marks that joined nothing dropped."""
    marks, height = find_marks(page)
    if len(marks) > 2 * MAX_DIGITS:
        raise too_many(len(marks))
    scores = _Scores(judge, height)
    scores.ask(marks)
    marks = merge(marks, scores)
    marks = [m for m in marks if m.height >= FLAT * height]
    if not marks:
        raise _blank(0.0)
    if len(marks) > MAX_DIGITS:
        raise too_many(len(marks))
    slant = _slant(marks, height)
    return Layout(split(marks, scores, slant), height, slant)

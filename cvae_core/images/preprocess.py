"""Any user image -> one 28x28 MNIST-style tensor, the way MNIST itself was made.

Decoding untrusted bytes is ``cvae_core.images.files`` (PNG and JPEG, checked before Pillow sees them);
this module turns the pixels into a digit, in the spirit of MNIST:

1. greyscale in [0, 1] from any mode (a large image box-reduced first, while still 8-bit); 16-bit
   keeps its range; alpha is composited onto a background that contrasts with the ink, so a digit
   drawn only in the alpha channel survives (``_luminance_and_alpha``, ``composite``);
2. ``_analysis_copy``: the size checked, then area-reduced to at most ``ANALYSIS_SIDE``;
3. ``_lighting``: uneven lighting removed (a smooth surface fitted to the paper) and polarity
   detected, so the digit is light on dark, on a copy of at most ``DETECT_SIDE`` pixels a side;
4. ``_find_ink``: ink found above the noise in connected pieces, specks dropped, blank or noisy
   images refused;
5. ``_cut_out``: the ink cut out at the analysis scale, for sharp edges;
6. ``_repair_strokes``: scaled to fit a 20x20 box keeping the aspect ratio, strokes thickened when
   they would be thinner than MNIST's at its scale (a pen line in a phone photo);
7. ``_centre_by_mass``: placed in 28x28 with its centre of mass where MNIST's sit, (14, 14),
   within a pixel of the middle (13.5, 13.5).

Every failure raises ``InputError`` whose message is meant for a person; for bad input nothing
else escapes, and every tensor returned is finite, (1, 1, 28, 28) and within [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from cvae_core.config import IMAGE_SIZE
from cvae_core.images import imageops
from cvae_core.images.files import MAX_BYTES, MAX_SIDE, InputError, decode_image, sniff

__all__ = [
    "BOX", "MAX_BYTES", "MAX_SIDE", "SIZE", "InputError", "Prepared", "composite", "decode_image", "prepare_array",
    "prepare_bytes", "prepare_image", "sniff",
]

SIZE = IMAGE_SIZE  # MNIST field
BOX = 20  # MNIST digits were scaled to fit 20x20, then centred by mass in 28x28
MIN_SIDE = 8
MAX_ASPECT = 20.0
ANALYSIS_SIDE = 320  # the image is area-reduced to this before the digit is cut out...
DETECT_SIDE = 112  # ...and to at most this (4x MNIST's field) by whole steps, to look for the ink
FINE = 5  # the digit is repaired and centred at 5x the output scale, then area-reduced
WORK_SIDE = BOX * FINE  # the ink crop is resampled to this for stroke repair
MASS_CENTRE = 14.0  # where MNIST's centres of mass sit (index coordinates; 13.5 is the middle)
TARGET_STROKE = 2.3  # typical MNIST stroke width in pixels of the 20x20 box (measured)
MIN_CONTRAST = 0.04  # ink must stand this far (of the full range) from the paper...
MIN_SNR = 6.0  # ...and this many noise standard deviations
MIN_EXTENT = 0.03  # the ink must span this fraction of the image's longer side
NOISE_SIGMA = 0.04  # a background this noisy makes "no digit" a "noise" message
MAX_PIECES = 12  # a digit is one to a few strokes; many separate pieces are a texture
_AVERAGEABLE = ("L", "LA", "RGB", "RGBA", "I", "F")  # Pillow modes whose pixels may be box-averaged
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's convert("L")


@dataclass
class Prepared:
    """A preprocessed digit: the model input and what it was made from."""

    tensor: Tensor  # (1, 1, 28, 28) float32 in [0, 1], light digit on dark
    inverted: bool  # the source was dark ink on light paper


# ------------------------------------------------------------------------ pixels to greyscale


def _luminance_and_alpha(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Greyscale in [0, 1] (float32) and alpha in [0, 1] or None, for any Pillow mode."""
    mode = img.mode
    if mode.startswith("I;16"):
        # Pillow's convert("L") would clip 16-bit values to 255; scale the full range instead.
        return np.asarray(img).astype(np.float32) / 65535.0, None
    if mode == "I":  # 32-bit integers, as some decoders give 16-bit greyscale
        return _unit_plane(np.asarray(img, dtype=np.int64), None), None
    if mode == "F":
        return _unit_plane(np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0), None), None
    has_alpha = "A" in mode or "a" in mode or "transparency" in img.info
    try:
        if has_alpha:
            if img.mode != "RGBA":
                img = img.convert("RGBA")  # also resolves a palette's or a colour key's transparency
            channel = img.getchannel("A")
            opaque = channel.getextrema()[0] == 255  # as a drawing canvas sends it: nothing to composite
            alpha = None if opaque else np.asarray(channel, dtype=np.float32) / 255.0
            return np.asarray(img.convert("L"), dtype=np.float32) / 255.0, alpha
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0, None
    except (ValueError, OSError) as e:
        raise InputError(f"Images in the {mode} colour mode are not supported ({e}).") from None


def composite(lum: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Flatten alpha onto a background that contrasts with the ink (dark ink -> white paper).

    A canvas exported with a transparent background keeps its digit even when the strokes and
    the background share one colour and only the alpha channel tells them apart.
    """
    if alpha is None or alpha.min() > 0.99:
        return lum
    if alpha.max() < 0.01:
        raise InputError("No digit found: the image is fully transparent. Please draw or upload a digit.")
    weights = alpha * (alpha > 0.5) if (alpha > 0.5).any() else alpha
    ink = float((lum * weights).sum() / max(float(weights.sum()), 1e-6))
    background = 1.0 if ink < 0.5 else 0.0
    return alpha * lum + (1.0 - alpha) * background


# --------------------------------------------------------------------------------- entry points


def prepare_array(arr: np.ndarray) -> Prepared:
    """An image array -> Prepared.

    Accepts (H, W) greyscale or (H, W, C) with C = 1 (grey), 2 (grey + alpha), 3 (RGB) or
    4 (RGBA, e.g. a drawing canvas); uint8, uint16, other integers, bool or float (in [0, 1],
    or [0, 255]). NaN or infinity, other shapes and other dtypes raise ``InputError``.
    """
    given = type(arr).__name__
    try:
        arr = np.asarray(arr)
    except (ValueError, TypeError):
        raise InputError(f"Expected an image array, got a {given} that is not one.") from None
    if arr.ndim == 0:
        raise InputError("Expected an image array, got nothing." if given == "NoneType" else f"Expected an image array, got a single {given} value.")
    if arr.dtype.kind not in "buif" or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
        raise InputError(f"Expected a greyscale or colour image array, got shape {arr.shape} of {arr.dtype}.")
    if arr.size == 0:
        raise InputError("The image is empty (0 pixels).")
    h, w = arr.shape[:2]
    if h > MAX_SIDE or w > MAX_SIDE:
        raise InputError(f"The image is {w}x{h} pixels; the limit is {MAX_SIDE}x{MAX_SIDE}.")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError("The image data contains invalid values (NaN or infinity).")
    if arr.dtype == np.uint8 and max(h, w) >= 2 * ANALYSIS_SIDE:  # a photo: reduced while still 8-bit
        arr = np.asarray(_reduce_early(Image.fromarray(arr[..., 0] if arr.shape[2:] == (1,) else arr)))
    # Channel by channel, so that a large array costs a few greyscale planes of memory, not more.
    planes = [_unit_plane(arr, c) for c in range(arr.shape[2])] if arr.ndim == 3 else [_unit_plane(arr, None)]
    lum = _LUMA[0] * planes[0] + _LUMA[1] * planes[1] + _LUMA[2] * planes[2] if len(planes) >= 3 else planes[0]
    alpha = planes[-1] if len(planes) in (2, 4) else None
    data = composite(lum.astype(np.float32), alpha)
    return _mnistify(data)


def _unit_plane(arr: np.ndarray, channel: int | None) -> np.ndarray:
    """One channel of a validated array as float32 in [0, 1], scaled by the array's dtype and range.

    The range is judged on the whole array (all channels), so RGBA channels share one scale.
    """
    plane = arr if channel is None else arr[..., channel]
    if arr.dtype.kind == "b":
        return plane.astype(np.float32)
    if arr.dtype == np.uint8:
        return plane * np.float32(1 / 255)  # float32, in one pass
    if arr.dtype == np.uint16:
        return plane.astype(np.float32) / 65535.0
    top = max(float(arr.max()), 0.0)
    integer = arr.dtype.kind in "iu"
    if top <= 1.0 and not (integer and 0.0 < top < 1.0):
        scale = 1.0  # floats in [0, 1], or a 0/1 integer mask
    elif top <= 255.0:
        scale = 255.0
    elif top <= 65535.0 and integer:
        scale = 65535.0
    else:
        scale = top
    return np.clip(plane.astype(np.float64) / scale, 0.0, 1.0).astype(np.float32)


def prepare_image(img: Image.Image) -> Prepared:
    """A decoded Pillow image of any mode -> Prepared."""
    if max(img.size) > MAX_SIDE:
        raise InputError(f"The image is {img.size[0]}x{img.size[1]} pixels; the limit is {MAX_SIDE}x{MAX_SIDE}.")
    return _mnistify(composite(*_luminance_and_alpha(_reduce_early(img))))


def _reduce_early(img: Image.Image) -> Image.Image:
    """A large image box-reduced by a whole factor, to between one and two ``ANALYSIS_SIDE``s,
    before its pixels are converted: a 4000-pixel photo then costs about what a 500-pixel one
    does. Modes whose values cannot be averaged (palettes, colour keys) and shapes that
    ``_mnistify`` refuses (its message gives the original size) are left as they are."""
    w, h = img.size
    f = max(w, h) // ANALYSIS_SIDE
    if f < 2 or img.mode not in _AVERAGEABLE or "transparency" in img.info:
        return img
    if min(w, h) // f < MIN_SIDE or max(w, h) / min(w, h) > MAX_ASPECT:
        return img
    if img.mode in ("LA", "RGBA"):  # averaged premultiplied: what comes out composites as the mean would
        return img.convert(img.mode[:-1] + "a").reduce(f).convert(img.mode)
    return img.reduce(f)


def prepare_bytes(data: bytes) -> Prepared:
    """The bytes of a PNG or JPEG file -> Prepared."""
    return prepare_image(decode_image(data))


# ---------------------------------------------------------------------- the MNIST treatment


def _mnistify(grey: np.ndarray) -> Prepared:
    """A greyscale image in [0, 1] -> the digit as MNIST has it (the stages in the module docstring)."""
    grey = _analysis_copy(grey)
    light = _lighting(grey)
    ink = _find_ink(light)
    crop = _cut_out(grey, light, ink)
    return Prepared(tensor=_centre_by_mass(_repair_strokes(crop, light.noise)), inverted=light.inverted)


def _analysis_copy(grey: np.ndarray) -> np.ndarray:
    """The image checked for a plausible size and shape, area-reduced to at most ``ANALYSIS_SIDE``."""
    h, w = grey.shape
    if min(h, w) < MIN_SIDE:
        raise InputError(f"The image is {w}x{h} pixels; it needs to be at least {MIN_SIDE}x{MIN_SIDE} to hold a digit.")
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise InputError(f"The image is {w}x{h} pixels, too long and thin to hold one digit.")
    if max(h, w) > ANALYSIS_SIDE:
        grey = imageops.fit_side(grey, ANALYSIS_SIDE)  # area averaging: a grey level in [0, 1] stays there
    return np.clip(grey.astype(np.float32), 0.0, 1.0)


@dataclass
class _Lighting:
    """The paper's fitted surface and noise, and which way the ink goes, from the coarse copy."""

    step: int  # the coarse copy's pixels are the means of step x step pixels of the analysis copy
    coef: np.ndarray  # the background surface (``imageops.surface``)
    noise: float  # robust standard deviation of the flattened paper
    inverted: bool  # dark ink on light paper
    ink: np.ndarray  # the coarse copy flattened, ink positive


def _lighting(grey: np.ndarray) -> _Lighting:
    """Flatten the lighting, then decide polarity: the ink is the side (darker or lighter than the
    paper) with more mass beyond the noise.

    The digit is looked for in a coarser copy (each pixel the mean of step x step) and cut out of
    the analysis copy, so the search costs a few times less and the cut keeps its sharp edges.
    """
    h, w = grey.shape
    step = max(1, min(math.ceil(max(h, w) / DETECT_SIDE), min(h, w) // MIN_SIDE))
    coarse = np.asarray(Image.fromarray(grey, mode="F").reduce(step)) if step > 1 else grey  # last boxes partial
    coef = imageops.background(coarse)
    resid = coarse - imageops.surface(coef, *coarse.shape)
    noise = imageops.mad_sigma(resid)
    t = max(3.0 * noise, 0.02)
    darker = float(np.maximum(-resid - t, 0).sum())
    lighter = float(np.maximum(resid - t, 0).sum())
    inverted = darker > lighter
    return _Lighting(step, coef, noise, inverted, -resid if inverted else resid)


@dataclass
class _Ink:
    keep: np.ndarray  # (coarse) mask of the pieces that make the digit
    level: float  # the ink's 90th percentile: what maps to 1


def _find_ink(light: _Lighting) -> _Ink:
    """The smoothed ink above the noise, in connected pieces large enough to matter; blank,
    noisy, scattered or tiny marks are refused with their own messages."""
    ink, noise = light.ink, light.noise
    smooth = imageops.blur(ink)
    sigma = imageops.mad_sigma(smooth)
    mask = smooth > max(4.0 * sigma, MIN_CONTRAST / 2)
    if not mask.any():
        raise _no_digit(max(noise, sigma))
    labels, sizes = imageops.components(mask)
    big = np.nonzero(sizes >= max(0.08 * sizes.max(), 2))[0]
    if big.size == 0:  # single isolated pixels only
        raise _no_digit(max(noise, sigma))
    chosen = np.zeros(len(sizes) + 1, dtype=bool)  # the last entry is for label -1, off the mask
    chosen[big] = True
    keep = chosen[labels]
    if len(big) > MAX_PIECES or (sizes.max() < 0.5 * mask.sum() and keep.sum() < 0.6 * mask.sum()):
        raise _no_digit(max(noise, NOISE_SIGMA))  # ink scattered all over: noise or texture
    level = imageops.quantile(ink[keep], 0.9)
    if level < MIN_CONTRAST or level < MIN_SNR * sigma:
        raise _no_digit(max(noise, sigma))
    if imageops.extent(labels == int(np.argmax(sizes))) < MIN_EXTENT * max(ink.shape):
        if max(noise, sigma) >= NOISE_SIGMA:
            raise _no_digit(max(noise, sigma))  # specks of noise, no stroke
        raise InputError("The mark is too small to be a digit. Please draw a larger digit, or crop the photo closer.")
    return _Ink(keep, level)


def _cut_out(grey: np.ndarray, light: _Lighting, ink: _Ink) -> np.ndarray:
    """The ink as MNIST has it, cropped: 0 away from the strokes, 1 in their core, soft edges; at
    the analysis scale, within the window of the coarse support."""
    h, w = grey.shape
    step, noise, level = light.step, light.noise, ink.level
    support = imageops.disk_max(ink.keep, 2)[2:-2, 2:-2]  # boolean: the dilation of a mask is a mask
    r0, r1, c0, c1 = imageops.bounds(support)
    rows, cols = slice(r0 * step, min(r1 * step, h)), slice(c0 * step, min(c1 * step, w))
    near = support[r0:r1, c0:c1].repeat(step, 0).repeat(step, 1)
    near = near[: rows.stop - rows.start, : cols.stop - cols.start]
    fine = grey[rows, cols] - imageops.surface(light.coef, h, w, rows, cols)
    floor = min(2.0 * noise, 0.5 * level)
    norm = np.clip(((-fine if light.inverted else fine) - floor) / (level - floor), 0.0, 1.0) * near
    box = imageops.bounds(norm > 0.1)
    if box is None:
        raise _no_digit(noise)
    crop = norm[box[0] : box[1], box[2] : box[3]]
    if max(crop.shape) < 3.0 * imageops.stroke_width(crop):
        raise InputError("Only a dot or blob was found, not a digit. Please draw a digit.")
    return crop


def _repair_strokes(crop: np.ndarray, noise: float) -> np.ndarray:
    """The crop at a fixed scale relative to the 20x20 box (``WORK_SIDE``), its peak restored
    after area averaging (a thin line averages to grey), strokes thinner than MNIST's thickened."""
    reducing = max(crop.shape) > WORK_SIDE
    work = imageops.fit_side(crop, WORK_SIDE, Image.Resampling.BOX if reducing else Image.Resampling.BILINEAR)
    work = np.clip(work, 0.0, None)
    bright = work > 0.05
    peak = imageops.quantile(work[bright], 0.99) if bright.any() else 0.0
    if not peak > 0.0:
        raise _no_digit(noise)
    work = np.clip(work / peak, 0.0, 1.0)
    width = imageops.stroke_width(work)
    target = TARGET_STROKE * FINE
    if width < 0.55 * target:  # thinner than all but ~1% of MNIST digits
        work = imageops.disk_max(work, max(1, round((target - max(width, 1.0)) / 2)))
    box = imageops.bounds(work > 0.02)
    if box is None:
        raise _no_digit(noise)
    work = work[box[0] : box[1], box[2] : box[3]]
    return np.clip(imageops.fit_side(work, WORK_SIDE, Image.Resampling.BOX), 0.0, 1.0)


def _no_digit(noise: float) -> InputError:
    if noise >= NOISE_SIGMA:
        return InputError("No digit found: the image looks like noise or texture, with no clear strokes. "
                          "Please draw or upload a single digit.")
    return InputError("No digit found: the image is blank or nearly blank. Please draw or upload a digit.")


def _centre_by_mass(work: np.ndarray) -> Tensor:
    """Place a digit drawn at ``FINE`` times the output scale so that its centre of mass lands on
    MNIST's, then area-reduce to 28x28.

    Working at the finer scale places the centre to within 1/``FINE`` of a pixel (MNIST itself
    translated by whole pixels: its centres spread +-0.5 pixel around (14, 14)).
    """
    h, w = work.shape
    total = float(work.sum())
    if not total > 0.0:
        raise InputError("No digit found: the image is blank or nearly blank. Please draw or upload a digit.")
    cy = float((work.sum(1) * np.arange(h)).sum()) / total
    cx = float((work.sum(0) * np.arange(w)).sum()) / total
    side = SIZE * FINE
    target = MASS_CENTRE * FINE + (FINE - 1) / 2  # the fine pixel at the centre of output pixel 14
    oy = min(max(round(target - cy), 0), side - h)
    ox = min(max(round(target - cx), 0), side - w)
    field = np.zeros((side, side), dtype=np.float32)
    field[oy : oy + h, ox : ox + w] = work
    small = np.asarray(Image.fromarray(field, mode="F").reduce(FINE))  # (SIZE, SIZE) means of FINE x FINE
    top = float(small.max())
    if not top > 0.0:
        raise InputError("No digit found: the image is blank or nearly blank. Please draw or upload a digit.")
    out = np.clip(small / top, 0.0, 1.0)
    if not np.isfinite(out).all():  # nothing non-finite may ever reach a model
        raise InputError("The image could not be processed into valid pixel values.")
    return torch.from_numpy(out).view(1, 1, SIZE, SIZE)

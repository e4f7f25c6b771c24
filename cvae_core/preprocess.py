"""Any user image -> one 28x28 MNIST-style tensor, the way MNIST itself was made.

Decoding (``decode_image``) accepts PNG and JPEG only, recognised by their content (never by
name or MIME type), at most ``MAX_BYTES`` bytes and ``MAX_SIDE`` x ``MAX_SIDE`` pixels. The size is
read from the file header before Pillow sees the file, so a decompression bomb is refused before
Pillow could even warn about it. A PNG's chunk checksums are verified (Pillow skips those of the
pixel data); a truncated or corrupt file gets a "damaged" message. An animated PNG is read as
its first frame (what a viewer that does not animate shows). EXIF orientation is applied.
16-bit greyscale keeps its full range; alpha is composited onto a background that contrasts
with the ink, so a digit drawn only in the alpha channel survives.

Preparation (``prepare_*``), in the spirit of MNIST: greyscale (a large image box-reduced first,
while still 8-bit) -> uneven lighting removed (a smooth surface fitted to the paper) -> polarity
detected so the digit is light on dark -> ink found above the noise, specks dropped (these steps
on a copy of at most ``DETECT_SIDE`` pixels a side, for speed) -> crop to the ink (at up to
``ANALYSIS_SIDE``, for sharp edges) -> strokes thickened when they would be thinner than MNIST's
at its scale (a pen line in a phone photo) -> scale to fit a 20x20 box keeping the aspect ratio
-> placed in 28x28 with its centre of mass where MNIST's sit, (14, 14), within a pixel of the
middle (13.5, 13.5).

Every failure raises ``InputError`` whose message is meant for a person; for bad input nothing
else escapes, and every tensor returned is finite, (1, 1, 28, 28) and within [0, 1].
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

SIZE = 28  # MNIST field
BOX = 20  # MNIST digits were scaled to fit 20x20, then centred by mass in 28x28
MAX_BYTES = 5 * 1024 * 1024
MAX_SIDE = 4096  # pixels a side; checked from the header before decoding
MIN_SIDE = 8
MAX_ASPECT = 20.0
ANALYSIS_SIDE = 320  # the image is area-reduced to this before the digit is cut out...
DETECT_SIDE = 112  # ...and to at most this (4x MNIST's field) by whole steps, to look for the ink
DECODE_SIDE = 1024  # large JPEGs are decoded at a reduced scale, never below this
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

_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
_KNOWN_OTHERS = {
    b"GIF87a": "GIF", b"GIF89a": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
    b"RIFF": "WebP/RIFF", b"%PDF": "PDF", b"\x00\x00\x01\x00": "ICO", b"\xff\x0a": "JPEG XL",
    b"\x00\x00\x00\x0cjP": "JPEG 2000", b"8BPS": "Photoshop", b"PK\x03\x04": "ZIP", b"\x1f\x8b": "gzip",
}
_ISO_BRANDS = {b"hei": "HEIC/HEIF photo", b"hev": "HEIC/HEIF photo", b"mif": "HEIC/HEIF photo", b"avi": "AVIF image"}
_TEXT_STARTS = (b"<", b"{", b"[", b"#", b"%!")


class InputError(ValueError):
    """The input cannot be turned into a digit; ``str(e)`` is a message for the user."""


@dataclass
class Prepared:
    """A preprocessed digit: the model input and what it was made from."""

    tensor: Tensor  # (1, 1, 28, 28) float32 in [0, 1], light digit on dark
    inverted: bool  # the source was dark ink on light paper


# ----------------------------------------------------------------------------------- decoding


def sniff(data: bytes) -> str:
    """'PNG' or 'JPEG' by magic bytes, else an ``InputError`` naming what it looks like."""
    for magic, kind in _SIGNATURES.items():
        if data.startswith(magic):
            return kind
    for magic, kind in _KNOWN_OTHERS.items():
        if data.startswith(magic):
            raise InputError(f"This is a {kind} file, not a PNG or JPEG image. Please upload a PNG or JPEG.")
    if data[4:8] == b"ftyp":  # ISO media: HEIC (a phone camera's default), AVIF, MP4...
        kind = _ISO_BRANDS.get(data[8:11], "video or ISO media file")
        raise InputError(f"This is a {kind}, not a PNG or JPEG image. Please convert it to JPEG or PNG first.")
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if b"<svg" in head.lower():
        raise InputError("This is an SVG drawing, not a PNG or JPEG image. Please export it as PNG.")
    if head.startswith(_TEXT_STARTS) or (head and _looks_like_text(head)):
        raise InputError("This is a text (or HTML) file, not a PNG or JPEG image. Please upload a PNG or JPEG.")
    raise InputError("This file is not a PNG or JPEG image (its content is not recognised). Please upload a PNG or JPEG.")


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def _damaged(kind: str, detail: str = "") -> InputError:
    return InputError(f"The {kind} file is damaged or incomplete and cannot be read{detail}. Please upload it again.")


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from IHDR, after checking every chunk's length and CRC.

    Pillow does not check the CRC of pixel data, so a flipped bit there would decode quietly
    into a different picture; a PNG's checksums let us say "damaged" instead.
    """
    # The IHDR chunk must come first: length 13, type, width, height (big-endian).
    if len(data) < 33 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise _damaged("PNG", " (no valid header)")
    i = 8
    while True:
        if i + 12 > len(data):
            raise _damaged("PNG", " (it ends too early)")
        (length,) = struct.unpack(">I", data[i : i + 4])
        end = i + 8 + length
        if end + 4 > len(data):
            raise _damaged("PNG", " (it ends too early)")
        if zlib.crc32(data[i + 4 : end]) != struct.unpack(">I", data[end : end + 4])[0]:
            raise _damaged("PNG", f" (checksum error in a {data[i + 4 : i + 8].decode('latin-1')!r} chunk)")
        if data[i + 4 : i + 8] == b"IEND":
            break
        i = end + 4
    return struct.unpack(">II", data[16:24])


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from the first start-of-frame marker, walking the segments."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise _damaged("JPEG", " (bad segment marker)")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2:
            raise _damaged("JPEG", " (bad segment length)")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise _damaged("JPEG", " (no frame header)")


def _check_pixels(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise InputError(f"The image has no pixels ({width}x{height}). Please upload a real image.")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InputError(f"The image is {width}x{height} pixels; the limit is {MAX_SIDE}x{MAX_SIDE}. Please upload a smaller image.")
    # Our limit is far below Pillow's bomb threshold; this keeps it so if that threshold is lowered.
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise InputError(f"The image is too large to decode safely ({width}x{height} pixels; possible decompression bomb).")


def decode_image(data: bytes) -> Image.Image:
    """Decode PNG/JPEG bytes safely: content-checked, size-capped, fully loaded, EXIF-rotated.

    Animated PNGs are accepted and their first frame is used.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputError("Expected the bytes of an image file.")
    data = bytes(data)
    if not data:
        raise InputError("The file is empty (0 bytes). Please upload a PNG or JPEG image.")
    if len(data) > MAX_BYTES:
        raise InputError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB.")
    kind = sniff(data)
    width, height = _png_size(data) if kind == "PNG" else _jpeg_size(data)
    _check_pixels(width, height)
    try:
        img = Image.open(io.BytesIO(data), formats=[kind])
        _check_pixels(*img.size)
        if kind == "JPEG":
            # Let libjpeg decode a big photo at 1/2, 1/4 or 1/8 scale directly: faster, and the
            # digit still keeps over DECODE_SIDE pixels on the longer side.
            scale = max(1, max(img.size) // DECODE_SIDE)
            img.draft("L", (max(1, img.size[0] // scale), max(1, img.size[1] // scale)))
        img.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("The image is too large to decode safely (possible decompression bomb).") from None
    except MemoryError:
        raise InputError("The image is too large to decode in the memory available.") from None
    except Exception as e:  # Pillow reports a damaged file with many exception types
        raise _damaged(kind, " (it ends too early)" if "truncated" in str(e) else "") from None
    with contextlib.suppress(Exception):  # unreadable EXIF: keep the pixels as stored
        img = ImageOps.exif_transpose(img)
    return img


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


def _resize(arr: np.ndarray, width: int, height: int, resample: Image.Resampling) -> np.ndarray:
    out = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F").resize((width, height), resample)
    return np.asarray(out, dtype=np.float32)


def _fit_side(arr: np.ndarray, side: int, resample: Image.Resampling = Image.Resampling.BOX) -> np.ndarray:
    """Resample so that the longer side is ``side`` (area averaging when reducing)."""
    h, w = arr.shape
    f = side / max(h, w)
    return _resize(arr, max(1, round(w * f)), max(1, round(h * f)), resample)


def _blur(arr: np.ndarray) -> np.ndarray:
    """A small separable Gaussian (sigma 1 pixel) with edge padding."""
    k0, k1, k2 = np.float32(0.054), np.float32(0.244), np.float32(0.403)  # symmetric 5-tap kernel
    p = np.pad(arr, 2, mode="edge")
    h, w = arr.shape
    rows = k0 * (p[:, :w] + p[:, 4:]) + k1 * (p[:, 1 : w + 1] + p[:, 3 : w + 3]) + k2 * p[:, 2 : w + 2]  # (h+4, w)
    return k0 * (rows[:h] + rows[4:]) + k1 * (rows[1 : h + 1] + rows[3 : h + 3]) + k2 * rows[2 : h + 2]


def _quantile(values: np.ndarray, q: float) -> float:
    """``np.quantile(values, q)`` (linear interpolation) by a partial sort: without its fixed
    overhead, which dominates on the small arrays used here."""
    flat = values.ravel()
    pos = q * (flat.size - 1)
    lo = int(pos)
    hi = min(lo + 1, flat.size - 1)
    part = np.partition(flat, (lo, hi))
    return float(part[lo]) + (float(part[hi]) - float(part[lo])) * (pos - lo)


def _mad_sigma(values: np.ndarray) -> float:
    """Robust standard deviation (median absolute deviation, scaled for a normal law)."""
    return 1.4826 * _quantile(np.abs(values - np.float32(_quantile(values, 0.5))), 0.5)


def _background(grey: np.ndarray) -> np.ndarray:
    """The 6 coefficients of a smooth surface through the paper (uneven lighting, vignetting, a
    tinted sheet); ``_surface`` evaluates it.

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
    fitted = np.full_like(med, _quantile(med[edge], 0.5))
    coef = np.zeros(6)
    coef[0] = fitted[0]
    used = None
    for _ in range(4):
        res = med - fitted
        inliers = np.abs(res) <= max(3.0 * _mad_sigma(res), 0.02)
        count = int(inliers.sum())
        terms = 6 if count >= 12 else 3 if count >= 6 else 1
        if count < 1 or (used is not None and np.array_equal(inliers, used)):
            break  # no inliers, or the same as last time: the fit would not change
        used = inliers
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


def _surface(coef: np.ndarray, h: int, w: int, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
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


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _disk_max(arr: np.ndarray, radius: int) -> np.ndarray:
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


def _stroke_width(ink: np.ndarray) -> float:
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


def _mnistify(grey: np.ndarray) -> Prepared:
    h, w = grey.shape
    if min(h, w) < MIN_SIDE:
        raise InputError(f"The image is {w}x{h} pixels; it needs to be at least {MIN_SIDE}x{MIN_SIDE} to hold a digit.")
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise InputError(f"The image is {w}x{h} pixels, too long and thin to hold one digit.")
    if max(h, w) > ANALYSIS_SIDE:
        grey = _fit_side(grey, ANALYSIS_SIDE)  # area averaging: a grey level in [0, 1] stays there
    grey = np.clip(grey.astype(np.float32), 0.0, 1.0)
    h, w = grey.shape
    # The digit is looked for in a coarser copy (each pixel the mean of step x step) and cut out of
    # this one, so the search costs a few times less and the cut keeps its sharp edges.
    step = max(1, min(math.ceil(max(h, w) / DETECT_SIDE), min(h, w) // MIN_SIDE))
    coarse = np.asarray(Image.fromarray(grey, mode="F").reduce(step)) if step > 1 else grey  # last boxes partial
    hc, wc = coarse.shape

    # Flatten the lighting, then decide polarity: the ink is the side (darker or lighter than the
    # paper) with more mass beyond the noise.
    coef = _background(coarse)
    resid = coarse - _surface(coef, hc, wc)
    noise = _mad_sigma(resid)
    t = max(3.0 * noise, 0.02)
    darker = float(np.maximum(-resid - t, 0).sum())
    lighter = float(np.maximum(resid - t, 0).sum())
    inverted = darker > lighter
    ink = -resid if inverted else resid

    # Ink: the smoothed image above the noise, in connected pieces large enough to matter.
    smooth = _blur(ink)
    sigma = _mad_sigma(smooth)
    mask = smooth > max(4.0 * sigma, MIN_CONTRAST / 2)
    if not mask.any():
        raise _no_digit(max(noise, sigma))
    labels, sizes = _components(mask)
    big = np.nonzero(sizes >= max(0.08 * sizes.max(), 2))[0]
    if big.size == 0:  # single isolated pixels only
        raise _no_digit(max(noise, sigma))
    chosen = np.zeros(len(sizes) + 1, dtype=bool)  # the last entry is for label -1, off the mask
    chosen[big] = True
    keep = chosen[labels]
    if len(big) > MAX_PIECES or (sizes.max() < 0.5 * mask.sum() and keep.sum() < 0.6 * mask.sum()):
        raise _no_digit(max(noise, NOISE_SIGMA))  # ink scattered all over: noise or texture
    level = _quantile(ink[keep], 0.9)
    if level < MIN_CONTRAST or level < MIN_SNR * sigma:
        raise _no_digit(max(noise, sigma))
    if _extent(labels == int(np.argmax(sizes))) < MIN_EXTENT * max(hc, wc):
        if max(noise, sigma) >= NOISE_SIGMA:
            raise _no_digit(max(noise, sigma))  # specks of noise, no stroke
        raise InputError("The mark is too small to be a digit. Please draw a larger digit, or crop the photo closer.")

    # Ink as MNIST has it: 0 away from the strokes, 1 in their core, soft edges; at the fine scale,
    # within the window of the coarse support.
    support = _disk_max(keep, 2)[2:-2, 2:-2]  # boolean: the dilation of a mask is a mask
    r0, r1, c0, c1 = _bounds(support)
    rows, cols = slice(r0 * step, min(r1 * step, h)), slice(c0 * step, min(c1 * step, w))
    near = support[r0:r1, c0:c1].repeat(step, 0).repeat(step, 1)
    near = near[: rows.stop - rows.start, : cols.stop - cols.start]
    fine = grey[rows, cols] - _surface(coef, h, w, rows, cols)
    floor = min(2.0 * noise, 0.5 * level)
    norm = np.clip(((-fine if inverted else fine) - floor) / (level - floor), 0.0, 1.0) * near
    box = _bounds(norm > 0.1)
    if box is None:
        raise _no_digit(noise)
    crop = norm[box[0] : box[1], box[2] : box[3]]
    if max(crop.shape) < 3.0 * _stroke_width(crop):
        raise InputError("Only a dot or blob was found, not a digit. Please draw a digit.")

    # Work at a fixed scale relative to the 20x20 box, restore the peak after area averaging
    # (a thin line averages to grey), and thicken strokes thinner than MNIST's.
    reducing = max(crop.shape) > WORK_SIDE
    work = _fit_side(crop, WORK_SIDE, Image.Resampling.BOX if reducing else Image.Resampling.BILINEAR)
    work = np.clip(work, 0.0, None)
    bright = work > 0.05
    peak = _quantile(work[bright], 0.99) if bright.any() else 0.0
    if not peak > 0.0:
        raise _no_digit(noise)
    work = np.clip(work / peak, 0.0, 1.0)
    width = _stroke_width(work)
    target = TARGET_STROKE * FINE
    if width < 0.55 * target:  # thinner than all but ~1% of MNIST digits
        work = _disk_max(work, max(1, round((target - max(width, 1.0)) / 2)))
    box = _bounds(work > 0.02)
    if box is None:
        raise _no_digit(noise)
    work = work[box[0] : box[1], box[2] : box[3]]
    work = np.clip(_fit_side(work, WORK_SIDE, Image.Resampling.BOX), 0.0, 1.0)
    return Prepared(tensor=_centre_by_mass(work), inverted=inverted)


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(first row, last row + 1, first column, last column + 1) of a mask's pixels; None if empty."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _extent(mask: np.ndarray) -> int:
    box = _bounds(mask)
    return 0 if box is None else max(box[1] - box[0], box[3] - box[2])


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

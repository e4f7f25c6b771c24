"""Any user image -> one 28x28 MNIST-style tensor, the way MNIST itself was made.

Steps: decode (PNG or JPEG only, recognised by content, size-capped) -> greyscale, with alpha
composited and 16-bit depth kept -> polarity detected from the border so the digit is light on
dark -> background removed and contrast stretched -> crop to the ink -> strokes thickened when
they would vanish at MNIST's scale -> scale to fit a 20x20 box keeping the aspect ratio -> place
in 28x28 so that the centre of mass sits at the centre.

Every failure raises ``InputError`` with a message meant for a person; nothing else escapes for
bad input, and every tensor returned is finite and within [0, 1].
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFile, ImageFilter, ImageOps, UnidentifiedImageError
from torch import Tensor

SIZE = 28  # MNIST field
BOX = 20  # MNIST digits were scaled to fit 20x20, then centred by mass in 28x28
MAX_BYTES = 5 * 1024 * 1024
MAX_SIDE = 4096  # pixels; checked from the header before decoding
MIN_SIDE = 8
MAX_ASPECT = 20.0
WORK_SIDE = 112  # the crop is reduced to this before stroke repair (4x the output scale)
TARGET_STROKE = 2.2  # MNIST stroke width in pixels of the 20x20 box
MIN_CONTRAST = 0.08  # ink must differ from the background by this much of the full range

_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
}
_KNOWN_OTHERS = {
    b"GIF87a": "GIF", b"GIF89a": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
    b"RIFF": "WebP/RIFF", b"%PDF": "PDF", b"<": "text/HTML", b"\x00\x00\x01\x00": "ICO",
}


class InputError(ValueError):
    """The input cannot be turned into a digit; ``str(e)`` is a message for the user."""


@dataclass
class Prepared:
    """A preprocessed digit: the model input and what it was made from."""

    tensor: Tensor  # (1, 1, 28, 28) float32 in [0, 1], light digit on dark
    inverted: bool  # the source was dark ink on light paper


def sniff(data: bytes) -> str:
    """'PNG' or 'JPEG' by magic bytes, else an ``InputError`` naming what it looks like."""
    for magic, kind in _SIGNATURES.items():
        if data.startswith(magic):
            return kind
    head = data[:64].lstrip()
    for magic, kind in _KNOWN_OTHERS.items():
        if head.startswith(magic):
            raise InputError(f"This file is a {kind} file, not a PNG or JPEG image. Please upload a PNG or JPEG.")
    raise InputError("This file is not a PNG or JPEG image (its content is not recognised). Please upload a PNG or JPEG.")


def decode_image(data: bytes) -> Image.Image:
    """Decode PNG/JPEG bytes safely: content-checked, size-capped, fully loaded, EXIF-rotated.

    Animated PNGs are accepted and their first frame is used.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputError("Expected the bytes of an image file.")
    data = bytes(data)
    if not data:
        raise InputError("The file is empty (0 bytes).")
    if len(data) > MAX_BYTES:
        raise InputError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB.")
    kind = sniff(data)
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[kind])
            w, h = img.size
            if w > MAX_SIDE or h > MAX_SIDE:
                raise InputError(f"The image is {w}x{h} pixels; the limit is {MAX_SIDE}x{MAX_SIDE}.")
            img.load()
            img = ImageOps.exif_transpose(img) or img
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("The image is too large to decode safely.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise InputError(f"The {kind} file is damaged or incomplete and cannot be read ({type(e).__name__}).") from None
    return img


def _luminance_and_alpha(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Greyscale in [0, 1] (float32) and alpha in [0, 1] or None, for any Pillow mode."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        return np.clip(arr / 65535.0, 0, 1).astype(np.float32), None
    if mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = arr.max() if arr.size and arr.max() > 1 else 1.0
        return np.clip(arr / top, 0, 1).astype(np.float32), None
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        lum = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return lum, rgba[..., 3]
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0, None


def composite(lum: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Flatten alpha onto a background that contrasts with the ink (dark ink -> white paper)."""
    if alpha is None or alpha.min() > 0.99:
        return lum
    if alpha.max() < 0.01:
        raise InputError("The image is fully transparent: there is no digit to see.")
    opaque = alpha > 0.5
    weights = alpha if not opaque.any() else alpha * opaque
    ink = float((lum * weights).sum() / max(weights.sum(), 1e-6))
    background = 1.0 if ink < 0.5 else 0.0
    return alpha * lum + (1 - alpha) * background


def _border(arr: np.ndarray) -> np.ndarray:
    return np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary mask: 2 * area / perimeter (exact for long thin strokes)."""
    area = mask.sum()
    if area == 0:
        return 0.0
    padded = np.pad(mask, 1)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    perimeter = max(int(area - interior.sum()), 1)
    return 2.0 * float(area) / perimeter


def _to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")


def prepare_array(arr: np.ndarray) -> Prepared:
    """A greyscale (H, W) or colour (H, W, 1|3|4) array, uint8 or float in [0, 1], -> Prepared."""
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    if arr.dtype.kind not in "uif" or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise InputError(f"Expected a greyscale or colour image array, got shape {arr.shape} of {arr.dtype}.")
    if arr.size == 0:
        raise InputError("The image is empty (0 pixels).")
    h, w = arr.shape[:2]
    if h > MAX_SIDE or w > MAX_SIDE:
        raise InputError(f"The image is {w}x{h} pixels; the limit is {MAX_SIDE}x{MAX_SIDE}.")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError("The image data contains invalid values (NaN or infinity).")
        top = float(np.abs(arr).max())
        data = arr.astype(np.float32) / (255.0 if top > 1.0 else 1.0)
    elif arr.dtype == np.uint16:
        data = arr.astype(np.float32) / 65535.0
    else:
        data = arr.astype(np.float32) / 255.0
    data = np.clip(data, 0.0, 1.0)
    if data.ndim == 3:
        alpha = data[..., 3] if data.shape[2] == 4 else None
        lum = data[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32) if data.shape[2] >= 3 else data[..., 0]
        data = composite(lum, alpha)
    return _mnistify(data)


def prepare_image(img: Image.Image) -> Prepared:
    """A decoded Pillow image of any mode -> Prepared."""
    return _mnistify(composite(*_luminance_and_alpha(img)))


def prepare_bytes(data: bytes) -> Prepared:
    """The bytes of a PNG or JPEG file -> Prepared."""
    return prepare_image(decode_image(data))


def _mnistify(grey: np.ndarray) -> Prepared:
    h, w = grey.shape
    if min(h, w) < MIN_SIDE:
        raise InputError(f"The image is {w}x{h} pixels; it needs to be at least {MIN_SIDE}x{MIN_SIDE}.")
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise InputError(f"The image is {w}x{h} pixels, too long and thin to hold one digit.")
    border = _border(grey)
    inverted = bool(np.median(border) > 0.5)
    if inverted:
        grey, border = 1.0 - grey, 1.0 - border
    # Background level: the border's median plus its spread, so paper texture and sensor noise
    # fall below it; ink level: a high percentile, so a few hot pixels do not set the scale.
    med = float(np.median(border))
    spread = 1.4826 * float(np.median(np.abs(border - med)))
    floor = min(med + 3.0 * spread, 0.9)
    top = float(np.percentile(grey, 99.5))
    if grey.max() < floor + MIN_CONTRAST or top - med < MIN_CONTRAST:
        raise InputError("No digit found: the image is blank or has almost no contrast. Please draw or upload a digit.")
    top = max(top, floor + MIN_CONTRAST)
    norm = np.clip((grey - floor) / (top - floor), 0.0, 1.0)
    mask = norm > 0.25
    rows, cols = mask.sum(1), mask.sum(0)
    keep_r = np.nonzero(rows >= max(1, 0.02 * rows.max()))[0]
    keep_c = np.nonzero(cols >= max(1, 0.02 * cols.max()))[0]
    if keep_r.size == 0 or keep_c.size == 0:
        raise InputError("No digit found: the image is blank. Please draw or upload a digit.")
    top_r, bottom_r, left_c, right_c = keep_r[0], keep_r[-1] + 1, keep_c[0], keep_c[-1] + 1
    crop = norm[top_r:bottom_r, left_c:right_c]
    ch, cw = crop.shape
    if max(ch, cw) < 3 and max(h, w) > 3 * SIZE:
        raise InputError("The mark is too small to be a digit. Please draw or upload a larger digit.")
    img = _to_image(crop)
    # Reduce a large crop to a working size first, then thicken strokes that would thin out to
    # less than MNIST's width at the 20x20 scale (a pen stroke in a phone photo, a thin brush).
    longest = max(ch, cw)
    if longest > WORK_SIDE:
        f = WORK_SIDE / longest
        img = img.resize((max(1, round(cw * f)), max(1, round(ch * f))), Image.Resampling.BOX)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        peak = float(np.percentile(arr[arr > 0], 99)) if (arr > 0).any() else 1.0
        img = _to_image(np.clip(arr / max(peak, 1e-3), 0, 1))
    work = np.asarray(img, dtype=np.float32) / 255.0
    target = TARGET_STROKE * max(work.shape) / BOX
    width = _stroke_width(work > 0.25)
    size = int(min(2 * ((target - width) // 2) + 1, 15)) if 0 < width < target - 1 else 1
    if size >= 3:  # dilate, with room around the crop for the strokes to grow into
        img = _to_image(np.pad(work, size // 2)).filter(ImageFilter.MaxFilter(size))
        work = np.asarray(img, dtype=np.float32) / 255.0
    scale = BOX / max(work.shape)
    nh, nw = max(1, round(work.shape[0] * scale)), max(1, round(work.shape[1] * scale))
    small = np.asarray(img.resize((nw, nh), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    small = np.clip(small, 0.0, 1.0)
    if small.max() <= 0:
        raise InputError("No digit found after scaling; please draw a larger digit.")
    small /= small.max()
    return Prepared(tensor=_centre_by_mass(small), inverted=inverted)


def _centre_by_mass(small: np.ndarray) -> Tensor:
    """Place a digit (h, w <= 20) in a 28x28 field with its centre of mass at the centre."""
    h, w = small.shape
    total = small.sum()
    ys, xs = np.arange(h), np.arange(w)
    cy = float((small.sum(1) * ys).sum() / total)
    cx = float((small.sum(0) * xs).sum() / total)
    centre = (SIZE - 1) / 2  # 13.5 in pixel-index coordinates
    oy = int(np.clip(round(centre - cy), 0, SIZE - h))
    ox = int(np.clip(round(centre - cx), 0, SIZE - w))
    field = np.zeros((SIZE, SIZE), dtype=np.float32)
    field[oy : oy + h, ox : ox + w] = small
    out = torch.from_numpy(field).view(1, 1, SIZE, SIZE)
    if not torch.isfinite(out).all():  # defensive: nothing non-finite may reach a model
        raise InputError("The image could not be processed into valid pixel values.")
    return out

"""What a visitor gives the Draw page, turned into the 28x28 input the models read.

The upload widget, and the canvas's drawing read as an image. Uploads and canvas drawings go
through ``cvae_core.images.preprocess`` (decoding checked before Pillow sees a byte); the results are cached with ``st.cache_data`` keyed on the input's bytes, so a
rerun that changes nothing computes nothing. Every failure is an ``InputError`` whose message
is for the visitor.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any

import numpy as np
import streamlit as st
import torch
from PIL import Image

from app.draw.reading import SEED
from cvae_core.corruptions import corrupt
from cvae_core.images.preprocess import MAX_BYTES, InputError, Prepared, decode_image, prepare_array, prepare_bytes

UNREADABLE_DRAWING = "The drawing could not be read. Please clear the canvas and draw again."
MAX_NAME = 60  # characters of an uploaded file's name that are shown


def upload_widget() -> tuple[bytes | None, str | None, str | None]:
    """The file uploader: (file bytes, filename, None) or (None, filename, message), or all None
    before a file is given."""
    upload = st.file_uploader(
        "A photo or scan of one digit", type=["png", "jpg", "jpeg"], key="draw_upload",
        max_upload_size=MAX_BYTES // 1_000_000,  # Streamlit's unit: MB of 10^6 bytes
        help=f"Dark ink on light paper is inverted automatically. PNG or JPEG, up to {MAX_BYTES / 1e6:g} MB.",
    )
    if upload is None:
        return None, None, None
    name = upload.name if len(upload.name) <= MAX_NAME else upload.name[: MAX_NAME - 1] + "…"
    if upload.size > MAX_BYTES:  # the server's limit is not enforced everywhere (e.g. AppTest)
        return None, name, f"The file is {upload.size / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:g} MB ({MAX_BYTES:,} bytes)."
    return upload.getvalue(), name, None


def _model_input(preparing: Callable[[Any], Prepared], source: Any) -> tuple[np.ndarray | None, str | None]:
    """(28x28 float32 model input, None) or (None, message for the user)."""
    try:
        prepared = preparing(source)
    except InputError as e:
        return None, str(e)
    return prepared.tensor[0, 0].numpy(), None


@st.cache_data(max_entries=64, show_spinner=False)
def prepare(data: bytes) -> tuple[np.ndarray | None, str | None]:
    """Image file bytes -> (28x28 float32 model input, None) or (None, message for the user)."""
    return _model_input(prepare_bytes, data)


@st.cache_data(max_entries=64, show_spinner=False)
def prepare_pixels(rgba: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """The canvas's RGBA array -> (28x28 float32 model input, None) or (None, message for the user)."""
    return _model_input(prepare_array, rgba)


@st.cache_data(max_entries=16, show_spinner=False)
def original_image(data: bytes) -> Image.Image | None:
    """The decoded original (for the archive), or None when it cannot be decoded."""
    try:
        return decode_image(data)
    except InputError:
        return None


def canvas_image(result: Any) -> tuple[bytes, np.ndarray]:
    """The canvas's drawing: its PNG bytes and its (H, W, 4) uint8 pixels. Anything else, a
    forged or damaged data URL included, is an ``InputError`` with one message.

    The canvas sends a PNG data URL, which a client can forge: the component splits it at
    ``;base64,`` and decodes it (a ``ValueError`` when either fails), and the bytes are decoded
    by ``cvae_core.images.preprocess.decode_image``, which checks the format and the pixel count
    before decoding, never by Pillow unchecked.
    """
    try:
        data = result.image_bytes
    except (ValueError, binascii.Error):
        raise InputError(UNREADABLE_DRAWING) from None
    if not data:
        raise InputError(UNREADABLE_DRAWING)
    return data, np.asarray(decode_image(data))


@st.cache_data(max_entries=64, show_spinner=False)
def noisy(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """The input plus Gaussian noise of standard deviation ``sigma``, clipped to [0, 1]; same seed each time."""
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).view(1, 1, *pixels.shape)  # (1, 1, 28, 28)
    return corrupt(x, "gaussian_noise", sigma, seed=SEED)[0, 0].numpy()

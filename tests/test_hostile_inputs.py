"""Hostile and unusual inputs to the preprocessing: each is rejected with a clear ``InputError``
or turned into a valid digit, never anything else.

The parametrised table covers containers (formats by content, sizes, forged headers, damage),
image modes (16-bit, CMYK, palette and alpha, EXIF, animation), content (blank, dot, noise,
low contrast) and arrays (a drawing canvas's RGBA, forged dtypes, shapes and values). The
property tests feed arbitrary arrays and byte strings (random and mutated real files).
"""

from __future__ import annotations

import base64
import io
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from canvas_result import CanvasResult
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageDraw

from cvae_core.images import preprocess
from cvae_core.images.preprocess import MAX_BYTES, MAX_SIDE, InputError, prepare_array, prepare_bytes

# ------------------------------------------------------------------------------ image makers


def stroke_mask(side: int = 280, *, width: int | None = None, digit: str = "4") -> np.ndarray:
    """A float (side, side) mask in [0, 1] of a hand-drawn-looking digit, strokes = 1."""
    width = width or max(2, side // 14)
    shapes = {
        "4": [[(0.62, 0.9), (0.62, 0.1), (0.18, 0.62), (0.82, 0.62)]],
        "7": [[(0.2, 0.12), (0.8, 0.12), (0.42, 0.9)]],
        "1": [[(0.52, 0.1), (0.46, 0.9)]],
    }
    img = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(img)
    for line in shapes[digit]:
        draw.line([(x * side, y * side) for x, y in line], fill=255, width=width, joint="curve")
    return np.asarray(img, dtype=np.float32) / 255.0


def to_bytes(img: Image.Image, fmt: str = "PNG", **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def grey_image(values: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(values * 255 + 0.5, 0, 255).astype(np.uint8))


def dark_on_light(side: int = 280, digit: str = "4") -> Image.Image:
    return grey_image(1.0 - 0.9 * stroke_mask(side, digit=digit))


def light_on_dark(side: int = 280, digit: str = "4") -> Image.Image:
    return grey_image(stroke_mask(side, digit=digit))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def forged_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with almost no pixel data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def forged_jpeg_size(width: int, height: int) -> bytes:
    """A real JPEG with its frame header's size rewritten."""
    data = bytearray(to_bytes(dark_on_light(64), "JPEG"))
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def flip_byte(data: bytes, where: float) -> bytes:
    out = bytearray(data)
    out[int(len(out) * where)] ^= 0xFF
    return bytes(out)


def apng() -> bytes:
    first, second = light_on_dark(96, "1"), light_on_dark(96, "7")
    return to_bytes(first, "PNG", save_all=True, append_images=[second], duration=100, loop=0)


def palette_with_transparency() -> bytes:
    img = Image.new("P", (200, 200), 0)
    img.putpalette([255, 0, 255, 0, 0, 0] + [0] * (256 * 3 - 6))  # 0: magenta, transparent; 1: black
    img.paste(1, mask=Image.fromarray((stroke_mask(200) * 255).astype(np.uint8)).point(lambda v: 255 if v > 127 else 0))
    return to_bytes(img, "PNG", transparency=0)


def alpha_only(mode: str) -> bytes:
    """The digit lives only in the alpha channel; the colour is the same everywhere."""
    alpha = (stroke_mask(200) * 255).astype(np.uint8)
    if mode == "LA":
        arr = np.stack([np.zeros_like(alpha), alpha], axis=-1)  # black ink
    else:
        arr = np.stack([np.full_like(alpha, 255)] * 3 + [alpha], axis=-1)  # white ink
    return to_bytes(Image.fromarray(arr, mode), "PNG")


def sixteen_bit() -> bytes:
    values = 9000 + 50000 * stroke_mask(200)  # all far above 255: convert("L") would clip to white
    return to_bytes(Image.fromarray(values.astype(np.uint16)), "PNG")


def cmyk_jpeg() -> bytes:
    return to_bytes(dark_on_light(200).convert("RGB").convert("CMYK"), "JPEG", quality=90)


def exif_rotated() -> bytes:
    """A "7" stored rotated, with EXIF orientation 6 (display rotated 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return to_bytes(dark_on_light(200, "7").rotate(90, expand=True), "JPEG", quality=90, exif=exif.tobytes())


def blue_pen_rgb() -> bytes:
    mask = stroke_mask(240)[..., None]
    paper, ink = np.array([245, 240, 230]), np.array([20, 40, 160])
    return to_bytes(Image.fromarray((paper * (1 - mask) + ink * mask).astype(np.uint8)), "PNG")


def low_contrast_photo() -> bytes:
    rng = np.random.default_rng(1)
    values = 0.62 - 0.12 * stroke_mask(400) + rng.normal(0, 0.01, (400, 400))
    return to_bytes(grey_image(values), "JPEG", quality=85)


def faint_specks() -> bytes:
    values = np.zeros((200, 200))
    values[[20, 90, 150], [30, 170, 60]] = 3 / 255
    return to_bytes(grey_image(values), "PNG")


def noise(kind: str) -> bytes:
    rng = np.random.default_rng(2)
    if kind == "gaussian":
        values = 0.5 + rng.normal(0, 0.15, (240, 240))
    elif kind == "uniform":
        values = rng.random((240, 240))
    else:  # salt and pepper on grey
        values = np.full((240, 240), 0.5)
        values[rng.random((240, 240)) < 0.15] = 1.0
        values[rng.random((240, 240)) < 0.15] = 0.0
    return to_bytes(grey_image(values), "PNG")


def checkerboard() -> bytes:
    yy, xx = np.mgrid[0:240, 0:240] // 20
    return to_bytes(grey_image(((yy + xx) % 2).astype(float)), "PNG")


def dot(side: int = 280, radius: int = 12) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    return ((yy - 140) ** 2 + (xx - 150) ** 2 <= radius**2).astype(np.float32)


def tiny_mark() -> bytes:
    values = np.ones((1000, 1000))
    values[500:510, 500:502] = 0.0
    return to_bytes(grey_image(values), "PNG")


def canvas(background: str, ink: int = 255) -> np.ndarray:
    """What a drawing canvas returns: RGBA uint8, strokes opaque."""
    mask = stroke_mask(280)
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    if background == "opaque black":
        rgba[..., 3] = 255
    rgba[..., :3] = np.where(mask[..., None] > 0.5, ink, rgba[..., :3])
    rgba[..., 3] = np.maximum(rgba[..., 3], (mask * 255).astype(np.uint8))
    return rgba


# ------------------------------------------------------------------------------------- cases

OK_LIGHT, OK_DARK, OK_ANY = "ok: light on dark", "ok: dark on light", "ok"


@dataclass
class Case:
    name: str
    make: Callable[[], Any]  # -> bytes (prepare_bytes) or anything else (prepare_array)
    expect: str  # OK_* or a fragment of the error message


CASES = [
    # --- containers, recognised by content
    Case("zero bytes", lambda: b"", "empty"),
    Case("gif renamed .png", lambda: to_bytes(light_on_dark(64), "GIF"), "GIF file"),
    Case("bmp renamed .png", lambda: to_bytes(light_on_dark(64), "BMP"), "BMP file"),
    Case("tiff renamed .png", lambda: to_bytes(light_on_dark(64), "TIFF"), "TIFF file"),
    Case("webp renamed .png", lambda: to_bytes(light_on_dark(64), "WEBP"), "WebP"),
    Case("html renamed .png", lambda: b"<!DOCTYPE html><html><script>alert(1)</script></html>", "text (or HTML)"),
    Case("plain text renamed .png", lambda: b"this is not an image\n", "text (or HTML)"),
    Case("svg renamed .png", lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
    Case("heic photo renamed .jpg", lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "HEIC"),
    Case("pdf renamed .png", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF file"),
    Case("random binary", lambda: bytes(np.random.default_rng(3).integers(128, 256, 512, dtype=np.uint8)), "not recognised"),
    Case("over the byte limit", lambda: b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES), "limit"),
    # --- damage
    Case("png signature only", lambda: b"\x89PNG\r\n\x1a\n", "damaged"),
    Case("png truncated in half", lambda: to_bytes(light_on_dark())[: len(to_bytes(light_on_dark())) // 2], "damaged"),
    Case("png corrupt pixel data", lambda: flip_byte(to_bytes(light_on_dark()), 0.5), "damaged"),
    Case("png corrupt header crc", lambda: flip_byte(to_bytes(light_on_dark()), 29 / len(to_bytes(light_on_dark()))), "damaged"),
    Case("jpeg truncated", lambda: to_bytes(dark_on_light(), "JPEG")[:1500], "damaged"),
    Case("jpeg without frame header", lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9", "damaged"),
    Case("jpeg garbage after marker", lambda: b"\xff\xd8\xff" + b"\x00" * 64, "damaged"),
    # --- sizes, checked from the header before decoding
    Case("png header claims 100000x100000", lambda: forged_png(100_000, 100_000), "limit"),
    Case("png header one pixel over the side cap", lambda: forged_png(MAX_SIDE + 1, 16), "limit"),
    Case("png header claims 0 width", lambda: forged_png(0, 16), "no pixels"),
    Case("jpeg header claims 60000x60000", lambda: forged_jpeg_size(60_000, 60_000), "limit"),
    Case("1x1 png", lambda: to_bytes(Image.new("L", (1, 1), 255)), "at least 8x8"),
    Case("2000x20 png (extreme aspect)", lambda: to_bytes(Image.new("L", (2000, 20), 255)), "long and thin"),
    # --- modes
    Case("16-bit greyscale", sixteen_bit, OK_LIGHT),
    Case("cmyk jpeg", cmyk_jpeg, OK_DARK),
    Case("palette with transparency", palette_with_transparency, OK_DARK),
    Case("LA: digit only in alpha", lambda: alpha_only("LA"), OK_DARK),
    Case("RGBA: digit only in alpha", lambda: alpha_only("RGBA"), OK_LIGHT),
    Case("RGBA fully transparent", lambda: to_bytes(Image.new("RGBA", (100, 100), (255, 255, 255, 0))), "fully transparent"),
    Case("exif orientation", exif_rotated, OK_DARK),
    Case("animated png: first frame", apng, OK_LIGHT),
    Case("1-bit png", lambda: to_bytes(light_on_dark(200).convert("1")), OK_LIGHT),
    Case("blue pen on cream paper", blue_pen_rgb, OK_DARK),
    Case("interlaced png", lambda: to_bytes(dark_on_light(), "PNG", interlace=1), OK_DARK),
    Case("progressive jpeg", lambda: to_bytes(dark_on_light(), "JPEG", progressive=True), OK_DARK),
    # --- content
    Case("blank white", lambda: to_bytes(Image.new("L", (280, 280), 255)), "No digit found"),
    Case("blank black", lambda: to_bytes(Image.new("L", (280, 280), 0)), "No digit found"),
    Case("blank mid-grey jpeg", lambda: to_bytes(Image.new("L", (300, 300), 128), "JPEG", quality=30), "No digit found"),
    Case("lighting gradient only", lambda: to_bytes(grey_image(np.tile(np.linspace(0.3, 0.9, 300), (300, 1)))), "No digit found"),
    Case("nearly blank: faint specks", faint_specks, "No digit found"),
    Case("single dot", lambda: dot(), "dot"),
    Case("tiny mark on a big page", tiny_mark, "too small"),
    Case("gaussian noise", lambda: noise("gaussian"), "noise"),
    Case("uniform noise", lambda: noise("uniform"), "noise"),
    Case("salt and pepper noise", lambda: noise("salt"), "No digit found"),
    Case("checkerboard texture", checkerboard, "No digit found"),
    Case("low-contrast photo", low_contrast_photo, OK_DARK),
    # --- arrays: a drawing canvas, and forged data
    Case("canvas: transparent, white strokes", lambda: canvas("transparent"), OK_LIGHT),
    Case("canvas: opaque black, white strokes", lambda: canvas("opaque black"), OK_LIGHT),
    Case("canvas: transparent, black strokes", lambda: canvas("transparent", ink=0), OK_DARK),
    Case("canvas: untouched (transparent)", lambda: np.zeros((280, 280, 4), np.uint8), "No digit found"),
    Case("canvas: untouched (opaque black)", lambda: canvas("opaque black") * np.array([0, 0, 0, 1], np.uint8), "No digit found"),
    Case("canvas as int64 (from JSON)", lambda: canvas("transparent").astype(np.int64), OK_LIGHT),
    Case("float array in 0..255", lambda: stroke_mask() * 255.0, OK_LIGHT),
    Case("bool array", lambda: stroke_mask() > 0.5, OK_LIGHT),
    Case("uint16 array", lambda: (stroke_mask() * 65535).astype(np.uint16), OK_LIGHT),
    Case("float16 array", lambda: stroke_mask().astype(np.float16), OK_LIGHT),
    Case("huge finite floats", lambda: stroke_mask().astype(np.float64) * 1e300, OK_LIGHT),
    Case("negative floats", lambda: stroke_mask() * 2.0 - 1.0, OK_LIGHT),
    Case("grey + alpha array (H, W, 2)", lambda: np.stack([np.zeros((200, 200)), stroke_mask(200)], -1), OK_DARK),
    Case("NaN array", lambda: np.where(stroke_mask() > 0.5, np.nan, 0.0), "NaN"),
    Case("infinite array", lambda: np.where(stroke_mask() > 0.5, np.inf, 0.0), "NaN or infinity"),
    Case("object array", lambda: np.array([[object()] * 10] * 10), "Expected"),
    Case("complex array", lambda: stroke_mask().astype(np.complex64), "Expected"),
    Case("string array", lambda: np.array([["a"] * 10] * 10), "Expected"),
    Case("1-d array", lambda: np.ones(784), "Expected"),
    Case("4-d array", lambda: np.ones((1, 1, 28, 28)), "Expected"),
    Case("five channels", lambda: np.ones((28, 28, 5)), "Expected"),
    Case("zero-size array", lambda: np.zeros((0, 0)), "empty"),
    Case("array over the side cap", lambda: np.zeros((MAX_SIDE + 1, 16), np.uint8), "limit"),
    Case("ragged list", lambda: [[1, 2, 3], [4]], "Expected"),
    Case("None", lambda: None, "Expected"),
    Case("tiny array 3x3", lambda: np.ones((3, 3)), "at least 8x8"),
]


def run(value: Any) -> preprocess.Prepared:
    return prepare_bytes(value) if isinstance(value, bytes) else prepare_array(value)


def assert_valid(tensor) -> None:
    assert tuple(tensor.shape) == (1, 1, 28, 28)
    assert tensor.dtype.is_floating_point
    assert bool(tensor.isfinite().all())
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0
    assert float(tensor.max()) == pytest.approx(1.0)


def test_enough_distinct_cases():
    assert len({c.name for c in CASES}) == len(CASES) >= 35


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case: Case):
    value = case.make()
    if case.expect.startswith("ok"):
        prepared = run(value)
        assert_valid(prepared.tensor)
        if case.expect != OK_ANY:
            assert prepared.inverted == (case.expect == OK_DARK)
    else:
        with pytest.raises(InputError) as info:
            run(value)
        message = str(info.value)
        assert case.expect.lower() in message.lower(), message
        assert "Traceback" not in message and len(message) < 300


# ------------------------------------------------------------------ the accepted cases look right


def correlation(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def reference(side: int = 200, digit: str = "4") -> np.ndarray:
    return prepare_array(stroke_mask(side, digit=digit)).tensor[0, 0].numpy()


@pytest.mark.parametrize(
    ("make", "digit"),
    [
        (sixteen_bit, "4"), (cmyk_jpeg, "4"), (palette_with_transparency, "4"), (lambda: alpha_only("LA"), "4"),
        (lambda: alpha_only("RGBA"), "4"), (exif_rotated, "7"), (apng, "1"), (blue_pen_rgb, "4"),
        (low_contrast_photo, "4"), (lambda: canvas("transparent", ink=0), "4"),
    ],
    ids=["16-bit", "cmyk", "palette", "LA alpha", "RGBA alpha", "exif", "apng first frame", "blue pen",
         "low contrast", "canvas black strokes"],
)
def test_accepted_modes_match_the_plain_digit(make, digit):
    out = run(make()).tensor[0, 0].numpy()
    assert correlation(out, reference(digit=digit)) > 0.9


def test_sixteen_bit_is_scaled_not_clipped():
    """Pillow's convert("L") clips 16-bit values at 255: everything would turn white."""
    clipped = np.asarray(Image.open(io.BytesIO(sixteen_bit())).convert("L"))
    assert clipped.min() == 255  # the trap is real
    assert correlation(prepare_bytes(sixteen_bit()).tensor[0, 0], reference()) > 0.95


def test_exif_orientation_is_applied():
    stored = np.asarray(Image.open(io.BytesIO(exif_rotated())).convert("L"), dtype=np.float32) / 255
    ignored = prepare_array(stored).tensor[0, 0].numpy()  # the pixels as stored, EXIF ignored
    applied = prepare_bytes(exif_rotated()).tensor[0, 0].numpy()
    assert correlation(applied, reference(digit="7")) > 0.9 > correlation(ignored, reference(digit="7"))


def test_decompression_bomb_warning_becomes_an_error(monkeypatch):
    """Between Pillow's warning and error thresholds: refused, and no warning leaks out."""
    data = to_bytes(light_on_dark(120))  # 14,400 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # warning above 10k, error above 20k
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="decompression bomb"):
            prepare_bytes(data)


def test_pixel_cap_is_checked_before_decoding(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("Pillow was asked to decode an oversized image")

    monkeypatch.setattr(Image, "open", fail)
    with pytest.raises(InputError, match="limit"):
        prepare_bytes(forged_png(50_000, 50_000))


def test_apng_uses_the_first_frame():
    data = apng()
    assert Image.open(io.BytesIO(data)).n_frames == 2
    first = reference(digit="1")
    second = reference(digit="7")
    out = prepare_bytes(data).tensor[0, 0].numpy()
    assert correlation(out, first) > 0.9 > correlation(out, second)


# ------------------------------------------------------------------------- property-based tests

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)
DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_])


@st.composite
def any_array(draw) -> np.ndarray:
    dtype = np.dtype(draw(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=48))
    if draw(st.booleans()) and len(shape) >= 2:  # often an image-like shape
        shape = (draw(st.integers(1, 64)), draw(st.integers(1, 64))) + ((draw(st.sampled_from([1, 2, 3, 4])),) if draw(st.booleans()) else ())
    if dtype.kind == "f":
        elements = FLOATS if dtype.itemsize >= 4 else st.floats(allow_nan=True, width=16)
    elif dtype.kind == "b":
        elements = st.booleans()
    else:
        info = np.iinfo(dtype)
        elements = st.integers(int(info.min), int(info.max))
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    if draw(st.booleans()) and arr.ndim in (2, 3) and arr.size:  # plant a block of "ink"
        h, w = arr.shape[:2]
        y, x = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        arr[y : y + max(1, h // 3), x : x + max(1, w // 5)] = np.array(draw(elements), dtype=dtype) if dtype.kind != "b" else True
    return arr


def check_any(value: Any) -> None:
    try:
        prepared = run(value)
    except InputError as e:
        assert str(e)
        return
    assert_valid(prepared.tensor)
    assert isinstance(prepared.inverted, bool)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(any_array())
def test_any_array_gives_a_valid_digit_or_an_input_error(arr):
    check_any(arr)


SEEDS = [
    to_bytes(light_on_dark(64)),
    to_bytes(dark_on_light(64), "JPEG", quality=80),
    to_bytes(dark_on_light(48).convert("RGBA"), "PNG"),
    to_bytes(dark_on_light(48).convert("P"), "PNG", transparency=0),
    apng(),
]


@st.composite
def mutated_file(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 16))]
    return bytes(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=2048),
    st.binary(max_size=512).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
    st.binary(max_size=512).map(lambda b: b"\xff\xd8\xff" + b),
    mutated_file(),
))
def test_any_bytes_give_a_valid_digit_or_an_input_error(data):
    check_any(data)


# ------------------------------------------------------------------ limits and forged canvas data


def test_one_upload_limit_everywhere():
    """The browser refuses more than maxUploadSize megabytes of 10^6 bytes; the server takes exactly that."""
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml").read_text())
    assert MAX_BYTES == config["server"]["maxUploadSize"] * 1_000_000 == 5_000_000
    over = b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 * 1024 - 8)  # 5 MiB: accepted by the old limit
    with pytest.raises(InputError, match=r"the limit is 5 MB \(5,000,000 bytes\)"):
        prepare_bytes(over)
    with pytest.raises(InputError, match="the limit is 5 MB"):
        prepare_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_BYTES - 7))


@pytest.mark.parametrize("url", [
    "data:text/html,<script>alert(1)</script>", "data:image/png,iVBORw0KGgo", "", "data:image/png;base64,@@@",
    "data:image/png;base64,", "data:image/png;base64," + "A" * 64,
    "data:image/png;base64," + base64.b64encode(b"GIF89a" + b"\0" * 64).decode(),
], ids=["no-base64-html", "no-base64-png", "empty", "bad-base64", "no-data", "not-an-image", "gif-posing-as-png"])
def test_forged_canvas_value_is_one_clear_message(url):
    from app.draw.inputs import UNREADABLE_DRAWING, canvas_image

    with pytest.raises(InputError) as info:
        canvas_image(CanvasResult(url))
    assert str(info.value) == UNREADABLE_DRAWING or "PNG or JPEG" in str(info.value)
    assert type(info.value) is InputError

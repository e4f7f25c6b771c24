"""The MNIST treatment of user images: centring, polarity, aspect ratio, stroke width, blank
images, and photographs of digits on paper that must come out like MNIST digits."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from cvae_core.images.preprocess import BOX, SIZE, InputError, prepare_array, prepare_bytes

# Digit shapes as polylines in a unit box (x right, y down), drawn like a pen would.


def arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 40) -> list[tuple[float, float]]:
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a))) for a in np.linspace(a0, a1, n)]


SHAPES = {
    "0": [arc(0.5, 0.5, 0.32, 0.45, 0, 360, 80)],
    "1": [[(0.55, 0.05), (0.45, 0.95)]],
    "2": [[*arc(0.5, 0.3, 0.33, 0.25, 180, 390), (0.15, 0.95), (0.88, 0.95)]],
    "4": [[(0.62, 0.95), (0.62, 0.05), (0.1, 0.65), (0.88, 0.65)]],
    "7": [[(0.12, 0.08), (0.85, 0.08), (0.4, 0.95)]],
}


def draw(shape: str, side: int, *, box: float, width: int, origin: tuple[float, float], aspect: float = 1.0) -> np.ndarray:
    """Strokes = 1 on 0, float32 (side, side); the shape fills ``box`` pixels tall, ``box * aspect`` wide."""
    img = Image.new("F", (side, side), 0.0)
    pen = ImageDraw.Draw(img)
    for line in SHAPES[shape]:
        pen.line([(origin[0] + x * box * aspect, origin[1] + y * box) for x, y in line], fill=1.0, width=width, joint="curve")
    return np.asarray(img, dtype=np.float32)


def reference(shape: str) -> np.ndarray:
    """The shape drawn cleanly with an MNIST-like stroke, through the same preprocessing."""
    return prepare_array(draw(shape, 400, box=300, width=round(300 * 2.3 / BOX), origin=(50, 50))).tensor[0, 0].numpy()


def correlation(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    img = np.asarray(img, dtype=np.float64)
    total = img.sum()
    return float((img.sum(1) * np.arange(img.shape[0])).sum() / total), float((img.sum(0) * np.arange(img.shape[1])).sum() / total)


def ink_box(img: np.ndarray, level: float = 0.2) -> tuple[int, int]:
    rows, cols = np.nonzero(np.asarray(img) > level)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def paper_photo(ink: np.ndarray, *, seed: int, noise: float = 0.03, blur: float = 1.5, quality: int = 75) -> bytes:
    """Dark ink (``ink`` in [0, 1], same size as the photo) on grey paper under uneven light, as a JPEG."""
    rng = np.random.default_rng(seed)
    side = ink.shape[0]
    ramp = np.linspace(0.0, 1.0, side, dtype=np.float32)
    light = 0.5 + 0.3 * ramp[None, :] + 0.1 * ramp[:, None] - 0.15 * ((ramp[None, :] - 0.5) ** 2 + (ramp[:, None] - 0.5) ** 2)
    photo = Image.fromarray(np.clip(light * (1.0 - 0.75 * ink) * 255, 0, 255).astype(np.uint8))
    photo = np.asarray(photo.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32)
    photo += rng.standard_normal(photo.shape, dtype=np.float32) * (noise * 255)
    buf = io.BytesIO()
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def mnist_on_paper(digit: np.ndarray, side: int, *, seed: int) -> bytes:
    """A real MNIST digit, upscaled into part of a large photo of paper (dark ink)."""
    rng = np.random.default_rng(seed)
    size = int(side * rng.uniform(0.35, 0.6))
    big = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    ink = np.zeros((side, side), dtype=np.float32)
    y, x = rng.integers(int(0.05 * side), side - size - int(0.05 * side), 2)
    ink[y : y + size, x : x + size] = np.clip(big, 0, 1)
    return paper_photo(ink, seed=seed, blur=side / 600)


# ------------------------------------------------------------------------------ synthetic strokes


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize(("side", "box", "origin"), [(280, 200, (40, 40)), (280, 90, (10, 170)), (600, 500, (90, 20))])
def test_centre_of_mass_at_the_centre(shape, side, box, origin):
    out = prepare_array(draw(shape, side, box=box, width=max(3, box // 9), origin=origin)).tensor[0, 0].numpy()
    cy, cx = centre_of_mass(out)
    assert math.hypot(cy - 13.5, cx - 13.5) <= 1.0, (cy, cx)


def test_polarity_detected():
    light = draw("7", 280, box=220, width=20, origin=(30, 30))
    on_dark, on_light = prepare_array(light), prepare_array(1.0 - light)
    assert not on_dark.inverted and on_light.inverted
    assert correlation(on_dark.tensor, on_light.tensor) > 0.98
    # the digit is light on dark either way: the border of the field is black
    for out in (on_dark.tensor[0, 0], on_light.tensor[0, 0]):
        assert float(out[0].max()) == 0.0 and float(out[:, 0].max()) == 0.0 and float(out.max()) == 1.0


def test_polarity_on_a_dim_dark_sheet():
    """Dark ink on dark-grey paper is still dark ink (a border-brightness rule would flip it)."""
    ink = draw("4", 300, box=220, width=16, origin=(40, 40))
    out = prepare_array(0.35 - 0.25 * ink)
    assert out.inverted
    assert correlation(out.tensor, prepare_array(ink).tensor) > 0.95


def test_tall_thin_one_stays_tall_and_thin():
    one = np.zeros((300, 300), dtype=np.float32)
    one[30:270, 140:160] = 1.0  # 240 tall, 20 wide: a ruler-straight "1"
    out = prepare_array(one).tensor[0, 0].numpy()
    height, width = ink_box(out)
    assert BOX <= height <= BOX + 1 and width <= 4  # +1: centring is sub-pixel, edges may straddle


def test_wide_shape_keeps_its_aspect_ratio():
    # 450 x 150 plus an MNIST-width stroke (so nothing is thickened): ink about 502 x 202
    wide = draw("0", 600, box=150, width=52, origin=(60, 200), aspect=3.0)
    h0, w0 = ink_box(wide, 0.5)
    height, width = ink_box(prepare_array(wide).tensor[0, 0].numpy(), 0.5)
    assert BOX - 1 <= width <= BOX + 1 and abs(height - width * h0 / w0) <= 1.5


def test_output_is_a_28x28_tensor_in_unit_range():
    out = prepare_array(draw("2", 280, box=200, width=18, origin=(40, 40))).tensor
    assert tuple(out.shape) == (1, 1, SIZE, SIZE) and bool(out.isfinite().all())
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5])
def test_blank_image_is_a_clear_error(value):
    with pytest.raises(InputError, match=r"No digit found.*(draw|upload) a digit"):
        prepare_array(np.full((280, 280), value, dtype=np.float32))


# --------------------------------------------------------------------------------------- MNIST


def test_an_mnist_digit_comes_back_as_itself(mnist):
    images = mnist.test_images[:100].numpy()
    scores = [correlation(prepare_array(img).tensor, img) for img in images]
    assert np.mean(scores) > 0.93 and min(scores) > 0.75


def test_a_bold_digit_covering_most_of_the_canvas_is_read_not_called_noise(mnist):
    """MNIST test 3364, a bold 8 whose ink covers half the background blocks, drawn at the canvas's
    size: it was refused as "noise or texture" when the paper's spread was measured over every block."""
    digit = mnist.test_images[3364].numpy().reshape(28, 28)
    canvas = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR))  # uint8, as a canvas sends
    assert correlation(prepare_array(canvas).tensor, digit) > 0.85
    # The same on paper: a bold 8 of two thick rings filling most of a lit sheet.
    sheet = Image.new("L", (400, 400), 235)
    draw = ImageDraw.Draw(sheet)
    draw.ellipse((90, 20, 310, 200), outline=20, width=55)
    draw.ellipse((70, 180, 330, 390), outline=20, width=55)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    prepared = prepare_bytes(buf.getvalue())
    assert prepared.inverted and prepared.tensor.max() == pytest.approx(1.0)


def test_mnist_digit_photographed_on_paper_comes_out_like_mnist(mnist):
    """Upscaled, inverted, blurred, on noisy unevenly lit grey paper, 1000-3000 px, JPEG."""
    sides = [1000, 1600, 2400, 3000]
    scores = []
    for i, side in enumerate(sides):
        digit = mnist.test_images[i].numpy()
        prepared = prepare_bytes(mnist_on_paper(digit, side, seed=i))
        assert prepared.inverted
        out = prepared.tensor[0, 0].numpy()
        cy, cx = centre_of_mass(out)
        assert math.hypot(cy - 13.5, cx - 13.5) <= 1.0
        scores.append(correlation(out, digit))
    assert min(scores) > 0.8, scores


@pytest.mark.parametrize(("shape", "side", "width"), [("0", 1000, 3), ("2", 1400, 3), ("4", 3000, 5), ("7", 2000, 4), ("1", 1800, 4)])
def test_thin_pen_photo_comes_out_like_mnist(shape, side, width):
    """A ballpoint line a few pixels wide on a large photo becomes an MNIST-width stroke, no specks."""
    rng = np.random.default_rng(side)
    box = int(side * 0.4)
    origin = tuple(int(v) for v in rng.integers(int(side * 0.1), int(side * 0.5), 2))
    prepared = prepare_bytes(paper_photo(draw(shape, side, box=box, width=width, origin=origin), seed=side, blur=1.2))
    out = prepared.tensor[0, 0].numpy()
    assert prepared.inverted
    assert correlation(out, reference(shape)) > 0.85
    # a clean background: nothing lit away from where the clean drawing has strokes
    ref = reference(shape)
    assert float((out * (_dilate(ref > 0.05, 2) == 0)).max()) < 0.2
    # MNIST's ink mass: the stroke was thickened to an MNIST-like width, not left a hairline
    assert 0.6 < out.sum() / ref.sum() < 1.5


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out.astype(np.uint8)


def test_thick_strokes_are_not_thickened(mnist):
    """Strokes already as wide as MNIST's stay as they are (ink mass within 20 %)."""
    digit = mnist.test_images[3].numpy()
    big = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    out = prepare_array(big).tensor[0, 0].numpy()
    assert 0.8 < out.sum() / (digit / 255.0).sum() < 1.2


# ------------------------------------------------------------------------------- fast paths


def canvas(digit: np.ndarray, side: int = 280) -> np.ndarray:
    """An MNIST digit as the app's drawing canvas returns it: white on black, (side, side, 4) uint8."""
    grey = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR))
    return np.dstack([grey, grey, grey, np.full_like(grey, 255)])


def test_coarse_search_cuts_out_what_a_full_resolution_search_does(mnist, monkeypatch):
    """The ink is looked for at a coarser scale (DETECT_SIDE) and cut out at the full one; on
    canvas-sized digits that gives what searching at full resolution gives."""
    from cvae_core.images import preprocess

    images = [canvas(d) for d in mnist.test_images[:60].numpy()]
    fast = [prepare_array(img).tensor for img in images]
    monkeypatch.setattr(preprocess, "DETECT_SIDE", 10_000)  # one scale: the search at full resolution
    scores = [correlation(a, prepare_array(img).tensor) for a, img in zip(fast, images, strict=True)]
    assert np.mean(scores) > 0.998 and min(scores) > 0.985, (np.mean(scores), min(scores))


def test_large_images_are_reduced_early_without_changing_the_digit(mnist, monkeypatch):
    """A big array or file is box-reduced before conversion; the digit is what it was without that."""
    from cvae_core.images import preprocess

    digits = mnist.test_images[:5].numpy()
    big = [canvas(d, side) for d, side in zip(digits, (700, 1300, 2000, 3000, 1000), strict=True)]
    big[-1][..., 3] = np.where(big[-1][..., 0] > 0, 255, 0)  # ink on a transparent sheet
    big[-1][..., :3] = 255  # one colour everywhere: only the alpha tells the ink
    files = []
    for img in big[:2]:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        files.append(buf.getvalue())
    fast = [prepare_array(img).tensor for img in big] + [prepare_bytes(data).tensor for data in files]
    monkeypatch.setattr(preprocess, "_reduce_early", lambda img: img)
    slow = [prepare_array(img).tensor for img in big] + [prepare_bytes(data).tensor for data in files]
    scores = [correlation(a, b) for a, b in zip(fast, slow, strict=True)]
    assert min(scores) > 0.99, scores


def test_fast_helpers_match_their_plain_definitions():
    from cvae_core.images import imageops

    rng = np.random.default_rng(0)
    arr = rng.random((23, 31)).astype(np.float32)
    for radius in range(1, 7):  # disk dilation: max over every offset within the pen tip
        p = np.pad(np.pad(arr, radius), radius)
        h, w = arr.shape[0] + 2 * radius, arr.shape[1] + 2 * radius
        offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
                   if dy * dy + dx * dx <= radius * radius + radius]
        plain = np.max([p[radius + dy : radius + dy + h, radius + dx : radius + dx + w] for dy, dx in offsets], axis=0)
        assert np.array_equal(imageops.disk_max(arr, radius), plain)
    for values in (arr, arr[:1, :1], arr[:2, :1], rng.random(1000)):
        for q in (0.5, 0.9, 0.99):
            assert imageops.quantile(values, q) == pytest.approx(float(np.quantile(values, q)), abs=1e-6)
    k = np.array([0.054, 0.244, 0.403, 0.244, 0.054])
    p = np.pad(arr.astype(np.float64), 2, mode="edge")
    rows = sum(k[i] * p[:, i : i + arr.shape[1]] for i in range(5))
    plain = sum(k[i] * rows[i : i + arr.shape[0]] for i in range(5))
    assert np.allclose(imageops.blur(arr), plain, atol=1e-6)

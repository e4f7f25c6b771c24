"""Images that are not digits: for teaching the recogniser what "not a digit" looks like, and for
measuring how well it tells.

Two separate generators, so that the measurement is not made on what training saw:

* ``training_batch`` (used by ``cvae_core.train --background``): random pen scribbles, zigzags,
  polygons, stars, grids and crosses, and textures (smooth blobs, gratings, dots, noise), drawn
  with MNIST's stroke width and centred like a preprocessed digit. No letters, no lone circles
  or lines (those *are* digits 0 and 1).
* ``ood_set`` (used by ``cvae_core.robustness``): letters typeset in the DejaVu fonts (sans,
  serif, mono; bold and oblique) and letters drawn as pen strokes, both distorted and put
  through the app's own preprocessing -- families training never saw -- plus shapes, scribbles
  and textures from the training families under another seed (reported separately). Letters
  that look like digits (O, o, l, I, S, s, Z, z, B, g, q) are a family of their own.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cvae_core import corruptions as C
from cvae_core.config import IMAGE_SIZE

FONT_ENV = "CVAE_FONT_DIR"  # a folder holding the DejaVu fonts, when they are not in a usual place
# Where DejaVu is looked for otherwise, first hit wins: Debian and Ubuntu (fonts-dejavu-core), Fedora
# and Arch, fonts installed by hand, macOS.
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu-sans-fonts", "/usr/share/fonts/TTF",
             "/usr/share/fonts/dejavu", "/usr/local/share/fonts", "~/.local/share/fonts", "~/Library/Fonts",
             "/Library/Fonts")


def font_dir() -> Path:
    """The folder of the DejaVu fonts: ``$CVAE_FONT_DIR``, else the first of ``FONT_DIRS`` that holds
    DejaVuSans.ttf (else the first of them, which the error then names)."""
    if os.environ.get(FONT_ENV):
        return Path(os.environ[FONT_ENV]).expanduser()
    found = (Path(d).expanduser() for d in FONT_DIRS)
    return next((d for d in found if (d / "DejaVuSans.ttf").is_file()), Path(FONT_DIRS[0]))


def _font_paths(fonts: tuple[str, ...]) -> list[Path]:
    """The files of ``fonts`` that are installed; FileNotFoundError saying where to get them when none is."""
    folder = font_dir()
    paths = [folder / f for f in fonts if (folder / f).exists()]
    if not paths:
        raise FileNotFoundError(f"no DejaVu fonts in {folder} (Debian package fonts-dejavu-core; or set {FONT_ENV})")
    return paths
FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf", "DejaVuSansCondensed.ttf",
)
# Fonts for the letters training may see (``--letters``): the other installed DejaVu faces. The
# evaluation's ``FONTS`` never reach training (tests/test_nondigits.py spies on it).
TRAIN_FONTS = (
    "DejaVuSans-BoldOblique.ttf", "DejaVuSans-ExtraLight.ttf", "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSansCondensed-Oblique.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
    "DejaVuSerif-BoldItalic.ttf", "DejaVuSerifCondensed.ttf", "DejaVuSerifCondensed-Bold.ttf",
    "DejaVuSerifCondensed-Italic.ttf",
)
DIGIT_LIKE = "OolISsZzBgq"
OTHER_LETTERS = "AabCcdEeFfGhHijJkKLmMnNpPQrRtTuUvVwWxXyY"

# Pen skeletons of capital letters in a unit box (x right, y down), one list of points per stroke.
STROKE_LETTERS: dict[str, list[list[tuple[float, float]]]] = {
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.25, 0.55), (0.75, 0.55)]],
    "E": [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.7, 0.5)]],
    "F": [[(1, 0), (0, 0), (0, 1)], [(0, 0.5), (0.7, 0.5)]],
    "H": [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]],
    "K": [[(0, 0), (0, 1)], [(1, 0), (0, 0.55), (1, 1)]],
    "M": [[(0, 1), (0, 0), (0.5, 0.6), (1, 0), (1, 1)]],
    "N": [[(0, 1), (0, 0), (1, 1), (1, 0)]],
    "R": [[(0, 1), (0, 0), (0.8, 0), (1, 0.25), (0.8, 0.5), (0, 0.5)], [(0.4, 0.5), (1, 1)]],
    "T": [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "W": [[(0, 0), (0.25, 1), (0.5, 0.4), (0.75, 1), (1, 0)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "Y": [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
    "P": [[(0, 1), (0, 0), (0.8, 0), (1, 0.25), (0.8, 0.5), (0, 0.5)]],
    "U": [[(0, 0), (0, 0.75), (0.2, 1), (0.8, 1), (1, 0.75), (1, 0)]],
    "k": [[(0, 0), (0, 1)], [(0.8, 0.35), (0, 0.7), (0.8, 1)]],
    "h": [[(0, 0), (0, 1)], [(0, 0.55), (0.5, 0.4), (0.9, 0.55), (0.9, 1)]],
    "m": [[(0, 1), (0, 0.4)], [(0, 0.5), (0.25, 0.35), (0.5, 0.5), (0.5, 1)], [(0.5, 0.5), (0.75, 0.35), (1, 0.5), (1, 1)]],
    "w": [[(0, 0.3), (0.25, 1), (0.5, 0.5), (0.75, 1), (1, 0.3)]],
    "x": [[(0, 0.3), (1, 1)], [(1, 0.3), (0, 1)]],
}

# Training's pen letters: other letters, drawn as smooth curves through their key points (the
# evaluation's are straight polylines of other skeletons). Digit-like letters are in neither.
TRAIN_STROKE_LETTERS: dict[str, list[list[tuple[float, float]]]] = {
    "C": [[(1, 0.15), (0.6, 0), (0.1, 0.2), (0, 0.5), (0.1, 0.8), (0.6, 1), (1, 0.85)]],
    "D": [[(0, 0), (0, 1)], [(0, 0), (0.6, 0.05), (1, 0.5), (0.6, 0.95), (0, 1)]],
    "G": [[(1, 0.15), (0.5, 0), (0, 0.5), (0.5, 1), (1, 0.8), (1, 0.55), (0.6, 0.55)]],
    "L": [[(0, 0), (0, 1), (0.9, 1)]],
    "a": [[(0.9, 0.45), (0.5, 0.3), (0.05, 0.65), (0.5, 1), (0.9, 0.7)], [(0.9, 0.3), (0.9, 1)]],
    "e": [[(0.05, 0.65), (0.95, 0.6), (0.5, 0.3), (0.05, 0.65), (0.5, 1), (0.95, 0.9)]],
    "n": [[(0, 0.3), (0, 1)], [(0, 0.5), (0.5, 0.3), (0.95, 0.5), (0.95, 1)]],
    "r": [[(0, 0.3), (0, 1)], [(0, 0.55), (0.4, 0.3), (0.9, 0.35)]],
    "u": [[(0, 0.3), (0.05, 0.9), (0.5, 1), (0.95, 0.8)], [(0.95, 0.3), (0.95, 1)]],
    "v": [[(0, 0.3), (0.5, 1), (1, 0.3)]],
    "f": [[(0.9, 0.05), (0.5, 0), (0.35, 0.25), (0.35, 1)], [(0.05, 0.4), (0.75, 0.4)]],
    "c": [[(0.9, 0.4), (0.5, 0.3), (0.05, 0.65), (0.5, 1), (0.9, 0.9)]],
    "d": [[(0.9, 0), (0.9, 1)], [(0.9, 0.6), (0.5, 0.3), (0.05, 0.65), (0.5, 1), (0.9, 0.8)]],
    "y": [[(0, 0.3), (0.5, 0.7)], [(1, 0.3), (0.5, 0.7), (0.2, 1.1)]],
}


# ------------------------------------------------------------------------------- rendering


def render_points(points: Tensor, width: Tensor, side: int = IMAGE_SIZE) -> Tensor:
    """Pen strokes -> images: ``points`` (N, P, 2) dense samples along the strokes in pixel
    coordinates (x, y; NaN rows are padding), ``width`` (N,) stroke widths in pixels.
    Each pixel's ink falls off smoothly with its distance to the nearest stroke point. (N, 1, side, side)."""
    r = torch.arange(side, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(r, r, indexing="ij")
    grid = torch.stack([gx.flatten(), gy.flatten()], 1)  # (side*side, 2)
    pts = torch.nan_to_num(points, nan=-1e4)
    dist = torch.cdist(grid.unsqueeze(0).expand(len(pts), -1, -1), pts).amin(2)  # (N, side*side)
    ink = torch.sigmoid((width.view(-1, 1) / 2 - dist) * 2.5)
    return ink.view(-1, 1, side, side)


def _polyline(vertices: Tensor, samples: int) -> Tensor:
    """(V, 2) vertices -> (samples, 2) points spread evenly along the polyline."""
    seg = vertices[1:] - vertices[:-1]
    lengths = seg.norm(dim=1)
    cum = torch.cat([torch.zeros(1), lengths.cumsum(0)])
    t = torch.linspace(0, float(cum[-1]) if cum[-1] > 0 else 1.0, samples)
    idx = torch.searchsorted(cum[1:].contiguous(), t).clamp(max=len(seg) - 1)
    frac = ((t - cum[idx]) / lengths[idx].clamp(min=1e-6)).unsqueeze(1)
    return vertices[idx] + frac * seg[idx]


def _bezier(control: Tensor, samples: int) -> Tensor:
    """A cubic Bezier curve (4, 2) -> (samples, 2) points."""
    t = torch.linspace(0, 1, samples).unsqueeze(1)
    c = control
    return ((1 - t) ** 3) * c[0] + 3 * ((1 - t) ** 2) * t * c[1] + 3 * (1 - t) * t * t * c[2] + (t**3) * c[3]


def _frame(x: Tensor) -> Tensor:
    """Centre each image's ink by mass, as the preprocessing does for a digit."""
    n, _, h, w = x.shape
    mass = x.sum((1, 2, 3)).clamp(min=1e-6)
    ys = (x.sum(3).squeeze(1) * (torch.arange(h) + 0.5)).sum(1) / mass
    xs = (x.sum(2).squeeze(1) * (torch.arange(w) + 0.5)).sum(1) / mass
    shift = torch.stack([(xs - w / 2) * 2 / w, (ys - h / 2) * 2 / h], 1)
    theta = torch.cat([torch.eye(2).repeat(n, 1, 1), shift.unsqueeze(2)], 2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# ----------------------------------------------------------------------------- families

_SAMPLES = 160  # points per image


def scribbles(n: int, gen: torch.Generator) -> Tensor:
    """One to three random cubic pen strokes across the digit box."""
    pts = torch.full((n, _SAMPLES, 2), math.nan)
    for i in range(n):
        strokes = int(torch.randint(1, 4, (1,), generator=gen))
        per = _SAMPLES // strokes
        for s in range(strokes):
            ctrl = 4 + 20 * torch.rand((4, 2), generator=gen)
            pts[i, s * per : (s + 1) * per] = _bezier(ctrl, per)
    return _frame(render_points(pts, 1.6 + 1.4 * torch.rand(n, generator=gen)))


def zigzags(n: int, gen: torch.Generator) -> Tensor:
    """Open polylines of four to eight random vertices, or closed random polygons."""
    pts = torch.full((n, _SAMPLES, 2), math.nan)
    for i in range(n):
        v = int(torch.randint(4, 9, (1,), generator=gen))
        verts = 4 + 20 * torch.rand((v, 2), generator=gen)
        if torch.rand(1, generator=gen) < 0.4:
            verts = torch.cat([verts, verts[:1]])
        pts[i] = _polyline(verts, _SAMPLES)
    return _frame(render_points(pts, 1.6 + 1.4 * torch.rand(n, generator=gen)))


def shapes(n: int, gen: torch.Generator) -> Tensor:
    """Triangles, squares, stars, crosses, hash grids and arrows, randomly sized and turned."""
    pts = torch.full((n, _SAMPLES, 2), math.nan)
    for i in range(n):
        kind = int(torch.randint(0, 6, (1,), generator=gen))
        if kind == 0:  # triangle
            a = torch.tensor([0, 2.09, 4.19]) + float(torch.rand(1, generator=gen)) * 6.28
            strokes = [torch.stack([torch.cos(a), torch.sin(a)], 1)[[0, 1, 2, 0]]]
        elif kind == 1:  # square or rectangle
            w, h = 0.5 + 0.5 * torch.rand(2, generator=gen)
            strokes = [torch.tensor([[-w, -h], [w, -h], [w, h], [-w, h], [-w, -h]])]
        elif kind == 2:  # star
            a = torch.arange(6) * 4 * math.pi / 5 + float(torch.rand(1, generator=gen))
            strokes = [torch.stack([torch.cos(a), torch.sin(a)], 1)]
        elif kind == 3:  # cross
            strokes = [torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.0, -1.0], [0.0, 1.0]])]
        elif kind == 4:  # hash grid
            strokes = [torch.tensor([[-1.0, c], [1.0, c]]) for c in (-0.4, 0.4)]
            strokes += [torch.tensor([[c, -1.0], [c, 1.0]]) for c in (-0.4, 0.4)]
        else:  # arrow
            strokes = [torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.4, -0.5], [1.0, 0.0], [0.4, 0.5]])]
        turn = float(torch.rand(1, generator=gen)) * 6.28
        rot = torch.tensor([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        size = 7 + 3 * float(torch.rand(1, generator=gen))
        per = _SAMPLES // len(strokes)
        for s, verts in enumerate(strokes):
            pts[i, s * per : (s + 1) * per] = _polyline(14 + size * verts @ rot.T, per)
    return _frame(render_points(pts, 1.6 + 1.4 * torch.rand(n, generator=gen)))


def textures(n: int, gen: torch.Generator) -> Tensor:
    """Smooth blobs, gratings, dot fields and plain noise filling the frame."""
    side = IMAGE_SIZE
    kind = torch.randint(0, 4, (n,), generator=gen)
    blobs = F.interpolate(torch.randn((n, 1, 5, 5), generator=gen), size=(side, side), mode="bicubic", align_corners=True)
    blobs = (blobs > 0.3).float() * 0.9
    r = torch.arange(side, dtype=torch.float32)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    angle = torch.rand(n, generator=gen).view(-1, 1, 1) * math.pi
    freq = 0.3 + 0.6 * torch.rand(n, generator=gen).view(-1, 1, 1)
    grating = (torch.sin((xx * torch.cos(angle) + yy * torch.sin(angle)) * freq) > 0).float().unsqueeze(1)
    dots = (torch.rand((n, 1, side, side), generator=gen) < 0.06).float()
    dots = torch.maximum(dots, C._cross_max(dots) * 0.8)
    noise = torch.rand((n, 1, side, side), generator=gen) * (0.3 + 0.7 * torch.rand((n, 1, 1, 1), generator=gen))
    out = torch.stack([blobs, grating, dots, noise])  # (4, N, 1, side, side)
    return out[kind, torch.arange(n)]


TRAINING_FAMILIES = {"scribbles": scribbles, "zigzags": zigzags, "shapes": shapes, "textures": textures}
LETTER_SHARE = 0.35  # of a training pool with letters: half typeset, half drawn


def training_pool(n: int, gen: torch.Generator, *, chunk: int = 512, letters: bool = False) -> Tensor:
    """``n`` non-digit images (N, 1, 28, 28) from the training families, made once per training run
    (drawing them costs about 1 ms each); training samples and distorts them batch by batch.
    With ``letters`` a share of them are letters in the training fonts and pen styles, put through
    the app's preprocessing like an upload (``training_letters``)."""
    n_letters = round(LETTER_SHARE * n) if letters else 0
    rest = n - n_letters
    pool = [training_batch(min(chunk, rest - i), gen) for i in range(0, rest, chunk)]
    if n_letters:
        pool.append(training_letters(n_letters, gen))
    return torch.cat(pool)


def training_letters(n: int, gen: torch.Generator) -> Tensor:
    """``n`` letters (N, 1, 28, 28), not digit-like: half typeset in ``TRAIN_FONTS``, half drawn in
    the ``TRAIN_STROKE_LETTERS`` style; slanted, turned and wobbled, then through the app's preprocessing."""
    letters = "".join(ch for ch in OTHER_LETTERS + OTHER_LETTERS.lower() if ch not in DIGIT_LIKE + "b")  # b: a 6
    typed = _typeset(letters, TRAIN_FONTS, n // 2, gen)
    drawn = _pen_letters(TRAIN_STROKE_LETTERS, n - n // 2, gen, smooth=True)
    images, _ = _prepared(torch.cat([typed, drawn]))
    while len(images) < n:  # the preprocessing refuses a picture only when it finds no ink: pad by repeating
        images = torch.cat([images, images[: n - len(images)]])
    return images[torch.randperm(len(images), generator=gen)[:n]]


def training_batch(n: int, gen: torch.Generator) -> Tensor:
    """``n`` non-digit images (N, 1, 28, 28) in [0, 1] from the training families, mixed."""
    kinds = torch.randint(0, len(TRAINING_FAMILIES), (n,), generator=gen)
    out = torch.empty((n, 1, IMAGE_SIZE, IMAGE_SIZE))
    for k, make in enumerate(TRAINING_FAMILIES.values()):
        idx = (kinds == k).nonzero().flatten()
        if len(idx):
            out[idx] = make(len(idx), gen)
    return out


# --------------------------------------------------------------------- measurement set


def _distort(pictures: Tensor, gen: torch.Generator) -> Tensor:
    """A mild random slant, turn and elastic wobble, as a hand or a camera would add."""
    n = len(pictures)
    x = C.affine(pictures, degrees=C._uniform(n, -12, 12, gen), shear=C._uniform(n, -0.25, 0.25, gen),
                 scale=torch.ones(n))
    return C.elastic(x, torch.full((n,), 0.03 * pictures.shape[-1]), gen)


def _prepared(pictures: Tensor) -> tuple[Tensor, int]:
    """Light-on-dark pictures (N, 1, S, S) through the app's preprocessing; returns the 28x28
    images the model sees and how many the preprocessing itself refused (no digit found)."""
    from cvae_core.images.preprocess import InputError, prepare_array

    kept, refused = [], 0
    for p in pictures:
        try:
            kept.append(prepare_array(p[0].clamp(0, 1).numpy()).tensor[0])
        except InputError:
            refused += 1
    return (torch.stack(kept) if kept else torch.empty(0, 1, IMAGE_SIZE, IMAGE_SIZE)), refused


def _typeset(letters: str, fonts: tuple[str, ...], n: int, gen: torch.Generator, *, side: int = 96) -> Tensor:
    """``n`` letters drawn at random from ``letters``, each in a random one of ``fonts``, distorted."""
    from PIL import Image, ImageDraw, ImageFont

    faces = [ImageFont.truetype(str(p), size=int(side * 0.6)) for p in _font_paths(fonts)]
    pictures = []
    for _ in range(n):
        letter = letters[int(torch.randint(0, len(letters), (1,), generator=gen))]
        face = faces[int(torch.randint(0, len(faces), (1,), generator=gen))]
        img = Image.new("L", (side, side), 0)
        ImageDraw.Draw(img).text((side / 2, side / 2), letter, fill=255, font=face, anchor="mm")
        pictures.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0))
    return _distort(torch.stack(pictures).unsqueeze(1), gen)


def typeset_letters(letters: str, per_letter: int, gen: torch.Generator, *, side: int = 96) -> Tensor:
    """Each letter in every evaluation font, ``per_letter`` distorted copies in all: (N, 1, side, side) pictures."""
    from PIL import Image, ImageDraw, ImageFont

    fonts = _font_paths(FONTS)
    pictures = []
    for letter in letters:
        for j in range(per_letter):
            font = ImageFont.truetype(str(fonts[(j + ord(letter)) % len(fonts)]), size=int(side * 0.6))
            img = Image.new("L", (side, side), 0)
            ImageDraw.Draw(img).text((side / 2, side / 2), letter, fill=255, font=font, anchor="mm")
            pictures.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0))
    return _distort(torch.stack(pictures).unsqueeze(1), gen)


def _pen_letters(
    skeletons: dict[str, list[list[tuple[float, float]]]], n: int, gen: torch.Generator, *, side: int = 96,
    smooth: bool = False,
) -> Tensor:
    """``n`` letters from ``skeletons`` (in blocks, letter by letter) drawn with a jittered hand: (N, 1, side, side).
    ``smooth`` draws each stroke as a curve through its points (a Catmull-Rom spline), else straight."""
    pictures = []
    shapes_ = list(skeletons.values())
    for i in range(n):
        pts = []
        for stroke in shapes_[i * len(shapes_) // n]:
            verts = torch.tensor(stroke, dtype=torch.float32)
            verts = verts + 0.04 * torch.randn(verts.shape, generator=gen)
            pts.append(_spline(verts, 80) if smooth and len(verts) > 2 else _polyline(verts, 80))
        p = torch.cat(pts)
        box = 0.5 + 0.15 * torch.rand(2, generator=gen)  # letter width and height, share of the picture
        p = side * (0.5 - box / 2 + p * box)
        width = torch.tensor([side * (0.05 + 0.04 * float(torch.rand(1, generator=gen)))])
        pictures.append(render_points(p.unsqueeze(0), width, side)[0])
    return _distort(torch.stack(pictures), gen)


def _spline(verts: Tensor, samples: int) -> Tensor:
    """(V, 2) key points -> (samples, 2) points on the Catmull-Rom curve through them."""
    padded = torch.cat([verts[:1], verts, verts[-1:]])
    segments = len(verts) - 1
    t = torch.linspace(0, segments, samples).clamp(max=segments - 1e-6)
    i = t.floor().long()
    u = (t - i).unsqueeze(1)
    p0, p1, p2, p3 = padded[i], padded[i + 1], padded[i + 2], padded[i + 3]
    return 0.5 * (2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2 + (3 * p1 - p0 - 3 * p2 + p3) * u**3)


def stroke_letters(per_letter: int, gen: torch.Generator, *, side: int = 96) -> Tensor:
    """The evaluation's pen letters: capital and small letters as straight strokes (N, 1, side, side)."""
    return _pen_letters(STROKE_LETTERS, per_letter * len(STROKE_LETTERS), gen, side=side)


def ood_set(*, seed: int = 1234, per_letter: int = 8, per_family: int = 300) -> dict[str, dict]:
    """The measurement set, family by family: {family: {"images": (N, 1, 28, 28), "refused": int,
    "held_out": bool}}. Seeded; letters go through the app's preprocessing as an upload would."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, dict] = {}
    for family, pictures in (
        ("letters (fonts)", typeset_letters(OTHER_LETTERS, per_letter, gen)),
        ("letters (pen strokes)", stroke_letters(per_letter * 2, gen)),
        ("digit-like letters", typeset_letters(DIGIT_LIKE, per_letter, gen)),
    ):
        images, refused = _prepared(pictures)
        out[family] = {"images": images, "refused": refused, "held_out": True}
    for family, make in (("shapes", shapes), ("scribbles", scribbles), ("textures", textures)):
        out[family] = {"images": make(per_family, gen), "refused": 0, "held_out": False}
    return out

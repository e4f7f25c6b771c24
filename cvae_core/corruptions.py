"""Image corruptions at fixed severities, for the robustness suite (and the app's noise slider).

Every corruption takes float images (N, 1, H, W) in [0, 1], a severity parameter and a seeded
``torch.Generator`` and returns corrupted images of the same shape in [0, 1]; a parameter at its
identity value (``Corruption.identity``) returns the input unchanged. All work is done on whole
batches in torch (no per-image Python), except the two that put digits through the app's own
preprocessing (``off_centre``, ``paper_scan``), which is per image by nature.

The same functions, with severities drawn at random, are the training augmentation
(``cvae_core.augment``); the corruptions marked ``held_out`` are never used in training, so the
suite reports how the models do on distortions they were not shown.

Ideas follow MNIST-C (Mu & Gilmer, 2019) and ImageNet-C (Hendrycks & Dietterich, 2019).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _signs(n: int, gen: torch.Generator) -> Tensor:
    return torch.randint(0, 2, (n,), generator=gen).float() * 2 - 1


def _per_image(value: float | Tensor, n: int) -> Tensor:
    return value.float() if isinstance(value, Tensor) else torch.full((n,), float(value))


# ------------------------------------------------------------------------------------ noise


def gaussian_noise(x: Tensor, sigma: float | Tensor, gen: torch.Generator) -> Tensor:
    """x + N(0, sigma^2) per pixel, clipped to [0, 1] (the paper's noise experiment)."""
    s = _per_image(sigma, len(x)).view(-1, 1, 1, 1)
    return (x + s * torch.randn(x.shape, generator=gen)).clamp(0.0, 1.0)


def shot_noise(x: Tensor, photons: float | Tensor, gen: torch.Generator) -> Tensor:
    """Poisson noise: each pixel's grey level counted in ``photons`` quanta, over a faint paper floor.

    Fewer photons is more noise; ``math.inf`` is the identity."""
    lam = _per_image(photons, len(x)).view(-1, 1, 1, 1)
    noisy = torch.poisson((x + 0.02) * lam.clamp(max=1e6), generator=gen) / lam.clamp(max=1e6) - 0.02
    return torch.where(torch.isinf(lam), x, noisy.clamp(0.0, 1.0))


def impulse_noise(x: Tensor, fraction: float | Tensor, gen: torch.Generator) -> Tensor:
    """Salt and pepper: a ``fraction`` of the pixels set to 0 or 1 at random."""
    p = _per_image(fraction, len(x)).view(-1, 1, 1, 1)
    hit = torch.rand(x.shape, generator=gen) < p
    salt = (torch.rand(x.shape, generator=gen) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


# ------------------------------------------------------------------------------------- blur


def _gaussian_kernels(sigma: Tensor, size: int) -> Tensor:
    """(N, size) normalised 1-D Gaussian kernels; sigma 0 gives a delta."""
    r = torch.arange(size, dtype=torch.float32) - size // 2
    k = torch.exp(-0.5 * (r / sigma.clamp(min=1e-3).view(-1, 1)) ** 2)
    return k / k.sum(1, keepdim=True)


def _filter(x: Tensor, kernels: Tensor) -> Tensor:
    """Convolve image i with its own kernel i: x (N, 1, H, W), kernels (N, kh, kw), zero padding."""
    n, _, h, w = x.shape
    kh, kw = kernels.shape[1:]
    out = F.conv2d(x.reshape(1, n, h, w), kernels.unsqueeze(1), padding=(kh // 2, kw // 2), groups=n)
    return out.view(n, 1, h, w)


def gaussian_blur(x: Tensor, sigma: float | Tensor, gen: torch.Generator) -> Tensor:
    """A Gaussian blur of ``sigma`` pixels (out of focus)."""
    s = _per_image(sigma, len(x))
    size = 2 * math.ceil(3 * float(s.max())) + 1
    k1 = _gaussian_kernels(s, size)  # (N, size): separable, one row pass and one column pass
    return _filter(_filter(x, k1.unsqueeze(1)), k1.unsqueeze(2)).clamp(0.0, 1.0)


def motion_blur(x: Tensor, length: float | Tensor, gen: torch.Generator) -> Tensor:
    """A straight streak of ``length`` pixels at a random angle per image (a shaken camera)."""
    n = len(x)
    ln = _per_image(length, n)
    size = 2 * math.ceil(float(ln.max()) / 2) + 1
    angle = _uniform(n, 0.0, math.pi, gen)
    r = torch.arange(size, dtype=torch.float32) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    # Distance of each kernel cell from the streak's line, and position along it.
    along = xx * torch.cos(angle).view(-1, 1, 1) + yy * torch.sin(angle).view(-1, 1, 1)
    across = -xx * torch.sin(angle).view(-1, 1, 1) + yy * torch.cos(angle).view(-1, 1, 1)
    k = (across.abs() < 0.5).float() * (along.abs() <= ln.view(-1, 1, 1) / 2).float()
    k[:, size // 2, size // 2] = 1.0  # a length under one pixel is the identity
    return _filter(x, k / k.sum((1, 2), keepdim=True)).clamp(0.0, 1.0)


# -------------------------------------------------------------------------------- geometry


def _affine(x: Tensor, matrix: Tensor, shift: Tensor | None = None) -> Tensor:
    """Warp each image by the 2x2 ``matrix`` (N, 2, 2) about its centre (and ``shift``, in
    normalised units); bilinear, zero outside."""
    inverse = torch.linalg.inv(matrix)  # affine_grid maps output coordinates to input ones
    theta = torch.cat([inverse, torch.zeros(len(x), 2, 1) if shift is None else -inverse @ shift.unsqueeze(2)], 2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def affine(x: Tensor, *, degrees: Tensor, shear: Tensor, scale: Tensor, shift: Tensor | None = None) -> Tensor:
    """Rotate by ``degrees``, shear horizontally by ``shear``, scale by ``scale`` (each (N,))."""
    a = torch.deg2rad(degrees)
    cos, sin = torch.cos(a), torch.sin(a)
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (N, 2, 2)
    sh = torch.eye(2).repeat(len(x), 1, 1)
    sh[:, 0, 1] = shear
    return _affine(x, rot @ sh * scale.view(-1, 1, 1), shift)


def rotate(x: Tensor, degrees: float | Tensor, gen: torch.Generator) -> Tensor:
    """Rotation by ``degrees``, clockwise or anticlockwise at random per image."""
    n = len(x)
    return affine(x, degrees=_per_image(degrees, n) * _signs(n, gen), shear=torch.zeros(n), scale=torch.ones(n))


def shear(x: Tensor, factor: float | Tensor, gen: torch.Generator) -> Tensor:
    """Horizontal shear (slant) by ``factor``, left or right at random per image."""
    n = len(x)
    return affine(x, degrees=torch.zeros(n), shear=_per_image(factor, n) * _signs(n, gen), scale=torch.ones(n))


def scale(x: Tensor, factor: float | Tensor, gen: torch.Generator) -> Tensor:
    """Zoom about the centre by ``factor`` (below 1: a smaller digit)."""
    n = len(x)
    return affine(x, degrees=torch.zeros(n), shear=torch.zeros(n), scale=_per_image(factor, n))


def elastic(x: Tensor, alpha: float | Tensor, gen: torch.Generator, *, cells: int = 4) -> Tensor:
    """A smooth random displacement of up to about ``alpha`` pixels (Simard et al., 2003): a coarse
    ``cells`` x ``cells`` field of random shifts, upsampled bicubically to every pixel."""
    n, _, h, w = x.shape
    a = _per_image(alpha, n).view(-1, 1, 1, 1)
    coarse = torch.randn((n, 2, cells, cells), generator=gen) * a
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)  # (N, 2, H, W) pixels
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = torch.stack([xs, ys], -1).unsqueeze(0) + field.permute(0, 2, 3, 1) * torch.tensor([2.0 / w, 2.0 / h])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


# ------------------------------------------------------------------------------- strokes


def _cross_max(x: Tensor) -> Tensor:
    """Grey dilation by a 3x3 cross (the pixel and its four neighbours)."""
    p = F.pad(x, (1, 1, 1, 1))
    return torch.stack([x, p[..., :-2, 1:-1], p[..., 2:, 1:-1], p[..., 1:-1, :-2], p[..., 1:-1, 2:]]).amax(0)


def thicken(x: Tensor, amount: float | Tensor, gen: torch.Generator) -> Tensor:
    """Bolder strokes: a blend of the image and its dilation; 1 is one full pixel wider each side."""
    a = _per_image(amount, len(x)).view(-1, 1, 1, 1)
    return torch.lerp(x, _cross_max(x), a.clamp(0, 1))


def thin(x: Tensor, amount: float | Tensor, gen: torch.Generator) -> Tensor:
    """Finer strokes: a blend of the image and its erosion (a fine pen)."""
    a = _per_image(amount, len(x)).view(-1, 1, 1, 1)
    return torch.lerp(x, 1.0 - _cross_max(1.0 - x), a.clamp(0, 1))


# ------------------------------------------------------------------------------- capture


def pixelate(x: Tensor, side: float | Tensor, gen: torch.Generator) -> Tensor:
    """Low resolution: box-reduced to ``side`` x ``side`` pixels and enlarged back (bilinear)."""
    h = x.shape[-1]
    s = int(float(side if not isinstance(side, Tensor) else side.flatten()[0]))
    if s >= h:
        return x
    small = F.interpolate(x, size=(s, s), mode="area")
    return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False).clamp(0.0, 1.0)


def low_contrast(x: Tensor, contrast: float | Tensor, gen: torch.Generator) -> Tensor:
    """Ink and paper squeezed toward mid-grey: ``contrast`` 1 is the identity, 0 a flat grey."""
    c = _per_image(contrast, len(x)).view(-1, 1, 1, 1)
    return 0.5 + c * (x - 0.5)


def _through_preprocessing(canvases: list[np.ndarray], like: Tensor) -> Tensor:
    """Large greyscale pictures -> the app's 28x28 inputs; a picture the pipeline rejects (it finds
    no digit) becomes a blank image, which every model must then get wrong."""
    from cvae_core.images.preprocess import InputError, prepare_array

    out = torch.zeros_like(like)
    for i, canvas in enumerate(canvases):
        with contextlib.suppress(InputError):
            out[i, 0] = prepare_array(canvas).tensor[0, 0]
    return out


def off_centre(x: Tensor, side: float | Tensor, gen: torch.Generator) -> Tensor:
    """The digit pasted at a random place in a larger ``side`` x ``side`` picture, then put through
    the app's preprocessing (which must find, crop and centre it)."""
    n, _, h, w = x.shape
    s = int(float(side if not isinstance(side, Tensor) else side.flatten()[0]))
    if s <= h:
        return x
    rows = torch.randint(0, s - h + 1, (n,), generator=gen)
    cols = torch.randint(0, s - w + 1, (n,), generator=gen)
    canvases = []
    for i in range(n):
        canvas = np.zeros((s, s), np.float32)
        canvas[rows[i] : rows[i] + h, cols[i] : cols[i] + w] = x[i, 0].numpy()
        canvases.append(canvas)
    return _through_preprocessing(canvases, x)


def paper_scan(x: Tensor, level: float | Tensor, gen: torch.Generator) -> Tensor:
    """The digit re-rendered as a scan of dark, thin pen on paper, then put through the app's
    preprocessing: enlarged 4x, strokes thinned, dark ink on light paper with uneven lighting and
    sensor noise (stronger with ``level`` in [0, 1]), quantised to 8 bits."""
    lv = float(level if not isinstance(level, Tensor) else level.flatten()[0])
    if lv <= 0:
        return x
    n = len(x)
    big = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)  # (N, 1, 4H, 4W)
    for _ in range(1 + round(3 * lv)):  # a finer pen than MNIST's at every level
        big = 1.0 - _cross_max(1.0 - big)
    side = big.shape[-1]
    ramp = torch.linspace(-1, 1, side)
    tilt = _uniform(n, -1, 1, gen).view(-1, 1, 1, 1) * ramp.view(1, 1, 1, -1) + _uniform(n, -1, 1, gen).view(
        -1, 1, 1, 1
    ) * ramp.view(1, 1, -1, 1)
    paper = 0.88 - 0.12 * lv * tilt  # uneven lighting across the sheet
    ink = (big * 1.6).clamp(0, 1)
    picture = paper * (1 - 0.8 * ink) + 0.04 * lv * torch.randn(big.shape, generator=gen)
    canvases = [(picture[i, 0].clamp(0, 1).numpy() * 255).round().astype(np.uint8) for i in range(n)]
    return _through_preprocessing(canvases, x)


# ------------------------------------------------------------------------------ catalogue


@dataclass(frozen=True)
class Corruption:
    """One kind of corruption and the severities the suite measures it at."""

    name: str
    apply: Callable[[Tensor, float, torch.Generator], Tensor]
    severities: tuple[float, ...]
    identity: float
    held_out: bool  # never used in training augmentation
    unit: str = ""
    per_image: bool = False  # goes through the app's preprocessing one image at a time


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in [
        Corruption("gaussian_noise", gaussian_noise, (0.1, 0.2, 0.3, 0.5), 0.0, False, "sigma"),
        Corruption("impulse_noise", impulse_noise, (0.03, 0.06, 0.1), 0.0, False, "fraction"),
        Corruption("shot_noise", shot_noise, (30.0, 10.0, 4.0), math.inf, True, "photons"),
        Corruption("gaussian_blur", gaussian_blur, (0.6, 1.0, 1.4), 0.0, False, "sigma px"),
        Corruption("motion_blur", motion_blur, (3.0, 5.0, 7.0), 0.0, True, "length px"),
        Corruption("rotate", rotate, (15.0, 30.0), 0.0, False, "degrees"),
        Corruption("shear", shear, (0.2, 0.4), 0.0, False, "factor"),
        Corruption("scale", scale, (0.6, 0.8, 1.2), 1.0, False, "factor"),
        Corruption("elastic", elastic, (1.0, 2.0, 3.0), 0.0, False, "px"),
        Corruption("thin", thin, (0.5, 1.0), 0.0, False, "erosion"),
        Corruption("thicken", thicken, (0.5, 1.0), 0.0, False, "dilation"),
        Corruption("pixelate", pixelate, (14.0, 10.0, 7.0), 28.0, True, "side px"),
        Corruption("low_contrast", low_contrast, (0.5, 0.3, 0.2), 1.0, False, "contrast"),
        Corruption("off_centre", off_centre, (56.0, 112.0), 28.0, True, "picture px", per_image=True),
        Corruption("paper_scan", paper_scan, (0.3, 0.7, 1.0), 0.0, True, "level", per_image=True),
    ]
}


def corrupt(images: Tensor, name: str, severity: float, *, seed: int) -> Tensor:
    """``images`` (N, 1, H, W) in [0, 1] under one corruption at one severity, seeded."""
    c = CORRUPTIONS[name]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return c.apply(images.float(), severity, gen)

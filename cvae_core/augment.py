"""Training augmentation: random distortions of whole batches, in torch.

Each image of a batch gets, with probability ``p_affine``, a random affine warp (rotation, slant,
size, position: the ways handwriting varies anyway), and then, with probability ``p_one``,
exactly **one** other distortion drawn at random: an elastic wobble, thicker or thinner strokes,
a blur, lower contrast, Gaussian noise or salt-and-pepper noise, at a random severity up to a
little past the suite's strongest. One at a time keeps most of what the model sees close to real
digits (stacking every distortion on every image leaves almost no clean digit to learn from),
while every distortion is still seen thousands of times per epoch.

Only the corruptions the robustness suite does *not* hold out are used
(``cvae_core.corruptions.CORRUPTIONS[...].held_out``): motion blur, shot noise, low resolution,
off-centre pictures and paper scans are never shown in training. Augmentation is the same for the
CVAEs and for the discriminative CNN reference, so their comparison is fair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from cvae_core import corruptions as C


@dataclass(frozen=True)
class Augment:
    """Probabilities and ranges of the random distortions."""

    p_affine: float = 0.7
    p_one: float = 0.6  # probability of one further distortion
    degrees: float = 30.0
    shear: float = 0.45
    scale: tuple[float, float] = (0.55, 1.25)
    shift_px: float = 2.0
    elastic_px: float = 3.0
    stroke: float = 1.0  # thicken / thin amount
    blur_sigma: float = 1.4
    contrast: float = 0.2  # lowest contrast
    noise_sigma: float = 0.55
    impulse: float = 0.12


ONE_OF = ("elastic", "thicken", "thin", "blur", "contrast", "noise", "impulse")


def augment(x: Tensor, cfg: Augment, gen: torch.Generator) -> Tensor:
    """Randomly distorted copies of ``x`` (N, 1, H, W) in [0, 1]. Random numbers are drawn on the
    CPU from ``gen``, so a run repeats on any device."""
    n = len(x)
    device = x.device
    x = x.cpu()
    u = C._uniform
    warp = (torch.rand(n, generator=gen) < cfg.p_affine).float()
    shift = u(2 * n, -1, 1, gen).view(n, 2) * cfg.shift_px * (2.0 / x.shape[-1]) * warp.view(-1, 1)
    zoom = 1 + (u(n, *cfg.scale, gen) - 1) * warp
    x = C.affine(x, degrees=u(n, -cfg.degrees, cfg.degrees, gen) * warp, shear=u(n, -cfg.shear, cfg.shear, gen) * warp,
                 scale=zoom, shift=shift)
    pick = torch.where(torch.rand(n, generator=gen) < cfg.p_one, torch.randint(0, len(ONE_OF), (n,), generator=gen), -1)

    def amount(name: str, low: float, high: float) -> Tensor:
        return u(n, low, high, gen) * (pick == ONE_OF.index(name)).float()

    x = C.elastic(x, amount("elastic", 0.5, cfg.elastic_px), gen)
    x = C.thicken(x, amount("thicken", 0.3, cfg.stroke), gen)
    x = C.thin(x, amount("thin", 0.3, cfg.stroke), gen)
    x = C.gaussian_blur(x, amount("blur", 0.4, cfg.blur_sigma), gen)
    x = C.low_contrast(x, 1 - amount("contrast", 0.0, 1 - cfg.contrast), gen)
    x = C.gaussian_noise(x, amount("noise", 0.05, cfg.noise_sigma), gen)
    x = C.impulse_noise(x, amount("impulse", 0.01, cfg.impulse), gen)
    return x.to(device)

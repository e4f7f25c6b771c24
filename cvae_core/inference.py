"""Batched inference helpers used by the app, ``evaluate`` and ``predict``.

Recognition uses the CVAE itself as a classifier through Bayes' rule: for every label y,
log p(x | y) is estimated by importance sampling with K draws from q(z | x, y)
(the IWAE bound of Burda et al., 2016), and p(y | x) = softmax_y(log p(x | y)) under a uniform
prior over the ten labels. The reconstruction term uses the same Bernoulli convention as the
training loss, so these are log-likelihoods in that convention, in nats.

A model trained with a background condition ("not a digit", ``ModelConfig.background``) gets
log p(x | y) for that condition too; ``cvae_core.calibration.Calibration`` turns the scores into
calibrated p(y | x) and p(not a digit | x). ``scores`` also serves the discriminative CNN
reference (its logits), so the robustness suite treats both kinds of model alike.

``read`` is what a page showing one input needs (class probabilities, the posterior under the
recognised label, its reconstruction and its restyle under every label) from classify's own
encoder pass plus one decoder pass; ``recognise`` is its first part (the digit, before the
decoder pass), ``restyle_all`` the second. Every helper runs under ``torch.inference_mode`` and puts the
model in eval mode with channels-last convolution weights (``_ready``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from cvae_core.calibration import DEFAULT_K, UNCALIBRATED, Calibration
from cvae_core.models import CVAE, DigitCNN, to_channels_last

_LOG_2PI = math.log(2 * math.pi)
_MAX_DECODES = 16384  # images decoded per chunk, bounds peak memory of classify()


def _ready(model: CVAE | DigitCNN) -> torch.device:
    """Put ``model`` in inference form and return its device: eval mode, and convolution weights
    channels-last (NHWC), once. On CPU, oneDNN runs NHWC convolutions without the layout copies
    that NCHW costs it (up to 60 % of a conv model's time; ``benchmarks/latency.py``); outputs
    agree with NCHW to float rounding (``tests/test_models.py``). Like ``eval()``, this changes
    the model it is given, which is what a model loaded for inference wants."""
    model.eval()
    # Outside inference mode: weights made inside it could never be trained again.
    with torch.inference_mode(False), torch.no_grad():
        to_channels_last(model)
    return next(model.parameters()).device


def _bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x | logits) summed over pixels; broadcasts. Stable form of -BCE-with-logits."""
    return (x * logits - F.softplus(logits)).flatten(-3).sum(-1)


@torch.inference_mode()
def _posteriors(
    model: CVAE, x: Tensor, *, k: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """q(z | x, y) for every condition and the importance-weighted log p(x | y): mean and log-variance
    (B, C, D), log-likelihoods (B, C), C = the model's conditions (digits, and "not a digit" if it
    has a background). One encoder pass of B * C images and one decoder pass of K * B * C codes per chunk."""
    dev = _ready(model)
    x = x.to(dev)
    classes, d = model.config.num_conditions, model.config.latent_dim
    per_chunk = max(1, _MAX_DECODES // (classes * k))
    means, logvars, log_px = [], [], []
    for xb in x.split(per_chunk):
        b = xb.shape[0]
        mean, logvar = model.encode_all(xb)  # (b, C, D): one encoder pass per image, shared by the labels
        mean, logvar = mean.reshape(b * classes, d), logvar.reshape(b * classes, d)
        xs = xb.repeat_interleave(classes, 0)  # (b*C, 1, H, W): each image under every label
        ys = torch.arange(classes, device=xb.device).repeat(b)  # (b*C,)
        # Draw noise image by image so an image's estimate does not depend on its batch-mates.
        eps = torch.stack([torch.randn((k, classes, d), generator=generator, device=xb.device) for _ in range(b)], 1)
        eps = eps.view(k, b * classes, d)  # (K, b*C, D), image-major like xs
        z = mean + torch.exp(0.5 * logvar) * eps  # (K, b*C, D)
        logits = model.decode_logits(z.reshape(-1, d), ys.repeat(k))  # (K*b*C, 1, H, W)
        log_px_z = _bernoulli_log_prob(logits.view(k, b * classes, *xs.shape[1:]), xs)  # (K, b*C)
        log_pz = -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)
        log_qz = -0.5 * (eps.pow(2) + _LOG_2PI + logvar).sum(-1)
        log_w = log_px_z + log_pz - log_qz
        log_px.append((torch.logsumexp(log_w, 0) - math.log(k)).view(b, classes))
        means.append(mean.view(b, classes, d))
        logvars.append(logvar.view(b, classes, d))
    return torch.cat(means), torch.cat(logvars), torch.cat(log_px)


def log_likelihoods(model: CVAE, x: Tensor, *, k: int = DEFAULT_K, generator: torch.Generator | None = None) -> Tensor:
    """Importance-weighted estimates of log p(x | y) for every condition: (B, conditions) in nats."""
    return _posteriors(model, x, k=k, generator=generator)[2]


@torch.inference_mode()
def scores(
    model: CVAE | DigitCNN, x: Tensor, *, k: int = DEFAULT_K, generator: torch.Generator | None = None
) -> Tensor:
    """One score per condition (B, conditions): log p(x | y) for a CVAE, logits for the CNN reference."""
    if isinstance(model, DigitCNN):
        dev = _ready(model)
        return model(x.to(dev)).float()
    return log_likelihoods(model, x, k=k, generator=generator)


def classify(
    model: CVAE | DigitCNN, x: Tensor, *, k: int | None = None, generator: torch.Generator | None = None,
    calibration: Calibration | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(p(y | x) over the digits (B, classes), the raw scores (B, conditions), p(not a digit | x)
    (B,) or None) for images (B, 1, H, W). Without ``calibration``: temperature 1."""
    cal = calibration or UNCALIBRATED
    raw = scores(model, x, k=k or cal.k, generator=generator)
    probs, not_digit = cal.posterior(raw, classes=model.config.num_classes)
    return probs, raw, not_digit


@dataclass
class Recognised:
    """Which digit a batch of images (B, 1, H, W) shows, and the posterior under it, on the CPU."""

    probs: Tensor  # (B, classes) calibrated p(y | x) over the digits
    log_px: Tensor  # (B, conditions) log p(x | y) in nats
    labels: Tensor  # (B,) the recognised digit, argmax of probs
    not_digit: Tensor | None  # (B,) calibrated p(not a digit | x); None for a model without a background
    mean: Tensor  # (B, D) posterior mean under the recognised label
    std: Tensor  # (B, D) posterior standard deviation under it


@dataclass
class Reading(Recognised):
    """Everything the draw page shows for a batch of images: the recognition and the restyle."""

    restyled: Tensor  # (B, classes, H, W) the mean decoded under every label, in [0, 1]

    @property
    def recon(self) -> Tensor:
        """The reconstruction under the recognised label: (B, H, W)."""
        return self.restyled[torch.arange(len(self.labels)), self.labels]


@torch.inference_mode()
def recognise(
    model: CVAE, x: Tensor, *, k: int | None = None, generator: torch.Generator | None = None,
    calibration: Calibration | None = None,
) -> Recognised:
    """Classify and pick the posterior under the recognised label from classify's own encoder pass
    (it ran under every label): all that naming the digit needs, without the restyle's decoder pass."""
    cal = calibration or UNCALIBRATED
    mean, logvar, log_px = _posteriors(model, x, k=k or cal.k, generator=generator)
    probs, not_digit = cal.posterior(log_px, classes=model.config.num_classes)
    labels = probs.argmax(1)  # (B,)
    rows = torch.arange(len(labels), device=labels.device)
    m, lv = mean[rows, labels], logvar[rows, labels]  # (B, D)
    return Recognised(
        probs=probs.cpu(), log_px=log_px.cpu(), labels=labels.cpu(),
        not_digit=None if not_digit is None else not_digit.cpu(), mean=m.cpu(), std=torch.exp(0.5 * lv).cpu(),
    )


@torch.inference_mode()
def restyle_all(model: CVAE, mean: Tensor) -> Tensor:
    """Posterior means (B, D) decoded under every label, in one decoder pass: (B, classes, H, W) in [0, 1]."""
    classes = model.config.num_classes
    ys = torch.arange(classes).repeat(len(mean))  # (B*C,)
    images = decode(model, mean.repeat_interleave(classes, 0), ys)  # (B*C, H, W)
    return images.view(len(mean), classes, *images.shape[1:])


def read(
    model: CVAE, x: Tensor, *, k: int | None = None, generator: torch.Generator | None = None,
    calibration: Calibration | None = None,
) -> Reading:
    """``recognise`` and ``restyle_all`` in one go: classify, encode, reconstruct and restyle from
    classify's own passes plus one decoder pass (the reconstruction is the restyle under the label)."""
    r = recognise(model, x, k=k, generator=generator, calibration=calibration)
    return Reading(**vars(r), restyled=restyle_all(model, r.mean))


@torch.inference_mode()
def reconstruct(model: CVAE, x: Tensor, y: Tensor) -> Tensor:
    """Decode the posterior mean of each image under label ``y``: (B, H, W) in [0, 1]."""
    dev = _ready(model)
    mean, _ = model.encode(x.to(dev), y.to(dev))
    return torch.sigmoid(model.decode_logits(mean, y.to(dev)))[:, 0].cpu()


@torch.inference_mode()
def encode(model: CVAE, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Posterior mean and standard deviation, each (B, latent_dim)."""
    dev = _ready(model)
    mean, logvar = model.encode(x.to(dev), y.to(dev))
    return mean.cpu(), torch.exp(0.5 * logvar).cpu()


@torch.inference_mode()
def decode(model: CVAE, z: Tensor, y: Tensor) -> Tensor:
    """Latent codes (N, latent_dim) and labels (N,) or label weights (N, classes) -> (N, H, W)."""
    dev = _ready(model)
    return torch.sigmoid(model.decode_logits(z.to(dev, torch.float32), y.to(dev)))[:, 0].cpu()


def latent_grid(model: CVAE, label: int, n: int, *, span: float = 3.0, base: Tensor | None = None) -> Tensor:
    """An n x n grid of decoded digits over latent dimensions 0 and 1, in [-span, span].

    Rows go from high z[1] (top) to low z[1], columns from low z[0] to high z[0], as on a plot.
    Other dimensions are taken from ``base`` (default zeros). Returns (n, n, H, W).
    """
    d = model.config.latent_dim
    axis = torch.linspace(-span, span, n)
    z = (base.clone() if base is not None else torch.zeros(d)).repeat(n * n, 1)  # (n*n, D)
    z[:, 0] = axis.repeat(n)
    if d > 1:
        z[:, 1] = axis.flip(0).repeat_interleave(n)
    images = decode(model, z, torch.full((n * n,), label, dtype=torch.long))
    return images.view(n, n, *images.shape[1:])


def restyle(model: CVAE, x: Tensor, label: int) -> Tensor:
    """Encode one image (1, 1, H, W) under ``label`` and decode its style under every label: (C, H, W)."""
    classes = model.config.num_classes
    mean, _ = encode(model, x, torch.tensor([label]))
    return decode(model, mean.repeat(classes, 1), torch.arange(classes))


def interpolate(model: CVAE, z0: Tensor, z1: Tensor, y0: int, y1: int, steps: int) -> Tensor:
    """Decode ``steps`` points on the line z0 -> z1 while the label weight moves y0 -> y1: (steps, H, W)."""
    t = torch.linspace(0, 1, steps).unsqueeze(1)  # (steps, 1)
    z = (1 - t) * z0.view(1, -1) + t * z1.view(1, -1)
    eye = torch.eye(model.config.num_classes)
    y = (1 - t) * eye[y0] + t * eye[y1]  # (steps, C) label weights
    return decode(model, z, y)


def principal_plane(z: Tensor) -> Tensor:
    """Latent codes (N, D) projected on their first two principal axes: (N, 2); 2-D codes pass through.

    Lets a 16-D latent space be drawn as a scatter; signs follow the SVD's convention.
    """
    if z.shape[1] <= 2:
        return z.float()
    centred = z.float() - z.float().mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # vh: (D, D), rows are axes
    return centred @ vh[:2].T

"""Honest confidence: the recogniser's scores turned into calibrated probabilities, the "not a
digit" rule, and how to check them.

A recogniser gives one score per condition (the CVAE: log p(x | y) in nats; the CNN reference:
logits). ``Calibration.posterior`` divides them by a temperature fitted on the validation split
(Guo et al., 2017) and applies Bayes' rule under a uniform prior: the result is p(y | x) over the
digits and, for a model with a background condition, the probability that the input is not a
digit at all. ``Calibration.not_a_digit`` is the one rule that calls an input "not a digit".

``Calibration.for_checkpoint`` is the one place a model's calibration is built from its typed
metadata: ``predict``, ``evaluate``, ``robustness``, the app and the benchmarks all call it, so
they cannot disagree on the same model. ``fit`` makes a new one from validation scores (the data
work is ``cvae_core.robustness.calibrate``). ``expected_calibration_error`` is the usual 15-bin
measure of how far confidence is from accuracy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from cvae_core.checkpoints import CheckpointMeta

ECE_BINS = 15
# Importance samples per condition when a model records none: test accuracy moved by less than
# 0.1 % from K = 8 to K = 32 on the shipped models.
DEFAULT_K = 8
# The most importance samples a checkpoint or ``predict --k`` may ask for: time and memory grow
# with K (K = 20,000 took 10 s and 3.3 GB for one drawing), and past a few dozen nothing changes.
MAX_K = 1024
_TEMPERATURES = torch.logspace(-2, 3, 501)  # the grid searched by fit_temperature
# A recorded temperature outside the grid's range is no fit of ours: near 0 the probabilities
# become NaN ("nan % sure"), towards infinity every digit gets the same share.
TEMPERATURE_RANGE = (float(_TEMPERATURES[0]), float(_TEMPERATURES[-1]))
CLEAN_KEPT = 0.99  # share of clean validation digits a background model's threshold lets through
DISTORTED_KEPT = 0.95  # share of distorted validation digits any not-a-digit threshold lets through
# What the temperature is fitted on (``fit``): "training", validation digits like the training data
# (clean, plus distorted copies for a model trained on distortions); "distorted", the distorted
# copies only, which tempers the overconfidence on blurred, pixelated or faint digits at the cost
# of some underconfidence on clean ones. Non-digits join either set for a background model.
TEMPERATURE_DATA = ("training", "distorted")


def check_settings(*, k: Any, temperature: Any, not_digit_threshold: Any, loglik_threshold: Any = None) -> None:
    """Raise ValueError naming the first recognition setting that is out of bounds."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
    low, high = TEMPERATURE_RANGE
    if not _finite(temperature) or not low <= temperature <= high:
        raise ValueError(f"temperature must be a finite number from {low:g} to {high:g}, not {temperature!r}")
    if not _finite(not_digit_threshold) or not 0 <= not_digit_threshold <= 1:
        raise ValueError(f"not_digit_threshold is a probability, from 0 to 1, not {not_digit_threshold!r}")
    if loglik_threshold is not None and not _finite(loglik_threshold):
        raise ValueError(f"loglik_threshold must be a finite number of nats, not {loglik_threshold!r}")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Calibration:
    """How a model's scores become probabilities and a "not a digit" verdict.

    Built by ``for_checkpoint`` (from a checkpoint's ``recognition`` metadata) or ``fit``; its
    settings are bounded (``check_settings``), so no checkpoint can ask for a 20 GB allocation."""

    temperature: float = 1.0
    k: int = DEFAULT_K  # importance samples per condition (CVAE recognisers)
    not_digit_threshold: float = 0.5  # p(not a digit) above which an input is called "not a digit"
    fitted_on: str = ""  # what the temperature and thresholds were fitted on
    # Models without a background condition: an input whose best log p(x | y) falls below this is
    # "unlike any digit"; set so that at most 5 % of distorted validation digits fall below it.
    loglik_threshold: float | None = None
    background: bool = False  # the scores carry a "not a digit" condition (the model's config)
    # Shares of the validation digits the rule flags (recorded by ``fit``; None when not measured).
    clean_flagged: float | None = None
    distorted_flagged: float | None = None

    def __post_init__(self) -> None:
        check_settings(k=self.k, temperature=self.temperature, not_digit_threshold=self.not_digit_threshold,
                       loglik_threshold=self.loglik_threshold)

    @classmethod
    def for_checkpoint(cls, meta: CheckpointMeta) -> Calibration:
        """The calibration of the model that ``meta`` (typed metadata) describes: the one builder.

        With a ``recognition`` record (``python -m cvae_core.robustness``): its K, temperature and
        thresholds. Without one: temperature 1, as many importance samples as its evaluation used
        (else ``DEFAULT_K``), and no likelihood threshold: a model without a background condition
        then cannot tell a non-digit (``can_tell``), because the only threshold it may have, set
        on clean test digits, flags most real digits written by other people."""
        background = meta.config.background
        rec = meta.recognition
        if rec is None:
            ev = meta.evaluation
            return cls(k=ev.k if ev is not None and ev.k else DEFAULT_K, background=background,
                       fitted_on="not calibrated")
        return cls(
            temperature=rec.temperature, k=rec.k, not_digit_threshold=rec.not_digit_threshold,
            fitted_on=rec.fitted_on, loglik_threshold=rec.loglik_threshold, background=background,
            clean_flagged=rec.clean_flagged, distorted_flagged=rec.distorted_flagged,
        )

    @property
    def can_tell(self) -> bool:
        """Has this model any evidence that an input is not a digit?"""
        return self.background or self.loglik_threshold is not None

    def not_a_digit(self, scores: Tensor, not_digit: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(flags (B,) bool: "this is not a digit", the score behind them (B,) or None).

        With a background condition: p(not a digit) above ``not_digit_threshold``; else the best
        log-likelihood below ``loglik_threshold`` (the score is then that log-likelihood); a model
        with neither flags nothing (``can_tell`` is False)."""
        if not_digit is not None:
            return not_digit > self.not_digit_threshold, not_digit
        if self.loglik_threshold is None:
            return torch.zeros(len(scores), dtype=torch.bool), None
        best = scores.max(1).values
        return best < self.loglik_threshold, best

    def flagged(self, scores: Tensor, *, classes: int) -> Tensor:
        """``not_a_digit``'s flags (B,) straight from the scores (B, conditions)."""
        _, not_digit = self.posterior(scores, classes=classes)
        return self.not_a_digit(scores, not_digit)[0]

    def posterior(self, scores: Tensor, *, classes: int) -> tuple[Tensor, Tensor | None]:
        """(p(y | x) for the ``classes`` digits (B, classes), p(not a digit | x) (B,) or None).

        With a background condition (``scores`` has ``classes + 1`` columns) the digit
        probabilities sum to 1 - p(not a digit): the rest is the chance it is none of them.
        """
        p = torch.softmax(scores.float() / self.temperature, dim=1)
        if scores.shape[1] > classes:
            return p[:, :classes], p[:, classes]
        return p, None

    def to_dict(self) -> dict[str, Any]:
        """What a checkpoint's ``recognition`` metadata records (``background`` is the model's config)."""
        out = asdict(self)
        del out["background"]
        return out


UNCALIBRATED = Calibration(fitted_on="not calibrated")  # temperature 1: the raw scores' softmax


def fit(
    clean: Tensor, distorted: Tensor, labels: Tensor, *, classes: int, k: int, likelihoods: bool,
    nondigits: Tensor | None = None, trained_distorted: bool, temperature_on: str = "training",
) -> Calibration:
    """A calibration from validation scores (N, conditions): ``clean`` digits, ``distorted`` copies
    of the same digits (same ``labels``), and for a background model the scores of generated
    ``nondigits``. ``likelihoods``: the scores are log p(x | y) (a CVAE), so a model without a
    background condition gets a likelihood threshold.

    The temperature is fitted on ``temperature_on`` (``TEMPERATURE_DATA``). The not-a-digit
    threshold lets through at least ``CLEAN_KEPT`` of the clean and ``DISTORTED_KEPT`` of the
    distorted digits: p(not a digit) above max(0.5, both quantiles) with a background condition;
    else the best log-likelihood below the lower of its two quantiles.
    """
    if temperature_on not in TEMPERATURE_DATA:
        raise ValueError(f"temperature_on must be one of {', '.join(TEMPERATURE_DATA)}, not {temperature_on!r}")
    background = nondigits is not None
    n = len(labels)
    parts = {"training": [clean, distorted] if trained_distorted else [clean], "distorted": [distorted]}[temperature_on]
    scores, targets = torch.cat(parts), labels.repeat(len(parts))
    words = {"training": "clean and distorted" if trained_distorted else "clean", "distorted": "distorted"}[temperature_on]
    if background:
        scores = torch.cat([scores, nondigits])
        targets = torch.cat([targets, torch.full((len(nondigits),), classes, dtype=targets.dtype)])
    temperature = fit_temperature(scores, targets)
    fitted_on = f"temperature on {n} validation digits ({words})" + (
        f" and {len(nondigits)} generated non-digits" if background else "")
    threshold, loglik = 0.5, None
    if background:
        unscaled = Calibration(temperature=temperature, background=True)
        (_, p_clean), (_, p_bent) = unscaled.posterior(clean, classes=classes), unscaled.posterior(distorted, classes=classes)
        threshold = max(0.5, float(torch.quantile(p_clean, CLEAN_KEPT)), float(torch.quantile(p_bent, DISTORTED_KEPT)))
        fitted_on += "; not-a-digit threshold on the clean and distorted validation digits"
    elif likelihoods:
        loglik = min(float(torch.quantile(clean.max(1).values, 1 - CLEAN_KEPT)),
                     float(torch.quantile(distorted.max(1).values, 1 - DISTORTED_KEPT)))
        fitted_on += f"; likelihood threshold on {n} clean and distorted validation digits"
    cal = Calibration(temperature=temperature, k=k, not_digit_threshold=threshold, loglik_threshold=loglik,
                      background=background, fitted_on=fitted_on)
    return replace(cal, clean_flagged=cal.flagged(clean, classes=classes).float().mean().item(),
                   distorted_flagged=cal.flagged(distorted, classes=classes).float().mean().item())


def fit_temperature(scores: Tensor, labels: Tensor) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (N,) under
    softmax(scores / T) (N, conditions); a 1-D search over a log grid, so it cannot diverge."""
    s = scores.float()
    nll = torch.stack([torch.nn.functional.cross_entropy(s / t, labels) for t in _TEMPERATURES])
    nll = torch.nan_to_num(nll, nan=math.inf)
    return float(_TEMPERATURES[int(nll.argmin())])


def expected_calibration_error(confidence: Tensor, correct: Tensor, *, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by the share of
    predictions in each bin (Naeini et al., 2015; Guo et al., 2017)."""
    confidence = confidence.float().clamp(0, 1)
    correct = correct.float()
    which = (confidence * bins).long().clamp(max=bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.float().mean().item() * abs(correct[inside].mean().item() - confidence[inside].mean().item())
    return total


def auroc(positive: Tensor, negative: Tensor) -> float:
    """Area under the ROC curve of a score meant to be higher on ``positive`` than on ``negative``:
    the probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = positive.double().flatten(), negative.double().flatten()
    if not len(pos) or not len(neg):
        return math.nan
    allv = torch.cat([pos, neg])
    order = allv.argsort()
    ranks = torch.empty_like(allv)
    ranks[order] = torch.arange(1, len(allv) + 1, dtype=torch.float64)
    # Average ranks over ties.
    uniq, inverse = torch.unique(allv, return_inverse=True)
    sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(ranks))
    ranks = (sums / counts)[inverse]
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))

"""Honest confidence: the recogniser's scores turned into calibrated probabilities, and how to check them.

A recogniser gives one score per condition (the CVAE: log p(x | y) in nats; the CNN reference:
logits). ``Calibration.posterior`` divides them by a temperature fitted on the validation split
(Guo et al., 2017) and applies Bayes' rule under a uniform prior: the result is p(y | x) over the
digits and, for a model with a background condition, the probability that the input is not a
digit at all. ``expected_calibration_error`` is the usual 15-bin measure of how far confidence
is from accuracy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

ECE_BINS = 15
# Models without a background condition: an input whose best log-likelihood falls below this
# quantile of the test digits' best log-likelihoods is "unlike any digit" (``evaluate`` records it).
OOD_QUANTILE = 0.005
_TEMPERATURES = torch.logspace(-2, 3, 501)  # the grid searched by fit_temperature


@dataclass(frozen=True)
class Calibration:
    """How a model's scores become probabilities; stored in a checkpoint's ``recognition`` metadata."""

    temperature: float = 1.0
    k: int = 8  # importance samples per condition (CVAE recognisers)
    not_digit_threshold: float = 0.5  # p(not a digit) above which an input is called "not a digit"
    fitted_on: str = ""  # what the temperature and threshold were fitted on
    # Models without a background condition: an input whose best log p(x | y) falls below this
    # (the 0.5 % quantile over the test digits, recorded by ``evaluate``) is "unlike any digit".
    loglik_threshold: float | None = None

    @classmethod
    def for_checkpoint(cls, meta: Any) -> Calibration:
        """The calibration a checkpoint's metadata records (``recognition``), else temperature 1 with
        the likelihood threshold of its evaluation, if any. ``meta`` is the raw JSON object or the
        typed ``CheckpointMeta``."""
        typed = getattr(meta, "recognition", None)
        if typed is not None:
            return typed.calibration
        if hasattr(meta, "raw"):
            meta = meta.raw
        if meta.get("recognition"):
            return cls.from_dict(meta["recognition"])
        threshold = (meta.get("evaluation") or {}).get("ood_threshold")
        return cls(loglik_threshold=float(threshold) if isinstance(threshold, int | float) else None,
                   fitted_on="not calibrated")

    def not_a_digit(self, scores: Tensor, not_digit: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(flags (B,) bool: "this is not a digit", the score behind them (B,) or None).

        With a background condition: p(not a digit) above ``not_digit_threshold``; else the best
        log-likelihood below ``loglik_threshold`` (the score is then that log-likelihood)."""
        if not_digit is not None:
            return not_digit > self.not_digit_threshold, not_digit
        if self.loglik_threshold is None:
            return torch.zeros(len(scores), dtype=torch.bool), None
        best = scores.max(1).values
        return best < self.loglik_threshold, best

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
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        keys = ("temperature", "k", "not_digit_threshold", "fitted_on", "loglik_threshold")
        return cls(**{k: data[k] for k in keys if k in data})


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

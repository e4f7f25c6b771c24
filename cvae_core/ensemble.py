"""Two recognisers reading one image together: a product of experts of their calibrated posteriors.

Each recogniser gives, through its own calibration, a distribution over the ten digits and "not a
digit". The pair's reading multiplies them and renormalises (Hinton, 2002): a label wins only when
both find it plausible, and an input is "not a digit" when together they say so. With calibrated
members this needs no weights to fit. The members share their conditions: both have a "not a
digit" condition, or neither.

``measure_pair`` scores each member and the pair on the same clean, corrupted and non-digit images,
so that "the pair beats both" is a measurement (``python -m benchmarks.pair``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cvae_core import nondigits
from cvae_core.calibration import Calibration, expected_calibration_error
from cvae_core.checkpoints import Checkpoint

_EPS = 1e-12


def full_log_posterior(cal: Calibration, scores: Tensor, *, classes: int) -> Tensor:
    """log p(condition | x) over the digits and, when the model has one, "not a digit": (B, classes [+ 1])."""
    probs, not_digit = cal.posterior(scores, classes=classes)
    full = probs if not_digit is None else torch.cat([probs, not_digit.unsqueeze(1)], 1)
    return full.clamp_min(_EPS).log()


def product_of_experts(members: Sequence[tuple[Calibration, Tensor]], *, classes: int) -> tuple[Tensor, Tensor | None]:
    """(p(y | x) over the digits (B, classes), p(not a digit | x) (B,) or None) of the members' product.

    ``members`` are (calibration, raw scores (B, conditions)) of recognisers with the same conditions
    (all with a "not a digit" condition, or none), on the same images."""
    if not members:
        raise ValueError("a product of experts needs at least one member")
    logs = [full_log_posterior(cal, raw, classes=classes) for cal, raw in members]
    if len({lp.shape[1] for lp in logs}) > 1:
        raise ValueError("the members of a product of experts must share their conditions (all with a "
                         "'not a digit' condition, or none)")
    combined = torch.softmax(torch.stack(logs).sum(0), 1)
    if combined.shape[1] > classes:
        return combined[:, :classes], combined[:, classes]
    return combined, None


# ------------------------------------------------------------------------------ measurement


def _grade(probs: Tensor, not_digit: Tensor | None, labels: Tensor, threshold: float) -> dict[str, float]:
    conf, predicted = probs.max(1)
    correct = predicted == labels
    out = {"accuracy": correct.float().mean().item(), "ece": expected_calibration_error(conf, correct)}
    if not_digit is not None:
        out["flagged"] = (not_digit > threshold).float().mean().item()
    return out


def measure_pair(ckpts: Sequence[Checkpoint], images: Tensor, labels: Tensor, *, seed: int = 0) -> dict[str, Any]:
    """Each member and their product on the same clean, corrupted and non-digit images (uint8 (N, H, W))."""
    from cvae_core.corruptions import CORRUPTIONS, corrupt
    from cvae_core.data import to_float
    from cvae_core.robustness import all_scores

    classes = ckpts[0].config.num_classes
    cals = [Calibration.for_checkpoint(c.info) for c in ckpts]
    names = [c.name for c in ckpts] + ["pair"]
    threshold = max(cal.not_digit_threshold for cal in cals)  # the stricter member's rule, for the pair

    def graded(x: Tensor, y: Tensor, desc: str) -> dict[str, dict[str, float]]:
        raws = [all_scores(c.model, x, k=cal.k, seed=seed, desc=f"{c.name} {desc}") for c, cal in zip(ckpts, cals, strict=True)]
        out = {c.name: _grade(*cal.posterior(raw, classes=classes), y, cal.not_digit_threshold)
               for c, cal, raw in zip(ckpts, cals, raws, strict=True)}
        out["pair"] = _grade(*product_of_experts(list(zip(cals, raws, strict=True)), classes=classes), y, threshold)
        return out

    x = to_float(images)
    result: dict[str, Any] = {"members": names[:-1], "n": len(labels), "clean": graded(x, labels, "clean")}
    per_corruption = {}
    for i, (name, c) in enumerate(CORRUPTIONS.items()):
        rows = [graded(corrupt(x, name, sev, seed=seed + 1000 * i + j), labels, f"{name} {sev}")
                for j, sev in enumerate(c.severities)]
        per_corruption[name] = {m: sum(r[m]["accuracy"] for r in rows) / len(rows) for m in names}
    result["corruptions"] = per_corruption
    result["mean_corruption_accuracy"] = {m: sum(v[m] for v in per_corruption.values()) / len(per_corruption) for m in names}
    letters = torch.cat([item["images"] for fam, item in nondigits.ood_set().items() if fam.startswith("letters")])
    flagged = graded(letters, torch.zeros(len(letters), dtype=torch.long), "letters")
    result["letters_flagged"] = {m: flagged[m].get("flagged") for m in names}
    return result

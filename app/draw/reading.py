"""What one model makes of one 28x28 input, cached: the recognised digit first, then the rest.

Per model and input, ``cvae_core.inference.recognise`` (the classification's own encoder pass) for
what the "Recognised digit" metric needs, then ``inference.restyle_all`` (one decoder pass) for
what the page shows after it, each cached with ``st.cache_data`` on the input and the model's
signature.

Every probability shown is calibrated (``cvae_core.calibration.Calibration.for_checkpoint``, the
one builder that ``predict`` and the robustness suite use too: the temperature fitted by
``python -m cvae_core.robustness``, temperature 1 for models without one), and an input is "not a
digit" by the calibration's rule: p(not a digit) above its threshold for models trained with a
background condition, else the best log-likelihood below a threshold set on distorted validation
digits; a model with neither says that it cannot tell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from cvae_core import inference
from cvae_core.calibration import DISTORTED_KEPT, Calibration
from cvae_core.catalogue import ModelEntry

SEED = 0  # one seed for the noise and the importance samples: the same input gets the same answer
# A top probability below this is not an answer: the page shows the two best candidates ("3 or 5?").
# Calibrated probabilities mean what they say, so below 0.6 the model is wrong about as often as
# two guesses in five: too often to state one digit.
UNSURE_BELOW = 0.6


@dataclass
class Recognition:
    """Which digit one model reads in one 28x28 input: all the "Recognised digit" metric needs."""

    model: str
    probs: np.ndarray  # (classes,) calibrated p(y | x); with a background they sum to 1 - not_digit
    log_px: np.ndarray  # (conditions,) log p(x | y) in nats (a background model has one more)
    not_digit: float | None = None  # calibrated p(not a digit | x); None without a background condition
    flagged: bool = False  # "this does not look like a digit", by the model's calibration
    score: float | None = None  # what the flag rests on: p(not a digit), else the best log-likelihood

    @property
    def label(self) -> int:
        return int(self.probs.argmax())

    @property
    def confidence(self) -> float:
        return float(self.probs.max())

    @property
    def candidates(self) -> tuple[int, int]:
        """The two most probable digits, best first."""
        best, second = np.argsort(-self.probs, kind="stable")[:2]
        return int(best), int(second)

    @property
    def unsure(self) -> bool:
        return not self.flagged and self.confidence < UNSURE_BELOW

    @property
    def best_log_px(self) -> float:
        return float(self.log_px[: len(self.probs)].max())

    @property
    def answer(self) -> str:
        """The reading in words: "7", "3 or 5?" or "not a digit"."""
        if self.flagged:
            return "not a digit"
        if self.unsure:
            return "{} or {}?".format(*self.candidates)
        return str(self.label)


@dataclass
class Details:
    """The rest of what one model makes of one input, under the label it recognises."""

    recon: np.ndarray  # (28, 28) reconstruction
    restyled: np.ndarray  # (classes, 28, 28) the input's style under every label
    mean: np.ndarray  # (D,) posterior mean
    std: np.ndarray  # (D,) posterior standard deviation


def calibration(entry: ModelEntry) -> Calibration:
    """The model's calibration (``Calibration.for_checkpoint``)."""
    return Calibration.for_checkpoint(entry.info)


def _batch(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).view(1, 1, *pixels.shape)  # (1, 1, H, W)


@st.cache_data(max_entries=256, show_spinner=False)
def recognise(_entry: ModelEntry, signature: str, pixels: np.ndarray) -> tuple[Recognition, np.ndarray, np.ndarray]:
    """Which digit one model reads in one 28x28 input (``signature`` keys the cache), and the
    posterior's mean and standard deviation (D,) under that digit: no decoder pass, so the answer
    is on screen before the images are decoded."""
    cal = calibration(_entry)
    generator = torch.Generator().manual_seed(SEED)
    r = inference.recognise(_entry.model, _batch(pixels), generator=generator, calibration=cal)
    flags, score = cal.not_a_digit(r.log_px, r.not_digit)
    recognition = Recognition(
        model=_entry.name, probs=r.probs[0].numpy(), log_px=r.log_px[0].numpy(),
        not_digit=None if r.not_digit is None else float(r.not_digit[0]),
        flagged=bool(flags[0]), score=None if score is None else float(score[0]),
    )
    return recognition, r.mean[0].numpy(), r.std[0].numpy()


@st.cache_data(max_entries=256, show_spinner=False)
def details(_entry: ModelEntry, signature: str, pixels: np.ndarray) -> Details:
    """The input's reconstruction under the digit ``recognise`` reads, its style under every label
    and the posterior under that digit: one decoder pass after the recognition."""
    mine, mean, std = recognise(_entry, signature, pixels)
    restyled = inference.restyle_all(_entry.model, torch.from_numpy(mean)[None])[0].numpy()
    return Details(recon=restyled[mine.label], restyled=restyled, mean=mean, std=std)


def read(entry: ModelEntry, signature: str, pixels: np.ndarray) -> tuple[Recognition, Details]:
    """What one model makes of one input: ``recognise`` and ``details``."""
    return recognise(entry, signature, pixels)[0], details(entry, signature, pixels)


def has_digit_check(entry: ModelEntry) -> bool:
    """Can this model tell that an input is not a digit (a background condition or a likelihood threshold)?"""
    return calibration(entry).can_tell


CANNOT_TELL = ("{name} cannot tell whether this is a digit at all: it has no “not a digit” class, and no "
               "likelihood threshold has been set for it on distorted validation digits (one set on clean test "
               "digits would call most real handwriting “not a digit”). It always names a digit.")


def not_digit_explanation(entry: ModelEntry, mine: Recognition) -> str:
    """Why the input was (or was not) called "not a digit", for the help text."""
    cal = calibration(entry)
    if mine.not_digit is not None:
        return (f"{entry.name} was trained with a “not a digit” class of generated scribbles and shapes. It gives "
                f"this input a {mine.not_digit:.1%} chance of being no digit at all; above "
                f"{cal.not_digit_threshold:.0%} the page says “not a digit”. The threshold keeps 99 % of real "
                "validation digits.")
    best = f"Its best log-likelihood here is {mine.best_log_px:.0f} nats (as a {int(np.argmax(mine.log_px[:len(mine.probs)]))})"
    return (f"{best}; the threshold is {cal.loglik_threshold:.0f} nats, set on distorted validation digits so that "
            f"{DISTORTED_KEPT:.0%} of them (and more of the clean ones) score above it.")

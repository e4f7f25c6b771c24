"""Read a handwritten number: its digits found (``segment``), each read by the recogniser.

    from cvae_core.numbers import read_number
    reading = read_number(Path("90210.jpg").read_bytes())
    reading.text  # "90210"; "?" where a digit is unsure or not a digit

Each digit goes through the same MNIST treatment as a single digit (``cvae_core.images.preprocess``)
and the same recogniser and calibration as ``python -m cvae_core.predict`` (the catalogue's
default recogniser unless one is given): its calibrated probabilities, its probability of
being no digit at all, and the verdict. A position whose best probability is below
``UNSURE_BELOW``, or that the model judges not a digit, is shown as ``?``, never as a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from cvae_core.calibration import Calibration
from cvae_core.catalogue import default_recogniser, discover
from cvae_core.checkpoints import Checkpoint
from cvae_core.images.files import MAX_SIDE, InputError, decode_image
from cvae_core.images.preprocess import composite, prepare_array
from cvae_core.inference import classify
from cvae_core.numbers import segment

# Calibrated probabilities mean what they say: below 0.6 the best digit is wrong about two times
# in five, too often to write it down (the Draw page's "3 or 5?" rule).
UNSURE_BELOW = 0.6
UNSURE = "?"


@dataclass(frozen=True)
class DigitReading:
    """One digit of a number as the recogniser reads it."""

    box: segment.Box  # x0, y0, x1, y1 in the input's pixels (x1, y1 exclusive)
    probs: tuple[float, ...]  # calibrated p(digit | crop); with a "not a digit" condition they sum to 1 - not_digit
    not_digit: float | None  # p(not a digit | crop); None for a model without that condition
    digit: bool | None  # False: the model judges the mark not to be a digit; None: the model cannot tell
    image: np.ndarray  # (28, 28) float32: what the model read

    @property
    def label(self) -> int:
        return int(np.argmax(self.probs))

    @property
    def confidence(self) -> float:
        return float(max(self.probs))

    @property
    def unsure(self) -> bool:
        """Shown as ``?``: not a digit, or no digit reaches ``UNSURE_BELOW``."""
        return self.digit is False or self.confidence < UNSURE_BELOW

    @property
    def shown(self) -> str:
        return UNSURE if self.unsure else str(self.label)

    def top(self, n: int = 2) -> list[tuple[int, float]]:
        """The ``n`` most probable digits with their probabilities, best first."""
        order = np.argsort(-np.asarray(self.probs), kind="stable")[:n]
        return [(int(d), float(self.probs[d])) for d in order]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "probs": [round(p, 6) for p in self.probs], "digit": self.digit,
                "box": list(self.box)}


@dataclass(frozen=True)
class NumberReading:
    """A number read from one picture: its digits left to right, and what a correction needs (the
    picture's ink, each digit's mark, the digits' height and the writing's slant)."""

    digits: tuple[DigitReading, ...]
    size: tuple[int, int]  # the input's width and height in pixels
    model: str
    page: segment.Ink = field(repr=False, compare=False)
    marks: tuple[segment.Mark, ...] = field(repr=False, compare=False)  # one per digit
    height: float = 0.0
    slant: float = 0.0

    @property
    def text(self) -> str:
        """The number as read, ``?`` at each unsure position."""
        return "".join(d.shown for d in self.digits)


class Recogniser:
    """A loaded model and its calibration (as ``predict`` uses them), reading 28x28 digits in batches;
    importance samples are seeded, so the same picture always gets the same reading."""

    def __init__(self, ckpt: Checkpoint, *, k: int | None = None, seed: int = 0) -> None:
        self.ckpt = ckpt
        self.calibration = Calibration.for_checkpoint(ckpt.info)
        self.k = k
        self.seed = seed

    @classmethod
    def default(cls) -> Recogniser:
        """The shipped recogniser that recognises best (``catalogue.default_recogniser``); a
        ``CheckpointError`` when none loads."""
        return cls(default_recogniser(discover()).ckpt)

    def read(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Images (B, 1, 28, 28) -> (probs (B, 10), p(not a digit) (B,) or None, not-a-digit flags
        (B,), None when the model cannot tell: ``Calibration.can_tell``)."""
        gen = torch.Generator().manual_seed(self.seed)
        probs, raw, not_digit = classify(self.ckpt.model, images, k=self.k, generator=gen, calibration=self.calibration)
        flags, _ = self.calibration.not_a_digit(raw, not_digit)
        if not torch.isfinite(probs).all():
            raise InputError("The model produced invalid probabilities for this image.")
        return (probs.numpy(), None if not_digit is None else not_digit.numpy(),
                flags.numpy() if self.calibration.can_tell else None)


@dataclass
class _Read:
    """A mark as the recogniser read it, or why it could not be (the preprocessing found no digit)."""

    image: np.ndarray | None = None
    probs: np.ndarray | None = None
    not_digit: float | None = None
    digit: bool | None = None
    problem: str | None = None

    @property
    def score(self) -> float:
        """How confidently the mark reads as one digit: its best calibrated probability, which
        already leaves out the chance that it is no digit, halved when the model calls it not a
        digit; 0 when it could not be read."""
        return 0.0 if self.probs is None else float(self.probs.max()) * (0.5 if self.digit is False else 1.0)


class _Marks:
    """Reads marks for ``segment`` once each (keyed by their ink and place), in batches."""

    def __init__(self, page: segment.Ink, recogniser: Recogniser) -> None:
        self.page = page
        self.recogniser = recogniser
        self.cache: dict[tuple, _Read] = {}

    def __call__(self, marks: Sequence[segment.Mark]) -> list[float]:
        return [r.score for r in self.read(marks)]

    def read(self, marks: Sequence[segment.Mark]) -> list[_Read]:
        new: dict[tuple, _Read] = {}
        tensors = []
        for m in marks:
            if m.key in self.cache or m.key in new:
                continue
            try:
                prepared = prepare_array(m.crop(self.page))
            except InputError as e:
                new[m.key] = _Read(problem=str(e))
                continue
            new[m.key] = _Read(image=prepared.tensor[0, 0].numpy())
            tensors.append((m.key, prepared.tensor))
        if tensors:
            probs, not_digit, flags = self.recogniser.read(torch.cat([t for _, t in tensors]))
            for i, (key, _) in enumerate(tensors):
                r = new[key]
                r.probs, r.digit = probs[i], None if flags is None else not bool(flags[i])
                r.not_digit = None if not_digit is None else float(not_digit[i])
        self.cache.update(new)
        return [self.cache[m.key] for m in marks]


# --------------------------------------------------------------------------------------- input


def greyscale(source: bytes | np.ndarray | Image.Image) -> tuple[np.ndarray, tuple[int, int]]:
    """The picture as float32 greyscale in [0, 1], from PNG/JPEG bytes, a Pillow image or an array
    ((H, W) or (H, W, C) with C = 1, 3 or 4; uint8, bool or float in [0, 1]), and the picture's
    own (width, height). A large picture is box-reduced while still 8-bit; one over ``MAX_SIDE``
    pixels a side is refused."""
    if isinstance(source, bytes | bytearray | memoryview):
        source = decode_image(bytes(source))
    if isinstance(source, Image.Image):
        return _from_image(source), source.size
    arr = np.asarray(source)
    if arr.dtype.kind not in "buf" or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise InputError(f"Expected a greyscale or colour image array, got shape {arr.shape} of {arr.dtype}.")
    h, w = arr.shape[:2]
    if h > MAX_SIDE or w > MAX_SIDE:
        raise InputError(f"The image is {w}x{h} pixels; the limit is {MAX_SIDE}x{MAX_SIDE}. Please crop or reduce it.")
    if arr.size == 0:
        raise InputError("The image is empty (0 pixels).")
    if arr.dtype == np.uint8:
        return _from_image(Image.fromarray(arr[..., 0] if arr.shape[2:] == (1,) else arr)), (w, h)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError("The image data contains invalid values (NaN or infinity).")
    plane = arr.astype(np.float32)
    plane = plane.mean(2) if plane.ndim == 3 else plane
    return np.clip(plane, 0.0, 1.0), (w, h)


def _from_image(img: Image.Image) -> np.ndarray:
    w, h = img.size
    if max(w, h) > MAX_SIDE:
        raise InputError(f"The image is {w}x{h} pixels; the limit is {MAX_SIDE}x{MAX_SIDE}. Please crop or reduce it.")
    if img.mode not in ("L", "RGB", "RGBA", "LA"):
        img = img.convert("RGBA" if "transparency" in img.info or "A" in img.mode else "RGB")
    f = max(w, h) // segment.WORK_SIDE
    if f >= 2 and min(w, h) // f >= segment.MIN_SIDE:
        img = img.reduce(f)  # while still 8-bit: a 4000-pixel photo costs what a 2000-pixel one does
    lum = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    if "A" not in img.mode:
        return lum
    alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
    return composite(lum, None if alpha.min() > 0.99 else alpha)


# ------------------------------------------------------------------------------------- reading


def read_number(source: bytes | np.ndarray | Image.Image, *, recogniser: Recogniser | None = None) -> NumberReading:
    """Read the number in a picture (module docstring). ``InputError`` (a message for a person) when
    no number can be found: a blank picture, a dot, noise, more than ``segment.MAX_DIGITS`` marks."""
    recogniser = recogniser or Recogniser.default()
    page = segment.find_ink(*greyscale(source))
    marks = _Marks(page, recogniser)
    layout = segment.segment(page, marks)
    return _reading(marks, layout.marks, layout.height, layout.slant)


def _reading(marks: _Marks, found: Sequence[segment.Mark], height: float, slant: float) -> NumberReading:
    """The reading of ``found`` (read by ``marks``, once each): the marks the preprocessing finds
    no digit in are left out; none left is an ``InputError``."""
    reads = marks.read(found)
    kept = [(m, r) for m, r in zip(found, reads, strict=True) if r.probs is not None]
    if not kept:
        problems = [r.problem for r in reads if r.problem]
        raise InputError(problems[0] if problems else "No number found. Please write or upload a number.")
    page = marks.page
    digits = tuple(
        DigitReading(box=m.box_in(page), probs=tuple(float(p) for p in r.probs), not_digit=r.not_digit,
                     digit=r.digit, image=r.image)
        for m, r in kept
    )
    return NumberReading(digits=digits, size=page.size, model=marks.recogniser.ckpt.name, page=page,
                         marks=tuple(m for m, _ in kept), height=height, slant=slant)


# ---------------------------------------------------------------------------------- corrections


def merge(reading: NumberReading, i: int, *, recogniser: Recogniser) -> NumberReading:
    """The reading with digits ``i`` and ``i + 1`` read as one (a person says they are one digit)."""
    if not 0 <= i < len(reading.marks) - 1:
        raise InputError("There is no next digit to join this one with.")
    joined = segment.union(reading.marks[i], reading.marks[i + 1])
    found = [*reading.marks[:i], joined, *reading.marks[i + 2 :]]
    return _reading(_Marks(reading.page, recogniser), found, reading.height, reading.slant)


def split(reading: NumberReading, i: int, *, recogniser: Recogniser) -> NumberReading:
    """The reading with digit ``i`` cut in two (a person says it is two digits), where the two
    halves read best as digits; ``InputError`` when it cannot be cut."""
    if not 0 <= i < len(reading.marks):
        raise InputError("There is no such digit.")
    if len(reading.marks) >= segment.MAX_DIGITS:
        raise segment.too_many(len(reading.marks) + 1)
    mark = reading.marks[i]
    marks = _Marks(reading.page, recogniser)
    cuts = segment.candidate_cuts(mark, reading.height, reading.slant, asked=True)
    if not cuts:
        raise InputError("This mark is too small to cut in two.")
    scores = marks([half for pair in cuts for half in pair])
    reads = [scores[2 * c] * scores[2 * c + 1] for c in range(len(cuts))]
    # The first that reads about as well as the best: the paths that cross the least ink come first.
    best = next(c for c in range(len(cuts)) if reads[c] >= max(reads) - 0.02)
    found = [*reading.marks[:i], *cuts[best], *reading.marks[i + 1 :]]
    return _reading(marks, found, reading.height, reading.slant)

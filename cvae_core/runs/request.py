"""What a visitor may ask the server to train: a ``RunRequest``, checked before anything runs.

Every field is bounded (``LIMITS``) and typed: NaN, infinity, a string, a boolean where a number
belongs, 0 epochs or a latent size of 10^6 are refused with ``RunRefused`` and a sentence that
names the field and its allowed range. A run's cost, epochs x training images, is capped by the
server's budget (``$CVAE_TRAIN_BUDGET``); an over-budget request is told the largest it may ask.

``train_args`` is the run as a ``python -m cvae_core.train`` command: the app shows it, the worker
parses it with the same parser, and typing it reproduces the run.
"""

from __future__ import annotations

import math
import os
import shlex
from dataclasses import asdict, dataclass, fields
from typing import Any

ALL_TRAINING_IMAGES = 55000  # the 60,000 MNIST training images less the 5,000 of the validation split
BUDGET_ENV = "CVAE_TRAIN_BUDGET"
# Epochs x training images one run may cost: the paper's conv-2 (60 epochs of all 55,000 images).
DEFAULT_BUDGET = 60 * ALL_TRAINING_IMAGES
ARCHITECTURES = {"mlp": "MLP: 784 → 512 → 512 → z, mirrored", "conv": "conv: the paper's Conv 16, Conv 8 (3x3), mirrored"}
TRAINING_SIZES = (5000, 10000, ALL_TRAINING_IMAGES)  # what the page offers; any size within LIMITS is allowed

# field: (lowest, highest, what it is). Numbers outside are refused, never clipped.
LIMITS: dict[str, tuple[float, float, str]] = {
    "latent_dim": (1, 64, "latent size"),
    "beta": (0.01, 10.0, "β (weight of the KL term)"),
    "epochs": (1, 200, "epochs"),
    "lr": (1e-5, 1e-2, "learning rate"),
    "batch_size": (16, 1024, "batch size"),
    "train_size": (1000, ALL_TRAINING_IMAGES, "training images"),
    "disc_weight": (0.0, 100.0, "hybrid (class-posterior) weight"),
    "seed": (0, 2**31 - 1, "seed"),
    "eval_size": (100, 10000, "test digits evaluated at the end"),
    "calibration_size": (100, 5000, "validation digits the calibration is fitted on"),
}
INTEGERS = {"latent_dim", "epochs", "batch_size", "train_size", "seed", "eval_size", "calibration_size"}
# Rough seconds per training image on one core of the 2-core machine the benchmarks ran on
# (``python -m benchmarks.training`` measures them), and what a run costs besides its epochs: the
# process start, MNIST, the final calibration and evaluation. For the page's expected times only.
SECONDS_PER_IMAGE = {"mlp": 2.5e-4, "conv": 7e-4}
FIXED_SECONDS = 20.0
VALIDATION_IMAGES = 5000  # measured after every epoch (forward passes only, about a third of a training step)


class RunRefused(ValueError):
    """The request cannot run; the message says why, and what would be allowed."""


def budget() -> int:
    """Epochs x training images one run may cost on this server (``$CVAE_TRAIN_BUDGET``)."""
    raw = os.environ.get(BUDGET_ENV)
    if not raw:
        return DEFAULT_BUDGET
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < LIMITS["train_size"][0]:
        raise RunRefused(f"{BUDGET_ENV}={raw!r} is not a usable budget: give a whole number of image passes, "
                         f"at least {int(LIMITS['train_size'][0]):,}")
    return value


@dataclass(frozen=True)
class RunRequest:
    """One training run as the Train page asks for it; the paper's layers for either architecture."""

    arch: str = "mlp"
    latent_dim: int = 2
    beta: float = 1.0
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 128
    train_size: int = 10000
    augment: bool = False
    disc_weight: float = 0.0
    seed: int = 0
    eval_size: int = 1000  # the first N test digits measure the finished model
    calibration_size: int = 1000  # the first N validation digits fit its calibration (about 15 s)

    @property
    def cost(self) -> int:
        """Image passes: epochs x training images."""
        return self.epochs * self.train_size

    @property
    def expected_seconds(self) -> float:
        """About how long the run takes once it starts, on one core (``SECONDS_PER_IMAGE``)."""
        per_image = SECONDS_PER_IMAGE.get(self.arch, max(SECONDS_PER_IMAGE.values()))
        training = self.cost * per_image * (2.5 if self.disc_weight > 0 else 1.0) * (1.3 if self.augment else 1.0)
        measuring = self.epochs * (VALIDATION_IMAGES + self.eval_size) * per_image / 3
        return FIXED_SECONDS + training + measuring

    def check(self, *, limit: int | None = None) -> RunRequest:
        """Itself when it may run; else ``RunRefused`` naming the first field out of bounds, or the
        budget (``limit``, default ``budget()``) with the largest run of this size that fits."""
        if not isinstance(self.arch, str) or self.arch not in ARCHITECTURES:
            raise RunRefused(f"architecture must be one of {', '.join(ARCHITECTURES)}, not {self.arch!r}")
        if not isinstance(self.augment, bool):
            raise RunRefused(f"augmentation is on or off (true or false), not {self.augment!r}")
        for name, (low, high, what) in LIMITS.items():
            value = getattr(self, name)
            whole = name in INTEGERS
            if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
                kind = "a whole number" if whole else "a number"
                raise RunRefused(f"{what} must be {kind} from {low:g} to {high:g}, not {value!r}")
            if not math.isfinite(value) or not low <= value <= high:
                raise RunRefused(f"{what} must be from {low:g} to {high:g}, not {value!r}")
        if self.batch_size > self.train_size:
            raise RunRefused(f"batch size {self.batch_size} is larger than the {self.train_size:,} training images")
        limit = budget() if limit is None else limit
        if self.cost > limit:
            epochs = limit // self.train_size
            fits = (f"at most {epochs} epochs of {self.train_size:,} images" if epochs >= 1 else
                    f"at most {limit:,} training images for one epoch")
            raise RunRefused(
                f"{self.epochs} epochs x {self.train_size:,} images = {self.cost:,} image passes is over this "
                f"server's budget of {limit:,} per run ({BUDGET_ENV}): ask for {fits}")
        return self

    def train_args(self, name: str) -> list[str]:
        """The arguments of ``python -m cvae_core.train`` for this run, writing checkpoint ``name``."""
        args = ["--model", self.arch, "--latent-dim", str(self.latent_dim), "--epochs", str(self.epochs),
                "--batch-size", str(self.batch_size), "--lr", _number(self.lr), "--beta", _number(self.beta)]
        if self.train_size < ALL_TRAINING_IMAGES:
            args += ["--subset", str(self.train_size)]
        if self.augment:
            args.append("--augment")
        if self.disc_weight > 0:
            args += ["--disc-weight", _number(self.disc_weight)]
        # One thread, as the worker trains: the same command then gives the same weights.
        return [*args, "--seed", str(self.seed), "--eval-size", str(self.eval_size), "--threads", "1", "--out", name]

    def command(self, name: str) -> str:
        return shlex.join(["python", "-m", "cvae_core.train", *self.train_args(name)])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RunRequest:
        """The request a JSON object describes (not yet ``check``ed); unknown keys are refused."""
        if not isinstance(data, dict):
            raise RunRefused("a run request is a JSON object of settings")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise RunRefused(f"unknown settings: {', '.join(unknown)[:200]}")
        return cls(**data)


def _number(value: float) -> str:
    """The shortest text that reads back as the same float: the command trains what was asked."""
    return repr(float(value))


@dataclass(frozen=True)
class Preset:
    label: str
    request: RunRequest


PRESETS = (
    Preset("Quick 2-D MLP, about a minute", RunRequest()),
    Preset("The paper's conv-2 (60 epochs, all digits: most of an hour)",
           RunRequest(arch="conv", epochs=60, batch_size=64, train_size=ALL_TRAINING_IMAGES)),
)

"""The observer a worker passes to ``cvae_core.train.fit``: it writes the run's progress to its folder.

A "batch" point every ``every`` optimiser steps (about five an epoch, at most every 200 steps), an
"epoch" row after each epoch, and snapshots that show the model learning: the latent means of the
first 2,000 validation digits, the reconstructions of 10 fixed validation digits (the first of each
label) and one sample per label from fixed latent codes (so that samples compare across epochs).
Snapshots are taken before training (epoch 0) and after each epoch, at most ``MAX_SNAPSHOTS`` in all.

Nothing here draws from torch's global random numbers: a recorded run trains exactly as the same
``python -m cvae_core.train`` command does.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import Tensor

from cvae_core import inference
from cvae_core.data import to_float
from cvae_core.measures import latent_means
from cvae_core.models import CVAE
from cvae_core.runs.folder import RunFolder

POINTS_PER_EPOCH = 5
MAX_EVERY = 200  # optimiser steps between two points at most
SNAPSHOT_DIGITS = 2000  # validation digits whose latent means are recorded
MAX_SNAPSHOTS = 50  # a long run records every few epochs (and its last)
SAMPLE_SEED = 1234  # the fixed latent codes the samples are decoded from


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: nothing sensible can come of the rest of the run."""


def snapshot_due(epoch: int, epochs: int) -> bool:
    """Snapshots at epoch 0, every ``ceil(epochs / MAX_SNAPSHOTS)`` epochs, and the last."""
    return epoch in (0, epochs) or epoch % math.ceil(epochs / MAX_SNAPSHOTS) == 0


class Recorder:
    """Writes ``run``'s metrics and snapshots as ``fit`` reports them (``cvae_core.train.Observer``)."""

    def __init__(self, run: RunFolder, *, epochs: int, batch_size: int) -> None:
        self.run = run
        self.epochs = epochs
        self.batch_size = batch_size
        self.every = 1
        self.steps_per_epoch = 1
        self.start = time.perf_counter()

    def _seconds(self) -> float:
        return round(time.perf_counter() - self.start, 2)

    def started(self, model: CVAE, *, validation: tuple[Tensor, Tensor], epoch: int, steps_per_epoch: int) -> None:
        self.start = time.perf_counter()
        self.steps_per_epoch = steps_per_epoch
        self.every = max(1, min(MAX_EVERY, steps_per_epoch // POINTS_PER_EPOCH))
        images, labels = validation
        self.digits = images[:SNAPSHOT_DIGITS], labels[:SNAPSHOT_DIGITS]
        first = [int(hits[0]) for d in range(model.config.num_classes) if len(hits := (labels == d).nonzero()[:, 0])]
        self.fixed = images[first], labels[first]
        generator = torch.Generator().manual_seed(SAMPLE_SEED)
        self.codes = torch.randn(model.config.num_classes, model.config.latent_dim, generator=generator)  # (C, D)
        self.run.write_snapshot("fixed", {"images": self.fixed[0].numpy(), "labels": self.fixed[1].numpy()})
        self.run.append_metric({
            "kind": "start", "epoch": epoch, "epochs": self.epochs, "steps_per_epoch": steps_per_epoch,
            "total_steps": self.epochs * steps_per_epoch, "batch_size": self.batch_size, "every": self.every,
        })
        self.snapshot(model, epoch)

    def batches(self, *, epoch: int, step: int, means: dict[str, float]) -> None:
        check_finite(means, step)
        self.run.append_metric({"kind": "batch", "epoch": epoch, "step": step, "seconds": self._seconds(), **means})

    def epoch_done(self, model: CVAE, row: dict[str, float]) -> None:
        epoch = int(row["epoch"])
        check_finite(row, epoch * self.steps_per_epoch)
        self.run.append_metric({"kind": "epoch", **row, "epoch_seconds": row.get("seconds"),
                                "step": epoch * self.steps_per_epoch, "seconds": self._seconds()})
        if snapshot_due(epoch, self.epochs):
            self.snapshot(model, epoch)

    def snapshot(self, model: CVAE, epoch: int) -> None:
        """What the model makes of the fixed digits now, as small arrays (uint8 images, float16 codes)."""
        means = latent_means(model, *self.digits)  # (N, D)
        recon = inference.reconstruct(model, to_float(self.fixed[0]), self.fixed[1])  # (10, H, W)
        samples = inference.decode(model, self.codes, torch.arange(len(self.codes)))  # (C, H, W)
        self.run.write_snapshot(f"epoch-{epoch:04d}", {
            "latents": np.clip(means.numpy(), -6e4, 6e4).astype(np.float16), "labels": self.digits[1].numpy().astype(np.uint8),
            "recon": _uint8(recon), "samples": _uint8(samples),
        })


def _uint8(images: Tensor) -> np.ndarray:
    return (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def check_finite(values: dict[str, float], step: int) -> None:
    bad = [k for k, v in values.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise TrainingDiverged(
            f"the {bad[0].replace('_', ' ')} became {values[bad[0]]} by step {step}: the learning rate (or β) is too "
            "large for this model; try a smaller one")

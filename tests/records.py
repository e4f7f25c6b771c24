"""Archive records for the archive tests: random 28x28 images, the fields the app saves."""

from __future__ import annotations

import numpy as np


def make_record(seed: int = 0, **overrides) -> dict:
    rng = np.random.default_rng(seed)
    record = {
        "model": "conv-2", "source": "canvas", "label": seed % 10, "confidence": 0.875, "sigma": 0.1,
        "input_image": rng.random((28, 28)), "recon_image": rng.random((28, 28)), "original": None,
        "filename": None,
    }
    record.update(overrides)
    return record

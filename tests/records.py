"""Archive records for the archive tests: random 28x28 images, the fields the app saves."""

from __future__ import annotations

import numpy as np

from cvae_core.archive import Record


def make_record(seed: int = 0, **overrides) -> dict:
    """A record as a mapping (the form older callers use), with only the fields the first version had."""
    rng = np.random.default_rng(seed)
    record = {
        "model": "conv-2", "source": "canvas", "label": seed % 10, "confidence": 0.875, "sigma": 0.1,
        "input_image": rng.random((28, 28)), "recon_image": rng.random((28, 28)), "original": None,
        "filename": None,
    }
    record.update(overrides)
    return record


def full_record(seed: int = 0, **overrides) -> Record:
    """A typed record with every field the Draw page knows: probabilities, log-likelihoods, partner."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=10) * 3
    probs = np.exp(logits - logits.max())
    probs *= (1 - 0.125) / probs.sum()  # a model with a "not a digit" condition: the rest is p(not a digit)
    fields = {
        "model": "mlp-2", "source": "canvas", "label": int(probs.argmax()), "confidence": float(probs.max()),
        "sigma": 0.0, "input_image": rng.random((28, 28)), "recon_image": rng.random((28, 28)),
        "probs": tuple(float(p) for p in probs), "log_likelihoods": tuple(float(v) for v in (*(-100 + logits), -140.0)),
        "not_digit": 0.125, "partner_model": "conv-2", "partner_label": 3, "partner_confidence": 0.5,
        "true_label": seed % 10,
    }
    fields.update(overrides)
    return Record(**fields)

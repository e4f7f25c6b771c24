"""The latent space of one model, cached for the Latent and Compare pages: the stored test-set
latents, decoded points, the manifold grid and interpolations.

Every function takes the entry (not hashed: leading underscore) and its signature, which keys
the cache, so a retrained model is never served another's images.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from app.draw.reading import SEED
from cvae_core import inference
from cvae_core.catalogue import ModelEntry

SPAN = 3.0  # latent sliders and maps cover [-SPAN, SPAN]
MAX_POINTS = 2000  # test-set points drawn in an all-labels scatter (a fixed subsample)
DECODE_CHUNK = 256  # latent points decoded per decoder call


@st.cache_data(max_entries=64, show_spinner=False)
def test_latents(_entry: ModelEntry, signature: str, label: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Stored test-set latent means (N, D) and labels (N,) for one label, or a fixed subsample of all."""
    ckpt = _entry.ckpt
    if ckpt.latents is None or ckpt.latent_labels is None:
        return None
    z, labels = ckpt.latents.numpy(), ckpt.latent_labels.numpy()
    if label is not None:
        keep = labels == label
        return z[keep], labels[keep]
    if len(labels) > MAX_POINTS:
        order = np.random.default_rng(SEED).permutation(len(labels))[:MAX_POINTS]
        return z[order], labels[order]
    return z, labels


@st.cache_data(max_entries=16, show_spinner=False)
def latent_plane(_entry: ModelEntry, signature: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The all-labels subsample projected to 2-D (principal axes when the latent space is larger)."""
    points = test_latents(_entry, signature, None)
    if points is None:
        return None
    z, labels = points
    return inference.principal_plane(torch.from_numpy(z)).numpy(), labels


@st.cache_data(max_entries=1024, show_spinner=False)
def decode_point(_entry: ModelEntry, signature: str, label: int, z: tuple[float, ...]) -> np.ndarray:
    return inference.decode(_entry.model, torch.tensor([z]), torch.tensor([label]))[0].numpy()


def decode_uint8(entry: ModelEntry, label: int, points: np.ndarray) -> np.ndarray:
    """(N, D) latent points decoded under one label, as uint8 (N, 28, 28), ``DECODE_CHUNK`` at a time
    (a conv decoder's activations for 1,936 points at once would take ~100 MB)."""
    chunks = []
    for part in torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).split(DECODE_CHUNK):
        images = inference.decode(entry.model, part, torch.full((len(part),), label))  # (n, 28, 28)
        chunks.append((images * 255 + 0.5).to(torch.uint8))
    return torch.cat(chunks).numpy()


@st.cache_data(max_entries=32, show_spinner=False)
def decode_points(_entry: ModelEntry, signature: str, label: int, points: np.ndarray) -> np.ndarray:
    """(N, D) latent points decoded under one label, as uint8 (N, 28, 28), cached."""
    return decode_uint8(_entry, label, points)


@st.cache_data(max_entries=64, show_spinner=False)
def manifold(_entry: ModelEntry, signature: str, label: int, n: int) -> np.ndarray:
    return inference.latent_grid(_entry.model, label, n, span=SPAN).numpy()


@st.cache_data(max_entries=128, show_spinner=False)
def interpolation(
    _entry: ModelEntry, signature: str, z0: tuple[float, ...], z1: tuple[float, ...], y0: int, y1: int, steps: int
) -> np.ndarray:
    return inference.interpolate(_entry.model, torch.tensor(z0), torch.tensor(z1), y0, y1, steps).numpy()

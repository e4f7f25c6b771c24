"""MNIST test digits for the Compare page: the first test image of each digit, and their
reconstructions by a model (the paper's Fig. 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import torch

from cvae_core import inference
from cvae_core.catalogue import ModelEntry
from cvae_core.config import NUM_CLASSES
from cvae_core.data import DEFAULT_CACHE, DataError, find_file, read_idx, resolve_data_dir


def mnist_folder() -> tuple[Path | None, str | None]:
    """The MNIST folder: ``$CVAE_DATA_DIR``, else the download cache of ``cvae_core.data``; or None and why."""
    try:
        folder = resolve_data_dir()
    except DataError as e:
        return None, str(e)
    downloaded = DEFAULT_CACHE / "MNIST" / "raw"  # torchvision's layout under the cache (see cvae_core.data)
    if folder is None and downloaded.is_dir():
        folder = downloaded
    if folder is None:
        return None, "Set the environment variable CVAE_DATA_DIR to the folder holding the MNIST files."
    return folder, None


@st.cache_resource(max_entries=4, show_spinner=False)
def test_examples(folder: str) -> tuple[np.ndarray, np.ndarray] | str:
    """The first test image of each digit as float (classes, 28, 28) with labels, or an error message."""
    try:
        images = read_idx(find_file(Path(folder), "t10k-images-idx3-ubyte"))
        labels = read_idx(find_file(Path(folder), "t10k-labels-idx1-ubyte"))
    except DataError as e:
        return str(e)
    first = [int(np.argmax(labels == d)) for d in range(NUM_CLASSES) if (labels == d).any()]
    return images[first].astype(np.float32) / 255.0, labels[first].astype(np.int64)


@st.cache_data(max_entries=16, show_spinner=False)
def reconstruct_examples(_entry: ModelEntry, signature: str, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images).unsqueeze(1)  # (classes, 1, 28, 28)
    return inference.reconstruct(_entry.model, x, torch.from_numpy(labels)).numpy()

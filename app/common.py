"""Shared plumbing for the pages: the models on disk, loaded once per process, and the cached
computations the pages display.

Models load with ``st.cache_resource``, keyed on the size and time of their files so that a
retrained or re-evaluated checkpoint is picked up without a restart. Everything derived from an
input is cached with ``st.cache_data`` keyed on the input's bytes, so a rerun that changes
nothing computes nothing. The torch work itself is ``cvae_core``'s; this module only orders it.
"""

from __future__ import annotations

import binascii
import dataclasses
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import streamlit as st
import torch
from PIL import Image

from app import catalogue
from cvae_core import inference
from cvae_core.checkpoints import checkpoint_dir, list_checkpoints
from cvae_core.data import DEFAULT_CACHE, DataError, find_file, read_idx, resolve_data_dir
from cvae_core.evaluate import OOD_QUANTILE, add_noise
from cvae_core.preprocess import InputError, decode_image, prepare_array, prepare_bytes

log = logging.getLogger(__name__)

SEED = 0  # one seed for the noise and the importance samples: the same input gets the same answer
MODEL_KEY = "sidebar_model"  # the sidebar's model picker
SPAN = 3.0  # latent sliders and maps cover [-SPAN, SPAN]
MAX_POINTS = 2000  # test-set points drawn in an all-labels scatter (a fixed subsample)
LOSS_CONVENTION = (
    "Loss = negative ELBO in nats per image: Bernoulli cross-entropy with the grey levels as "
    "targets (the usual convention) + KL to N(0, I). Lower is better."
)
TRAIN_HELP = """No trained model was found in `{folder}`.

Train the two 2-D models and evaluate them, then reload this page:

```
python -m cvae_core.train --model conv --latent-dim 2
python -m cvae_core.train --model mlp --latent-dim 2
python -m cvae_core.evaluate --checkpoint checkpoints/conv-2
python -m cvae_core.evaluate --checkpoint checkpoints/mlp-2
```

The MNIST folder comes from `--data-dir` or `$CVAE_DATA_DIR`; `CVAE_CHECKPOINT_DIR` picks another model folder."""


ModelEntry = catalogue.ModelEntry
closest = catalogue.closest
default_model = catalogue.default_model


@st.cache_resource(max_entries=64, show_spinner=False)
def _described(path: str, signature: str) -> ModelEntry:
    """Shared across sessions and read-only, like the models (``signature`` keys the cache)."""
    return catalogue.describe(Path(path), signature)


@st.cache_resource(max_entries=16, show_spinner="Loading a model…")
def _loaded(path: str, signature: str) -> ModelEntry:
    """The entry with its checkpoint, or with the reason it cannot be loaded (read once either way)."""
    return catalogue.load(_described(path, signature))


def _load_failures() -> dict[str, str]:
    """Checkpoints (by signature) that failed to load in this session: shown as unavailable from then on."""
    return st.session_state.setdefault("models_failed", {})


def all_models() -> list[ModelEntry]:
    """Every checkpoint in the checkpoint folder, sorted by name, described from its metadata (not loaded)."""
    failed = _load_failures()
    entries = []
    for path in list_checkpoints():
        entry = _described(str(path), catalogue.signature(path))
        if entry.error is None and entry.signature in failed:
            entry = dataclasses.replace(entry, error=failed[entry.signature])
        entries.append(entry)
    return entries


def available_models() -> list[ModelEntry]:
    return [e for e in all_models() if e.error is None]


def load(entry: ModelEntry) -> ModelEntry | None:
    """The entry with its model loaded (once per process), or None when it cannot be; the reason
    then shows in the sidebar."""
    loaded = _loaded(str(entry.path), entry.signature)
    if loaded.ckpt is None:
        _load_failures()[entry.signature] = loaded.error or "could not be loaded"
        return None
    return loaded


def selected_entry() -> ModelEntry | None:
    """The model picked in the sidebar (or the default), described but not loaded."""
    entries = available_models()
    chosen = st.session_state.get(MODEL_KEY)
    return next((e for e in entries if e.name == chosen), None) or default_model(entries)


def selected_model() -> ModelEntry | None:
    """The selected model, loaded; a model that fails to load is marked unavailable and the next is tried."""
    while (entry := selected_entry()) is not None:
        loaded = load(entry)
        if loaded is not None:
            return loaded
        st.session_state.pop(MODEL_KEY, None)  # back to the default among the models that are left
    return None


def partner_model(entry: ModelEntry) -> ModelEntry | None:
    """A model of the other architecture, at the same latent size when there is one, loaded."""
    while (other := catalogue.partner(available_models(), entry)) is not None:
        loaded = load(other)
        if loaded is not None:
            return loaded
    return None


def require_model() -> ModelEntry | None:
    """The selected model, loaded; with none available, explain how to train one and return None
    (the page then ends, and the router still draws the sidebar, which lists what is unusable)."""
    entry = selected_model()
    if entry is None:
        st.info(TRAIN_HELP.format(folder=checkpoint_dir()), icon=":material/model_training:")
    return entry


def archive_ui() -> ModuleType | None:
    """The archive's UI module, or None while it is not installed (the pages work without it)."""
    try:
        return importlib.import_module("app.archive_ui")
    except ModuleNotFoundError as e:
        if e.name != "app.archive_ui":
            raise
        return None


def escape_markdown(text: str) -> str:
    """Show ``text`` literally inside markdown (checkpoint names and errors come from files)."""
    return "".join("\\" + c if c in "\\`*_{}[]()<>#+-.!|~$:" else c for c in text)


# ---- summaries -------------------------------------------------------------------------------


def summary(entry: ModelEntry) -> dict[str, Any]:
    """The figures of the model card and the metrics table (None where not recorded)."""
    meta, ev = entry.meta, entry.evaluation
    test = meta.get("test") or {}
    return {
        "model": entry.name,
        "arch": entry.arch,
        "latent_dim": entry.latent_dim,
        "epochs": meta.get("epochs_run") or len(meta.get("history") or []) or None,
        "params": meta.get("num_params"),
        "test_loss": ev.get("test_loss", test.get("loss")),
        "recon": ev.get("recon", test.get("recon")),
        "kl": ev.get("kl", test.get("kl")),
        "accuracy": ev.get("accuracy"),
        "training_seconds": meta.get("training_seconds"),
    }


def verdict(a: dict[str, Any], b: dict[str, Any]) -> str:
    """One line from two ``summary`` dicts: which model has the lower test loss, which recognises better."""
    parts = []
    if a["test_loss"] is not None and b["test_loss"] is not None:
        low, high = sorted((a, b), key=lambda s: s["test_loss"])
        if abs(low["test_loss"] - high["test_loss"]) < 0.005:
            parts.append(f"{a['model']} and {b['model']} reach the same test loss ({low['test_loss']:.2f} nats)")
        else:
            parts.append(
                f"{low['model']} has the lower test loss ({low['test_loss']:.2f} vs {high['test_loss']:.2f} nats)"
            )
    if a["accuracy"] is not None and b["accuracy"] is not None:
        good, bad = sorted((a, b), key=lambda s: -s["accuracy"])
        if abs(good["accuracy"] - bad["accuracy"]) < 5e-5:
            parts.append(f"both recognise {100 * good['accuracy']:.2f} % of the test digits")
        else:
            parts.append(
                f"{good['model']} recognises better ({100 * good['accuracy']:.2f} % vs {100 * bad['accuracy']:.2f} %)"
            )
    else:
        missing = " and ".join(s["model"] for s in (a, b) if s["accuracy"] is None)
        parts.append(f"recognition accuracy is not recorded for {missing} yet")
    return "; ".join(parts) + "."


# ---- one input, read by one model ------------------------------------------------------------


@dataclass
class Recognition:
    """Which digit one model reads in one 28x28 input: all the "Recognised digit" metric needs."""

    model: str
    probs: np.ndarray  # (classes,) p(y | x)
    log_px: np.ndarray  # (classes,) log p(x | y) in nats

    @property
    def label(self) -> int:
        return int(self.probs.argmax())

    @property
    def confidence(self) -> float:
        return float(self.probs.max())

    @property
    def best_log_px(self) -> float:
        return float(self.log_px.max())


@dataclass
class Details:
    """The rest of what one model makes of one input, under the label it recognises."""

    recon: np.ndarray  # (28, 28) reconstruction
    restyled: np.ndarray  # (classes, 28, 28) the input's style under every label
    mean: np.ndarray  # (D,) posterior mean
    std: np.ndarray  # (D,) posterior standard deviation


@st.cache_data(max_entries=64, show_spinner=False)
def prepare(data: bytes) -> tuple[np.ndarray | None, str | None]:
    """Image file bytes -> (28x28 float32 model input, None) or (None, message for the user)."""
    try:
        prepared = prepare_bytes(data)
    except InputError as e:
        return None, str(e)
    return prepared.tensor[0, 0].numpy(), None


@st.cache_data(max_entries=64, show_spinner=False)
def prepare_pixels(rgba: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """The canvas's RGBA array -> (28x28 float32 model input, None) or (None, message for the user)."""
    try:
        prepared = prepare_array(rgba)
    except InputError as e:
        return None, str(e)
    return prepared.tensor[0, 0].numpy(), None


@st.cache_data(max_entries=16, show_spinner=False)
def original_image(data: bytes) -> Image.Image | None:
    """The decoded original (for the archive), or None when it cannot be decoded."""
    try:
        return decode_image(data)
    except InputError:
        return None


def canvas_pixels(result: Any) -> np.ndarray:
    """The canvas's drawing as an (H, W, 4) uint8 array; a malformed or oversized image is a bad input.

    The canvas sends a PNG data URL, which a client can forge: it is decoded by
    ``cvae_core.preprocess.decode_image``, which checks the format and the pixel count before
    decoding, never by Pillow unchecked.
    """
    try:
        data = result.image_bytes
    except (ValueError, binascii.Error):
        raise InputError("The drawing could not be read. Please clear the canvas and draw again.") from None
    if data is None:
        raise InputError("The drawing could not be read. Please clear the canvas and draw again.")
    return np.asarray(decode_image(data))


@st.cache_data(max_entries=64, show_spinner=False)
def noisy(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """The input plus Gaussian noise of standard deviation ``sigma``, clipped to [0, 1]; same seed each time."""
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).unsqueeze(0)  # (1, 28, 28)
    return add_noise(x, sigma, seed=SEED)[0].numpy()


def _batch(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).view(1, 1, *pixels.shape)  # (1, 1, H, W)


@st.cache_data(max_entries=256, show_spinner=False)
def read(_entry: ModelEntry, signature: str, pixels: np.ndarray) -> tuple[Recognition, Details]:
    """What one model makes of one 28x28 input (``signature`` keys the cache): which digit, and its
    reconstruction, style under every label and posterior under that digit. One call of
    ``cvae_core.inference.read``: the classification's own encoder pass plus one decoder pass."""
    generator = torch.Generator().manual_seed(SEED)
    r = inference.read(_entry.model, _batch(pixels), k=_entry.k, generator=generator)
    recognition = Recognition(model=_entry.name, probs=r.probs[0].numpy(), log_px=r.log_px[0].numpy())
    details = Details(recon=r.recon[0].numpy(), restyled=r.restyled[0].numpy(), mean=r.mean[0].numpy(),
                      std=r.std[0].numpy())
    return recognition, details


def ood_threshold(entry: ModelEntry) -> float | None:
    value = entry.evaluation.get("ood_threshold")
    return None if value is None else float(value)


def ood_explanation(entry: ModelEntry) -> str:
    """How the threshold was set, in one sentence for the user."""
    n = entry.evaluation.get("n", 10_000)
    return (f"The threshold is the {100 * OOD_QUANTILE:g} % quantile of the best log-likelihood of the "
            f"{n:,} MNIST test digits under this model, so {100 - 100 * OOD_QUANTILE:g} % of real digits "
            "score above it.")


# ---- latent space ------------------------------------------------------------------------------


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


@st.cache_data(max_entries=32, show_spinner=False)  # 190 KB each for a 2-D model
def decode_points(_entry: ModelEntry, signature: str, label: int, points: np.ndarray) -> np.ndarray:
    """(N, D) latent points decoded under one label, as uint8 (N, 28, 28) for the browser."""
    images = inference.decode(_entry.model, torch.from_numpy(points), torch.full((len(points),), label))
    return (images * 255 + 0.5).to(torch.uint8).numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def manifold(_entry: ModelEntry, signature: str, label: int, n: int) -> np.ndarray:
    return inference.latent_grid(_entry.model, label, n, span=SPAN).numpy()


@st.cache_data(max_entries=128, show_spinner=False)
def interpolation(
    _entry: ModelEntry, signature: str, z0: tuple[float, ...], z1: tuple[float, ...], y0: int, y1: int, steps: int
) -> np.ndarray:
    return inference.interpolate(_entry.model, torch.tensor(z0), torch.tensor(z1), y0, y1, steps).numpy()


# ---- MNIST test examples -------------------------------------------------------------------------


def mnist_folder() -> tuple[Path | None, str | None]:
    """The MNIST folder: ``$CVAE_DATA_DIR``, else the download cache of ``cvae_core.data``; or None and why."""
    try:
        folder = resolve_data_dir()
    except DataError as e:
        return None, str(e)
    downloaded = DEFAULT_CACHE / "MNIST" / "raw"
    if folder is None and downloaded.is_dir():
        folder = downloaded
    if folder is None:
        return None, "Set the environment variable CVAE_DATA_DIR to the folder holding the MNIST files."
    return folder, None


@st.cache_resource(max_entries=4, show_spinner=False)
def test_examples(folder: str) -> tuple[np.ndarray, np.ndarray] | str:
    """The first test image of each digit 0-9 as float (10, 28, 28) with labels, or an error message."""
    try:
        images = read_idx(find_file(Path(folder), "t10k-images-idx3-ubyte"))
        labels = read_idx(find_file(Path(folder), "t10k-labels-idx1-ubyte"))
    except DataError as e:
        return str(e)
    first = [int(np.argmax(labels == d)) for d in range(10) if (labels == d).any()]
    return images[first].astype(np.float32) / 255.0, labels[first].astype(np.int64)


@st.cache_data(max_entries=16, show_spinner=False)
def reconstruct_examples(_entry: ModelEntry, signature: str, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images).unsqueeze(1)  # (10, 1, 28, 28)
    return inference.reconstruct(_entry.model, x, torch.from_numpy(labels)).numpy()

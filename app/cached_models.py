"""The models the pages use: the core catalogue (``cvae_core.catalogue``), cached for the app.

Entries are described once per process and models loaded once per process with
``st.cache_resource`` (shared across sessions, read-only, eval mode), keyed on the size, time and
inode of their files so that a retrained or re-evaluated checkpoint is picked up without a
restart. The keys are bytes and printable text, so any file name hashes. Which model is shown
first and which pairs with which are the core's rules; this module only caches and remembers.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from pathlib import Path

import streamlit as st
import torch

from cvae_core import catalogue
from cvae_core.catalogue import ModelEntry
from cvae_core.checkpoints import checkpoint_dir
from cvae_core.runs import trained

MODEL_KEY = "sidebar_model"  # the sidebar's model picker
SETTLED_NS = 1_000_000_000  # a folder changed more recently than this is listed afresh
# Models kept loaded: the Draw page's pair and the Compare page's. Each costs 11-62 MB of resident
# memory (benchmarks/memory.py), torch itself ~505 MB; a dropped model reloads in well under a second.
MODELS_KEPT = 4
# torch threads per operation in the server. Every session's rerun is a thread of its own, and one
# input is a small batch: a second thread per operation saves a few ms on an idle machine, but when
# the other core is busy (another session, the visitor's own browser on a laptop) the operation waits
# for both and a 12 ms reading took 90-140 ms (benchmarks/browser.py). One thread keeps it steady.
SERVER_TORCH_THREADS = 1
TRAIN_HELP = """No trained model was found in `{folder}`.

Train the two 2-D models and evaluate them, then reload this page:

```
python -m cvae_core.train --model conv --latent-dim 2
python -m cvae_core.train --model mlp --latent-dim 2
python -m cvae_core.evaluate --checkpoint checkpoints/conv-2
python -m cvae_core.evaluate --checkpoint checkpoints/mlp-2
```

The MNIST folder comes from `--data-dir` or `$CVAE_DATA_DIR`; `CVAE_CHECKPOINT_DIR` picks another model folder."""


torch.set_num_threads(SERVER_TORCH_THREADS)


@st.cache_resource(max_entries=64, show_spinner=False)
def _described(path: bytes, signature: str, trained_here: bool = False) -> ModelEntry:
    """Shared across sessions and read-only, like the models (``signature`` keys the cache)."""
    return catalogue.describe(Path(os.fsdecode(path)), signature, trained_here=trained_here)


@st.cache_resource(max_entries=MODELS_KEPT, show_spinner="Loading a model…")
def _loaded(path: bytes, signature: str, trained_here: bool) -> ModelEntry:
    """The entry with its checkpoint, or with the reason it cannot be loaded (read once either way).
    Models load on first use; beyond ``MODELS_KEPT`` the least recently used one is dropped."""
    return _described(path, signature, trained_here).load()


def _load_failures() -> dict[str, str]:
    """Checkpoints (by signature) that failed to load in this session: shown as unavailable from then on."""
    return st.session_state.setdefault("models_failed", {})


def _listed(folder: Path, trained_folder: Path) -> tuple[ModelEntry, ...]:
    listed = [(path, False) for path in catalogue.find(folder)] + [(path, True) for path in trained.models(trained_folder)]
    return tuple(_described(os.fsencode(path), catalogue.signature(path), here) for path, here in listed)


@functools.lru_cache(maxsize=8)
def _listed_at(folder: Path, trained_folder: Path, stamps: tuple[int, int]) -> tuple[ModelEntry, ...]:
    """``_listed`` once per state of both folders (``stamps``: their modification times)."""
    return _listed(folder, trained_folder)


def _stamp(folder: Path) -> int | None:
    """The folder's modification time (-1 when it does not exist), or None while it may still be
    changing: every checkpoint and trained model is renamed into place, which changes the time of
    its folder, but two renames within the clock's granularity (a few ms) can share one time."""
    try:
        mtime = folder.stat().st_mtime_ns
    except OSError:
        return -1
    return mtime if time.time_ns() - mtime > SETTLED_NS else None


def all_models() -> list[ModelEntry]:
    """Every checkpoint in the checkpoint folder, sorted by name, then the models trained here
    (``cvae_core.runs.trained``: a new one needs no restart), described from their metadata (not
    loaded). The folders are listed again only when one of them has changed: listing and
    describing them on every call took about a quarter of the server's Python time per drawn digit."""
    failed = _load_failures()
    entries = []
    folder, trained_folder = checkpoint_dir(), trained.trained_dir()
    stamps = (_stamp(folder), _stamp(trained_folder))
    listed = _listed(folder, trained_folder) if None in stamps else _listed_at(folder, trained_folder, stamps)
    for entry in listed:
        if entry.ok and entry.signature in failed:
            entry = dataclasses.replace(entry, error=failed[entry.signature])
        entries.append(entry)
    return entries


def available_models() -> list[ModelEntry]:
    """The models a page can show: available CVAEs."""
    return catalogue.usable(all_models())


def load(entry: ModelEntry) -> ModelEntry | None:
    """The entry with its model loaded (once per process), or None when it cannot be; the reason
    then shows in the sidebar."""
    loaded = _loaded(os.fsencode(entry.path), entry.signature, entry.trained_here)
    if loaded.ckpt is None:
        _load_failures()[entry.signature] = loaded.error or "could not be loaded"
        return None
    return loaded


def selected_entry() -> ModelEntry | None:
    """The model picked in the sidebar, else the best recogniser (``catalogue.recogniser_ranking``)
    among the shipped models (a visitor's model trained here is never another's landing model),
    described but not loaded."""
    entries = available_models()
    chosen = st.session_state.get(MODEL_KEY)
    picked = next((e for e in entries if e.name == chosen), None)
    shipped = [e for e in entries if not e.trained_here]
    return picked or next(iter(catalogue.recogniser_ranking(shipped)), None) or catalogue.default_model(entries)


def selected_model() -> ModelEntry | None:
    """The selected model, loaded; a model that fails to load is marked unavailable and the next is tried."""
    while (entry := selected_entry()) is not None:
        loaded = load(entry)
        if loaded is not None:
            return loaded
        st.session_state.pop(MODEL_KEY, None)  # back to the default among the models that are left
    return None


def partner_model(entry: ModelEntry) -> ModelEntry | None:
    """A model of the other architecture (``catalogue.partner``) among the shipped ones, loaded."""
    while (other := catalogue.partner([e for e in available_models() if not e.trained_here], entry)) is not None:
        loaded = load(other)
        if loaded is not None:
            return loaded
    return None


def paper_pair(latent_dim: int) -> tuple[ModelEntry, ModelEntry] | None:
    """The paper's plain conv and MLP models at ``latent_dim`` (``catalogue.paper_pair``), described."""
    return catalogue.paper_pair(available_models(), latent_dim)


def require_model() -> ModelEntry | None:
    """The selected model, loaded; with none available, explain how to train one and return None
    (the page then ends, and the router still draws the sidebar, which lists what is unusable)."""
    entry = selected_model()
    if entry is None:
        st.info(TRAIN_HELP.format(folder=checkpoint_dir()), icon=":material/model_training:")
    return entry

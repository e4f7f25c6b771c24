"""The app's model list (``app.cached_models.all_models``) is read again when a checkpoint folder
changes, and only then: a checkpoint is renamed into place, which changes its folder's time. Models
load on first use and the least recently used is dropped beyond ``MODELS_KEPT``."""

from __future__ import annotations

import gc
import os
import shutil
import time
import weakref
from pathlib import Path

import pytest

from app import cached_models

COMMITTED = Path(__file__).resolve().parent.parent / "checkpoints"


def add(name: str, folder: Path) -> None:
    """Put a committed checkpoint into ``folder`` the way the core writes one: under a temporary
    name, then renamed into place."""
    for suffix in (".safetensors", ".json"):
        shutil.copy(COMMITTED / f"{name}{suffix}", folder / f".{name}{suffix}.tmp")
        os.replace(folder / f".{name}{suffix}.tmp", folder / f"{name}{suffix}")


@pytest.fixture
def folders(monkeypatch, tmp_path) -> Path:
    models, trained = tmp_path / "models", tmp_path / "trained"
    models.mkdir()
    monkeypatch.setenv("CVAE_CHECKPOINT_DIR", str(models))
    monkeypatch.setenv("CVAE_TRAINED_DIR", str(trained))
    monkeypatch.setattr(cached_models, "_load_failures", dict)  # no Streamlit session here
    return models


def names() -> list[str]:
    return [e.name for e in cached_models.all_models()]


def test_a_settled_folder_is_listed_once_and_again_after_a_change(folders, monkeypatch):
    monkeypatch.setattr(cached_models, "SETTLED_NS", 0)  # every folder counts as settled
    listed, real = [], cached_models._listed
    monkeypatch.setattr(cached_models, "_listed", lambda *folders: listed.append(folders) or real(*folders))
    add("conv-2", folders)
    assert names() == ["conv-2"]
    assert names() == ["conv-2"]
    assert len(listed) == 1  # the same folder: listed once
    time.sleep(0.05)  # past the folder clock's granularity
    add("mlp-2", folders)
    assert names() == ["conv-2", "mlp-2"]  # a new checkpoint appears without a restart
    assert len(listed) == 2


def test_a_folder_that_just_changed_is_listed_afresh(folders, monkeypatch):
    monkeypatch.setattr(cached_models, "SETTLED_NS", 10**12)  # everything is recent
    add("conv-2", folders)
    assert names() == ["conv-2"]
    (folders / "conv-2.json").write_text("{not json")  # rewritten in place: the folder's time may not move
    (entry,) = cached_models.all_models()
    assert entry.error is not None


def test_a_model_unused_while_others_load_is_dropped(monkeypatch):
    """Models load on first use; the least recently used one beyond ``MODELS_KEPT`` is let go (its
    memory with it)."""
    monkeypatch.setenv("CVAE_CHECKPOINT_DIR", str(COMMITTED))
    monkeypatch.setattr(cached_models, "_load_failures", dict)
    cached_models._loaded.clear()
    entries = [e for e in cached_models.all_models() if e.ok]
    assert len(entries) > cached_models.MODELS_KEPT
    first = weakref.ref(cached_models.load(entries[0]).model)
    for entry in entries[1 : cached_models.MODELS_KEPT]:
        cached_models.load(entry)
    gc.collect()
    assert first() is not None  # still among the ones kept
    cached_models.load(entries[cached_models.MODELS_KEPT])
    gc.collect()
    assert first() is None

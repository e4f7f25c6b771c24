"""The shipped checkpoints, loaded the way the app loads them (``cvae_core.catalogue``)."""

from __future__ import annotations

from pathlib import Path

from cvae_core import catalogue
from cvae_core.catalogue import ModelEntry
from cvae_core.checkpoints import checkpoint_dir
from cvae_core.models import MODELS


class NoModels(RuntimeError):
    """The checkpoint folder holds no checkpoint, or one that does not load."""


def shipped_models(folder: Path | None = None) -> list[ModelEntry]:
    """Every CVAE in the checkpoint folder (``$CVAE_CHECKPOINT_DIR`` or ``checkpoints/``), loaded: the
    models the app serves (a reference classifier is measured by ``cvae_core.robustness`` instead)."""
    folder = folder or checkpoint_dir()
    entries = [e for e in catalogue.discover(folder) if e.arch in MODELS]
    if not entries:
        raise NoModels(f"no checkpoints in {folder}; train some first (python -m cvae_core.train)")
    models = [e.load() for e in entries]
    broken = [f"{m.name}: {m.error}" for m in models if m.ckpt is None]
    if broken:
        raise NoModels("cannot load " + "; ".join(broken))
    return models

"""The models trained in the app: one folder each in ``$CVAE_TRAINED_DIR``, never ``checkpoints/``.

    TRAINED/<name>/<name>.safetensors, <name>.json, MANIFEST.sha256

``publish`` builds a model's folder whole under a hidden name (both checkpoint files and their
manifest) and renames it into place; ``delete`` renames it to a hidden name before removing it.
A rename is atomic, so a listing (``models``) never shows a half-written or half-deleted model:
hidden folders are never listed. The default folder is ``~/.local/share/cvae_digit_explorer/trained``,
outside the project, so the shipped models in ``checkpoints/`` stay as committed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

from cvae_core.checkpoints import paths_for, write_manifest
from cvae_core.runs.folder import data_home

TRAINED_ENV = "CVAE_TRAINED_DIR"
TRAINED_MAX_ENV = "CVAE_TRAINED_MAX"
DEFAULT_TRAINED_MAX = 100  # models kept; a full folder refuses new runs until one is deleted (5 MB each at most)
NAME = re.compile(r"^[a-z]+-\d{1,2}-[0-9a-f]{6}$")  # what ``RunFolder.create`` names a model


class TrainedModelError(RuntimeError):
    """A trained model cannot be published or deleted; the message says why."""


def trained_dir() -> Path:
    """``$CVAE_TRAINED_DIR``, else ``~/.local/share/cvae_digit_explorer/trained``."""
    return Path(os.environ.get(TRAINED_ENV) or data_home() / "trained")


def trained_max() -> int:
    raw = os.environ.get(TRAINED_MAX_ENV)
    return int(raw) if raw and raw.isdigit() and int(raw) > 0 else DEFAULT_TRAINED_MAX


def models(folder: Path | None = None) -> list[Path]:
    """The weights file of every published model, by name (at most ``trained_max()`` of them)."""
    folder = folder or trained_dir()
    try:
        names = sorted(p.name for p in folder.iterdir() if NAME.fullmatch(p.name) and p.is_dir())
    except OSError:
        return []
    return [folder / name / f"{name}.safetensors" for name in names[: trained_max()]]


def is_trained(weights: Path, folder: Path | None = None) -> bool:
    """Is ``weights`` the file of a model trained in the app?"""
    return weights.parent.parent == (folder or trained_dir()) and NAME.fullmatch(weights.parent.name) is not None


def publish(checkpoint: Path, name: str, folder: Path | None = None) -> Path:
    """Copy a finished checkpoint (path without suffix) into ``folder/name/`` with its manifest, in
    one rename; returns the weights path there."""
    if not NAME.fullmatch(name):
        raise TrainedModelError(f"{name!r} is not a trained model's name")
    folder = folder or trained_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if target.exists():
        raise TrainedModelError(f"a trained model named {name} already exists")
    staging = folder / f".{name}.new-{secrets.token_hex(3)}"
    staging.mkdir()
    try:
        for source in paths_for(checkpoint):
            shutil.copyfile(source, staging / f"{name}{source.suffix}")
        write_manifest(staging)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / f"{name}.safetensors"


def delete(name: str, folder: Path | None = None) -> None:
    """Remove a trained model: unlisted at once (a rename), then its files."""
    folder = folder or trained_dir()
    if not NAME.fullmatch(name) or not (folder / name).is_dir():
        raise TrainedModelError(f"there is no trained model named {name[:40]!r}")
    doomed = folder / f".{name}.deleted-{secrets.token_hex(3)}"
    try:
        os.rename(folder / name, doomed)
    except FileNotFoundError:
        raise TrainedModelError(f"{name} was deleted already") from None
    shutil.rmtree(doomed, ignore_errors=True)

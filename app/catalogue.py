"""The checkpoints on disk, described from their metadata, and which model pairs with which.

Listing reads each checkpoint's JSON and checks its weights file against the SHA-256 recorded
there (a few milliseconds for every shipped model), without building any model: the sidebar
can offer every model, and a damaged one is shown as unavailable, while only the models a page
uses are loaded. Loading runs every check of ``cvae_core.checkpoints.load_checkpoint``, so a
problem the listing cannot see (a stale manifest, weights that do not fit the config) makes
that model unavailable when it is first used.

Knows nothing of Streamlit: ``app.common`` caches these calls for the pages, and the
benchmarks use them as they are, so both pair models the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from cvae_core.checkpoints import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    paths_for,
    read_metadata,
    sha256_bytes,
)
from cvae_core.config import ModelConfig
from cvae_core.inference import DEFAULT_K
from cvae_core.models import CVAE

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ModelEntry:
    """One checkpoint on disk: described by its metadata, loaded on demand (``load``), or
    unavailable with the reason."""

    name: str
    path: Path  # the weights file
    signature: str  # changes whenever the weights or the metadata file is replaced
    config: ModelConfig | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    ckpt: Checkpoint | None = None  # set by ``load``

    @property
    def arch(self) -> str:
        return self.config.arch

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def model(self) -> CVAE:
        if self.ckpt is None:
            raise RuntimeError(f"{self.name} is not loaded")
        return self.ckpt.model

    @property
    def evaluation(self) -> dict[str, Any]:
        return self.meta.get("evaluation") or {}

    @property
    def k(self) -> int:
        """Importance samples per label: as many as the evaluation that calibrated the threshold used."""
        return int(self.evaluation.get("k", DEFAULT_K))


def signature(weights: Path) -> str:
    """The weights path with the size and modification time of both files of the checkpoint."""
    parts = [str(weights)]
    for path in paths_for(weights):
        try:
            stat = path.stat()
            parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
        except OSError:
            parts.append("missing")
    return "|".join(parts)


def describe(weights: Path, sig: str | None = None) -> ModelEntry:
    """The entry of one checkpoint from its metadata, with the weights' SHA-256 checked; never raises."""
    entry = ModelEntry(name=weights.stem, path=weights, signature=sig or signature(weights))
    try:
        meta = read_metadata(weights)
        config = ModelConfig.from_dict(meta["config"])
        expected = meta.get("weights_sha256")
        blob = weights.read_bytes()
    except CheckpointError as e:
        return dataclasses.replace(entry, error=str(e))
    except FileNotFoundError:
        return dataclasses.replace(entry, error=f"{weights.name}: weights file is missing")
    except (TypeError, ValueError, KeyError) as e:
        return dataclasses.replace(entry, error=f"{weights.stem}.json: invalid model config ({e})")
    except OSError as e:
        return dataclasses.replace(entry, error=f"{weights.name}: cannot be read ({e.strerror})")
    if expected and sha256_bytes(blob) != expected:
        return dataclasses.replace(entry, error=(
            f"{weights.name}: weights do not match their metadata (SHA-256); the file is damaged, truncated "
            "or from another run"))
    return dataclasses.replace(entry, config=config, meta=meta)


def load(entry: ModelEntry) -> ModelEntry:
    """A copy of ``entry`` with its checkpoint loaded, or with the reason it cannot be; never raises."""
    if entry.error is not None or entry.ckpt is not None:
        return entry
    try:
        return dataclasses.replace(entry, ckpt=load_checkpoint(entry.path))
    except CheckpointError as e:
        return dataclasses.replace(entry, error=str(e))
    except Exception as e:  # a model must never take the app down with it
        log.exception("unexpected error loading %s", entry.path)
        return dataclasses.replace(entry, error=f"could not be loaded ({type(e).__name__})")


class Described(Protocol):
    name: str

    @property
    def arch(self) -> str: ...

    @property
    def latent_dim(self) -> int: ...


E = TypeVar("E", bound=Described)


def canonical(entry: Described) -> bool:
    """Named as ``cvae_core.train`` names its output (``conv-2``, ``mlp-16``): the main model of its kind."""
    return entry.name == f"{entry.arch}-{entry.latent_dim}"


def closest(entries: Sequence[E], latent_dim: int) -> E | None:
    """The model of that latent size if any, preferring the canonically named one."""
    ranked = sorted(entries, key=lambda e: (e.latent_dim != latent_dim, not canonical(e), e.name))
    return ranked[0] if ranked else None


def default_model(entries: Sequence[E]) -> E | None:
    """conv at latent 2 (conv-2 first), else the model closest to latent 2."""
    convs = [e for e in entries if e.arch == "conv" and e.latent_dim == 2]
    return closest(convs or entries, 2)


def partner(entries: Sequence[E], entry: Described) -> E | None:
    """A model of the other architecture, at the same latent size when there is one."""
    return closest([e for e in entries if e.arch != entry.arch], entry.latent_dim)

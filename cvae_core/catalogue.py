"""The models in a checkpoint folder, described lazily, and which model pairs with which.

``describe`` reads a checkpoint's metadata and checks its files (``checkpoints.read_checked``:
regular files, the manifest, the weights' SHA-256) without building a model: a listing offers
every model and shows a damaged one as unavailable with the reason. ``ModelEntry.load`` adds
the remaining checks of ``load_checkpoint`` (the weights fit the config), building the model.
Neither raises. Every caller uses these entries and rules: ``predict``, ``checkpoints verify``,
the benchmarks, and the app, which only caches them.

Pairing rules: ``default_model`` (what a page shows first), ``partner`` (the other architecture
to compare with), ``closest`` (by latent size), ``is_paper_model`` (one of the paper's plain
models: the sidebar's group, the report's conv-vs-MLP tables), ``paper_pair`` (the paper's conv-N
and mlp-N) and ``default_recogniser`` (what ``predict`` and the app use when given no choice:
among the models the folder's manifest vouches for, when there are any).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from cvae_core.calibration import Calibration
from cvae_core.checkpoints import (
    Checkpoint,
    CheckpointError,
    CheckpointMeta,
    Evaluation,
    checkpoint_dir,
    load_checkpoint,
    manifest_lists,
    paths_for,
    read_checked,
)
from cvae_core.config import ModelConfig
from cvae_core.models import CVAE, MODELS

log = logging.getLogger(__name__)

SUFFIXES = (".safetensors", ".json")


def printable(text: str) -> str:
    """``text`` safe to encode as UTF-8: a file name that is not valid UTF-8 keeps its odd bytes
    as ``\\xNN`` escapes (Python decodes such names to lone surrogates, which cannot be encoded)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the file name's own bytes
    except UnicodeEncodeError:  # a surrogate that no file name decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True, eq=False)
class ModelEntry:
    """One checkpoint on disk: described by its metadata, loaded on demand (``load``), or
    unavailable with the reason (``error``)."""

    name: str  # the file's stem, printable
    path: Path  # the weights file
    signature: str  # printable; changes whenever the weights or the metadata file is replaced
    info: CheckpointMeta | None = None
    error: str | None = None
    ckpt: Checkpoint | None = None  # set by ``load``
    verified: bool = False  # both files are listed in (and so checked against) the folder's manifest
    trained_here: bool = False  # made on this server's Train page (``cvae_core.runs.trained``), not shipped

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def config(self) -> ModelConfig:
        return self.info.config

    @property
    def arch(self) -> str:
        return self.info.config.arch

    @property
    def latent_dim(self) -> int:
        return self.info.config.latent_dim

    @property
    def role(self) -> str | None:
        return self.info.role

    @property
    def evaluation(self) -> Evaluation | None:
        return self.info.evaluation

    @property
    def k(self) -> int:
        """Importance samples per label: its calibration's (``Calibration.for_checkpoint``)."""
        return Calibration.for_checkpoint(self.info).k

    @property
    def model(self) -> CVAE:
        if self.ckpt is None:
            raise RuntimeError(f"{self.name} is not loaded")
        return self.ckpt.model

    def load(self, *, device: torch.device | str = "cpu") -> ModelEntry:
        """A copy with its checkpoint loaded, or with the reason it cannot be; never raises."""
        if self.error is not None or self.ckpt is not None:
            return self
        try:
            return dataclasses.replace(self, ckpt=load_checkpoint(self.path, device=device))
        except CheckpointError as e:
            return dataclasses.replace(self, error=printable(str(e)))
        except Exception as e:  # a listing or a page must never fall over: report anything else too
            log.exception("unexpected error loading %s", self.path)
            return dataclasses.replace(self, error=printable(
                f"{self.path.name}: could not be loaded ({type(e).__name__}: {e})"))


def signature(weights: Path) -> str:
    """The weights path with the size and modification time of both files of the checkpoint."""
    parts = [printable(str(weights))]
    for path in paths_for(weights):
        try:
            info = path.stat()
            parts.append(f"{info.st_size}:{info.st_mtime_ns}:{info.st_ino}")
        except OSError:
            parts.append("missing")
    return "|".join(parts)


def find(folder: str | Path | None = None) -> list[Path]:
    """The weights path of every checkpoint in ``folder`` (default ``checkpoint_dir()``): one per
    visible ``.safetensors`` or ``.json`` stem, whether or not both files exist. Lists names only
    (nothing is opened); a missing folder gives an empty list."""
    folder = Path(folder) if folder else checkpoint_dir()
    try:
        stems = {p.with_suffix("").name for p in folder.iterdir() if not p.name.startswith(".") and p.suffix in SUFFIXES}
    except OSError:
        return []
    return [folder / f"{stem}.safetensors" for stem in sorted(stems)]


def describe(weights: Path, sig: str | None = None, *, trained_here: bool = False) -> ModelEntry:
    """The entry of one checkpoint from its metadata, its files checked; never raises."""
    entry = ModelEntry(name=printable(weights.stem), path=weights, signature=sig or signature(weights),
                       trained_here=trained_here)
    try:
        meta, _ = read_checked(weights)
    except CheckpointError as e:
        return dataclasses.replace(entry, error=printable(str(e)))
    except Exception as e:
        log.exception("unexpected error describing %s", weights)
        return dataclasses.replace(entry, error=printable(f"{weights.name}: could not be read ({type(e).__name__}: {e})"))
    weights_path, meta_path = paths_for(weights)
    return dataclasses.replace(entry, info=meta, verified=manifest_lists(weights.parent, (weights_path.name, meta_path.name)))


def discover(folder: str | Path | None = None) -> list[ModelEntry]:
    """Every checkpoint in ``folder`` (default ``checkpoint_dir()``), described, sorted by name."""
    return [describe(path) for path in find(folder)]


# ---------------------------------------------------------------------------------- pairing


def usable(entries: Iterable[ModelEntry]) -> list[ModelEntry]:
    """The entries that are available and are CVAEs (a reference classifier is neither paired nor shown)."""
    return [e for e in entries if e.ok and e.arch in MODELS]


def canonical(entry: ModelEntry) -> bool:
    """Named as ``cvae_core.train`` names its output (``conv-2``, ``mlp-16``): the main model of its kind."""
    return entry.name == f"{entry.arch}-{entry.latent_dim}"


def closest(entries: Sequence[ModelEntry], latent_dim: int) -> ModelEntry | None:
    """The model of that latent size if any, preferring the canonically named one."""
    ranked = sorted(usable(entries), key=lambda e: (e.latent_dim != latent_dim, not canonical(e), e.name))
    return ranked[0] if ranked else None


def default_model(entries: Sequence[ModelEntry]) -> ModelEntry | None:
    """conv at latent 2 (conv-2 first), else the model closest to latent 2."""
    convs = [e for e in usable(entries) if e.arch == "conv" and e.latent_dim == 2]
    return closest(convs or entries, 2)


def partner(entries: Sequence[ModelEntry], entry: ModelEntry) -> ModelEntry | None:
    """A model of the other architecture: at the same latent size and of the same role when there
    is one, canonically named first."""
    others = [e for e in usable(entries) if e.arch != entry.arch]
    ranked = sorted(others, key=lambda e: (e.latent_dim != entry.latent_dim, e.role != entry.role,
                                           not canonical(e), e.name))
    return ranked[0] if ranked else None


def is_paper_model(meta: CheckpointMeta, *, name: str) -> bool:
    """One of the paper's plain CVAEs: role "paper"; or, with no role recorded, named as
    ``cvae_core.train`` names its output (``conv-2``, ``mlp-16``) and trained as the paper does
    (no "not a digit" condition, no hybrid term, not fine-tuned from another model)."""
    if meta.role is not None:
        return meta.role == "paper"
    config = meta.config
    return (config.arch in MODELS and name == f"{config.arch}-{config.latent_dim}" and not config.background
            and meta.training.disc_weight == 0 and not meta.training.init)


def paper_pair(entries: Sequence[ModelEntry], latent_dim: int) -> tuple[ModelEntry, ModelEntry] | None:
    """The paper's models (``is_paper_model``) at ``latent_dim``, conv and MLP, those with role
    "paper" first; None when either is missing."""
    def pick(arch: str) -> ModelEntry | None:
        fits = [e for e in usable(entries) if e.arch == arch and e.latent_dim == latent_dim
                and is_paper_model(e.info, name=e.name)]
        return min(fits, key=lambda e: (e.role != "paper", e.name), default=None)

    conv, mlp = pick("conv"), pick("mlp")
    return (conv, mlp) if conv is not None and mlp is not None else None


def _score(value: float | None) -> float:
    return -1.0 if value is None else value


def recogniser_ranking(entries: Sequence[ModelEntry]) -> list[ModelEntry]:
    """Usable entries best recogniser first: those with role "recogniser" by mean accuracy over
    the corruptions (``robustness.mean_accuracy``), then clean accuracy; when no entry has that
    role, every entry by clean accuracy (the evaluation's). When the folder's manifest vouches
    for some models (``verified``: the shipped ones), only those are ranked, so a copy with
    doctored figures dropped beside them never becomes every session's landing model."""
    candidates = usable(entries)
    candidates = [e for e in candidates if e.verified] or candidates
    recognisers = [e for e in candidates if e.role == "recogniser"]
    if recognisers:
        return sorted(recognisers, key=lambda e: (-_score(e.info.robust_accuracy), -_score(e.info.accuracy), e.name))
    return sorted(candidates, key=lambda e: (-_score(e.info.accuracy), e.name))


def default_recogniser(entries: Sequence[ModelEntry], *, device: torch.device | str = "cpu") -> ModelEntry:
    """The best recogniser (``recogniser_ranking``) that loads, loaded; a CheckpointError naming
    every reason when none does."""
    for entry in recogniser_ranking(entries):
        loaded = entry.load(device=device)
        if loaded.ok:
            return loaded
        entries = [loaded if e is entry else e for e in entries]
    reasons = "; ".join(f"{e.name}: {e.error}" for e in entries if e.error)
    raise CheckpointError(
        "no usable checkpoint found" + (f" ({reasons})" if reasons else "")
        + "; train one with python -m cvae_core.train, or pass --checkpoint"
    )

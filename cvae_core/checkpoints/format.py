"""The checkpoint format: a safetensors file of tensors beside a JSON file of metadata; save and load.

``<name>.safetensors`` holds the weights (keys ``model.*``) and the test-set latent means with
their labels (``latents.mean``, ``latents.labels``) so the dashboard needs no recomputation.
``<name>.json`` holds the model config, the exact command, per-epoch history, metrics, data
checksums, code version and the SHA-256 of the weights file (typed in ``metadata``).

Loading never executes code from a file (safetensors holds only tensors; nothing here calls
``torch.load``), reads only regular files and at most what their size and header declare, and
loads the state dict strictly, so a file made for another architecture fails with a clear message.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor

from cvae_core.checkpoints._files import (
    FileTooLarge,
    NotRegularFile,
    commit,
    folder_locked,
    guarded,
    read_regular,
    sha256_bytes,
)
from cvae_core.checkpoints.manifest import check_manifest, manifest_with, read_manifest
from cvae_core.checkpoints.metadata import CheckpointError, CheckpointMeta, parse_meta
from cvae_core.config import ModelConfig
from cvae_core.models import CVAE, build_model

FORMAT_VERSION = 1
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT_ENV = "CVAE_CHECKPOINT_DIR"
CHECKPOINT_DIR = PACKAGE_ROOT / "checkpoints"
MAX_META_BYTES = 16 * 1024 * 1024  # metadata is a few hundred kB at most; refuse JSON bombs
MAX_WEIGHTS_BYTES = 256 * 1024 * 1024  # the largest shipped model is under 6 MB
_MAX_HEADER = 16 * 1024 * 1024  # a safetensors header (JSON) of a few hundred tensors is a few kB


def checkpoint_dir() -> Path:
    """The checkpoint folder: ``$CVAE_CHECKPOINT_DIR`` if set, else the committed ``checkpoints/``."""
    return Path(os.environ.get(CHECKPOINT_ENV) or CHECKPOINT_DIR)


@dataclass
class Checkpoint:
    model: CVAE
    info: CheckpointMeta  # the metadata, typed
    latents: Tensor | None = None  # (N, latent_dim) test-set posterior means
    latent_labels: Tensor | None = None  # (N,)
    path: Path = field(default_factory=Path)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def code_version() -> str:
    """The git commit of this code, with ``-dirty`` when the tree has uncommitted changes."""
    try:
        commit_id = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PACKAGE_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "cvae_core"],
            cwd=PACKAGE_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit_id + ("-dirty" if dirty else "")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def paths_for(path: str | Path) -> tuple[Path, Path]:
    """(weights file, metadata file) for a checkpoint given by either file or its stem."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def list_checkpoints(folder: str | Path | None = None) -> list[Path]:
    """Weights files in ``folder`` (default: ``checkpoint_dir()``), sorted by name."""
    folder = Path(folder) if folder else checkpoint_dir()
    return sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("."))


def _json_bytes(meta: dict[str, Any], meta_path: Path) -> bytes:
    try:
        return (json.dumps(meta, indent=1) + "\n").encode()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{meta_path.name}: metadata cannot be written as JSON ({e})") from None


# ------------------------------------------------------------------------------ save / update


def save_checkpoint(
    path: str | Path,
    model: CVAE,
    meta: dict[str, Any],
    *,
    latents: Tensor | None = None,
    latent_labels: Tensor | None = None,
) -> Path:
    """Write weights (+ latents) and metadata; returns the weights path.

    Both files are written in full under temporary names before either is renamed into place,
    inside the guard the running command chose (``guarding_writes``: the commands defer Ctrl-C), so the
    previous checkpoint stays whole until the new one is complete.
    A manifest in the folder that lists this checkpoint is updated to the new files.
    """
    weights_path, meta_path = paths_for(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if latents is not None and latent_labels is not None:
        tensors["latents.mean"] = latents.detach().cpu().float().contiguous()
        tensors["latents.labels"] = latent_labels.detach().cpu().to(torch.int64).contiguous()
    blob = save_safetensors_bytes(tensors)
    meta = dict(meta)
    meta.update(format_version=FORMAT_VERSION, name=weights_path.stem, config=model.config.to_dict())
    meta["weights_file"] = weights_path.name
    meta["weights_sha256"] = sha256_bytes(blob)
    files = [(weights_path, blob), (meta_path, _json_bytes(meta, meta_path))]
    with folder_locked(weights_path.parent):
        manifest = manifest_with(weights_path.parent, {p.name: sha256_bytes(b) for p, b in files})
        with guarded():
            commit(files + ([manifest] if manifest else []))
    return weights_path


def update_metadata(path: str | Path, updates: dict[str, Any]) -> None:
    """Merge ``updates`` into a checkpoint's metadata (used by ``cvae_core.evaluate``).

    If the folder's manifest lists the metadata file and the file matched it before this
    change, the manifest is updated too; a file that had already changed stays flagged.
    """
    _, meta_path = paths_for(path)
    with folder_locked(meta_path.parent):
        before = _read(meta_path, "metadata", MAX_META_BYTES)
        meta = _json_object(meta_path, before)
        meta.update(updates)
        blob = _json_bytes(meta, meta_path)
        try:
            entries = read_manifest(meta_path.parent)
        except CheckpointError:
            entries = None
        manifest = None
        if entries is not None and entries.get(meta_path.name) == sha256_bytes(before):
            manifest = manifest_with(meta_path.parent, {meta_path.name: sha256_bytes(blob)})
        with guarded():
            commit([(meta_path, blob)] + ([manifest] if manifest else []))


# ------------------------------------------------------------------------------------ reading


def _safetensors_size(f: BinaryIO, size: int) -> int:
    """The length a safetensors file declares (8 + header + the end of the last tensor), or
    ``size`` when its header cannot be read (the checksum then reports the damage)."""
    head = f.read(8)
    if len(head) < 8:
        return size
    (length,) = struct.unpack("<Q", head)
    if length > min(size - 8, _MAX_HEADER):
        return size
    try:
        header = json.loads(f.read(length))
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
        return size
    if not all(isinstance(end, int) and end >= 0 for end in ends):
        return size
    return 8 + length + max(ends, default=0)


def _read(path: Path, what: str, limit: int, wanted: Any = None) -> bytes:
    """A checkpoint file's bytes, or a CheckpointError saying why they cannot be read."""
    try:
        return read_regular(path, limit=limit, wanted=wanted)
    except FileNotFoundError:
        raise CheckpointError(f"{path.name}: {what} file is missing") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path.name}: is a folder, not a {what} file") from None
    except NotRegularFile as e:
        raise CheckpointError(f"{path.name}: is {e.kind}, not a {what} file (only regular files are read)") from None
    except FileTooLarge as e:
        raise CheckpointError(f"{path.name}: {what} file is {e.size / 1e6:.0f} MB, too large to be real") from None
    except OSError as e:
        raise CheckpointError(f"{path.name}: {what} file cannot be read ({e.strerror})") from None


def _json_object(meta_path: Path, blob: bytes) -> dict[str, Any]:
    if not blob.strip():
        raise CheckpointError(f"{meta_path.name}: metadata file is empty")
    try:
        meta = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{meta_path.name}: metadata is not readable JSON ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{meta_path.name}: metadata has no model config")
    return meta


def read_metadata(path: str | Path) -> CheckpointMeta:
    """The checkpoint's metadata, typed (no checksum checks; cheap, for listings)."""
    weights_path, meta_path = paths_for(path)
    raw = _json_object(meta_path, _read(meta_path, "metadata", MAX_META_BYTES))
    return parse_meta(raw, meta_path.name, name=weights_path.stem)


def read_checked(path: str | Path) -> tuple[CheckpointMeta, bytes]:
    """Both files of a checkpoint with every check that needs no model: the files are there,
    regular and of a plausible size; the folder's manifest (if it lists them); readable, typed
    metadata; the weights' SHA-256 recorded there. Returns (metadata, the weights file's bytes).
    """
    weights_path, meta_path = paths_for(path)
    folder = weights_path.parent
    if not folder.exists():
        raise CheckpointError(f"{weights_path.stem}: checkpoint folder {folder} does not exist")
    if Path(path).is_dir():
        raise CheckpointError(f"{Path(path).name}: is a folder, not a checkpoint (give the .safetensors file or its stem)")
    meta_blob = _read(meta_path, "metadata", MAX_META_BYTES)
    blob = _read(weights_path, "weights", MAX_WEIGHTS_BYTES, _safetensors_size)
    try:
        raw: dict[str, Any] | None = _json_object(meta_path, meta_blob)
    except CheckpointError:
        raw = None
    recorded = raw.get("weights_sha256") if raw is not None else None
    check_manifest(folder, {weights_path.name: blob, meta_path.name: meta_blob}, recorded)
    if raw is None:
        raw = _json_object(meta_path, meta_blob)  # raises the metadata's own error
    if not blob:
        raise CheckpointError(f"{weights_path.name}: weights file is empty")
    actual = sha256_bytes(blob)
    if recorded and actual != recorded:
        raise CheckpointError(
            f"{weights_path.name}: weights do not match their metadata (SHA-256 {actual[:12]}..., "
            f"expected {str(recorded)[:12]}...); the file is damaged, truncated or from another run"
        )
    return parse_meta(raw, meta_path.name, name=weights_path.stem), blob


def load_checkpoint(path: str | Path, *, device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild a model from its checkpoint files alone, in eval mode.

    Checks, each failing with ``CheckpointError`` and a reason a person can act on: those of
    ``read_checked``; a valid model config; a valid safetensors file; finite weights that fit the
    config exactly (strict); latents of consistent shape.
    """
    meta, blob = read_checked(path)
    weights_path, meta_path = paths_for(path)
    config = meta.config
    try:
        model = build_model(config)
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{meta_path.name}: invalid model config ({e})") from None
    try:
        tensors = load_safetensors_bytes(blob)
    except (SafetensorError, ValueError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{weights_path.name}: not a valid safetensors file ({e})") from None
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    if not state:
        raise CheckpointError(f"{weights_path.name}: holds no model weights")
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{weights_path.name}: weight {key} contains NaN or infinity")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).strip().splitlines()[:3])
        raise CheckpointError(
            f"{weights_path.name}: weights do not fit a {config.arch} model with latent size "
            f"{config.latent_dim} (wrong architecture or config: {first[:300]})"
        ) from None
    latents, latent_labels = tensors.get("latents.mean"), tensors.get("latents.labels")
    if latents is not None or latent_labels is not None:
        _check_latents(weights_path.name, latents, latent_labels, config)
    model.to(device).eval()
    return Checkpoint(model=model, info=meta, latents=latents, latent_labels=latent_labels,
                      path=weights_path)


def _check_latents(name: str, latents: Tensor | None, labels: Tensor | None, config: ModelConfig) -> None:
    ok = (
        latents is not None and labels is not None
        and latents.ndim == 2 and latents.shape[1] == config.latent_dim and latents.is_floating_point()
        and labels.ndim == 1 and len(labels) == len(latents) and not labels.is_floating_point()
        and bool(torch.isfinite(latents).all())
        and (len(labels) == 0 or (int(labels.min()) >= 0 and int(labels.max()) < config.num_classes))
    )
    if not ok:
        raise CheckpointError(f"{name}: stored test-set latents are damaged (wrong shape, type or values)")

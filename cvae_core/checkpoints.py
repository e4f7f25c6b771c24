"""Self-describing checkpoints: a safetensors file of tensors beside a JSON file of metadata.

``checkpoints/<name>.safetensors`` holds the weights (keys ``model.*``) and the test-set latent
means with their labels (``latents.mean``, ``latents.labels``) so the dashboard needs no
recomputation. ``checkpoints/<name>.json`` holds the model config, the exact command, per-epoch
history, metrics, data checksums, code version and the SHA-256 of the weights file.

Loading never executes code from a file (safetensors holds only tensors) and uses strict
state-dict loading, so a file made for another architecture fails with a clear message.
Files are written to a temporary name and renamed into place, with Ctrl-C deferred meanwhile,
so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor

from cvae_core.config import ModelConfig
from cvae_core.data import sha256_file
from cvae_core.models import CVAE, build_model

FORMAT_VERSION = 1
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_ENV = "CVAE_CHECKPOINT_DIR"
CHECKPOINT_DIR = PACKAGE_ROOT / "checkpoints"


def checkpoint_dir() -> Path:
    """The checkpoint folder: ``$CVAE_CHECKPOINT_DIR`` if set, else the committed ``checkpoints/``."""
    return Path(os.environ.get(CHECKPOINT_ENV) or CHECKPOINT_DIR)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or does not match its own description."""


@dataclass
class Checkpoint:
    model: CVAE
    meta: dict[str, Any]
    latents: Tensor | None = None  # (N, latent_dim) test-set posterior means
    latent_labels: Tensor | None = None  # (N,)
    path: Path = field(default_factory=Path)

    @property
    def name(self) -> str:
        return self.meta.get("name", self.path.stem)

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def code_version() -> str:
    """The git commit of this code, with ``-dirty`` when the tree has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PACKAGE_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "cvae_core"],
            cwd=PACKAGE_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back Ctrl-C while a checkpoint is being written; deliver it afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, Any]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending and callable(previous):
            previous(*pending[0])


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def paths_for(path: str | Path) -> tuple[Path, Path]:
    """(weights file, metadata file) for a checkpoint given by either file or its stem."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def save_checkpoint(
    path: str | Path,
    model: CVAE,
    meta: dict[str, Any],
    *,
    latents: Tensor | None = None,
    latent_labels: Tensor | None = None,
) -> Path:
    """Write weights (+ latents) and metadata; returns the weights path."""
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
    with _sigint_deferred():
        _write_atomic(weights_path, blob)
        meta["weights_sha256"] = sha256_file(weights_path)
        _write_atomic(meta_path, (json.dumps(meta, indent=1) + "\n").encode())
    return weights_path


def update_metadata(path: str | Path, updates: dict[str, Any]) -> None:
    """Merge ``updates`` into a checkpoint's metadata (used by ``cvae_core.evaluate``)."""
    _, meta_path = paths_for(path)
    meta = read_metadata(meta_path)
    meta.update(updates)
    with _sigint_deferred():
        _write_atomic(meta_path, (json.dumps(meta, indent=1) + "\n").encode())


def read_metadata(path: str | Path) -> dict[str, Any]:
    _, meta_path = paths_for(path)
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{meta_path.name}: metadata file is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{meta_path.name}: metadata is not readable JSON ({e})") from None
    if not isinstance(meta, dict) or "config" not in meta:
        raise CheckpointError(f"{meta_path.name}: metadata has no model config")
    return meta


def load_checkpoint(path: str | Path, *, device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild a model from its checkpoint files alone, in eval mode."""
    weights_path, _ = paths_for(path)
    meta = read_metadata(path)
    try:
        config = ModelConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{weights_path.stem}: invalid model config ({e})") from None
    try:
        blob = weights_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{weights_path.name}: weights file is missing") from None
    expected = meta.get("weights_sha256")
    if expected:
        import hashlib

        actual = hashlib.sha256(blob).hexdigest()
        if actual != expected:
            raise CheckpointError(
                f"{weights_path.name}: weights do not match their metadata (SHA-256 {actual[:12]}..., "
                f"expected {expected[:12]}...); the file is damaged or from another run"
            )
    try:
        tensors = load_safetensors_bytes(blob)
    except (SafetensorError, ValueError, OSError) as e:
        raise CheckpointError(f"{weights_path.name}: not a valid safetensors file ({e})") from None
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    model = build_model(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0:3]
        raise CheckpointError(
            f"{weights_path.name}: weights do not fit a {config.arch} model with latent size "
            f"{config.latent_dim} ({' '.join(first)})"
        ) from None
    model.to(device).eval()
    return Checkpoint(
        model=model,
        meta=meta,
        latents=tensors.get("latents.mean"),
        latent_labels=tensors.get("latents.labels"),
        path=weights_path,
    )


def list_checkpoints(folder: str | Path | None = None) -> list[Path]:
    """Weights files in ``folder`` (default: ``checkpoint_dir()``), sorted by name."""
    folder = Path(folder) if folder else checkpoint_dir()
    return sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("."))

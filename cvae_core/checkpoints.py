"""Self-describing checkpoints: a safetensors file of tensors beside a JSON file of metadata.

``checkpoints/<name>.safetensors`` holds the weights (keys ``model.*``) and the test-set latent
means with their labels (``latents.mean``, ``latents.labels``) so the dashboard needs no
recomputation. ``checkpoints/<name>.json`` holds the model config, the exact command, per-epoch
history, metrics, data checksums, code version and the SHA-256 of the weights file.

Integrity: loading never executes code from a file (safetensors holds only tensors; nothing here
calls ``torch.load``) and loads the state dict strictly, so a file made for another architecture
fails with a clear message. Two checksums guard the files: the JSON records the SHA-256 of its
weights, and a folder may hold ``MANIFEST.sha256`` (``sha256sum`` format) listing both files of
each committed checkpoint; a listed file must match it. ``save_checkpoint`` and
``update_metadata`` keep an existing manifest in step for the files they write; after any other
change, regenerate it:

    python -m cvae_core.checkpoints manifest [FOLDER]     # write FOLDER/MANIFEST.sha256
    python -m cvae_core.checkpoints verify [FOLDER]       # load every checkpoint, report each

Files are written to temporary names and renamed into place, with Ctrl-C deferred meanwhile,
so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
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
from cvae_core.models import CVAE, build_model

FORMAT_VERSION = 1
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_ENV = "CVAE_CHECKPOINT_DIR"
CHECKPOINT_DIR = PACKAGE_ROOT / "checkpoints"
MANIFEST_NAME = "MANIFEST.sha256"
MAX_META_BYTES = 16 * 1024 * 1024  # metadata is a few hundred kB at most; refuse JSON bombs
_MANIFEST_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


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


@dataclass
class ModelEntry:
    """One checkpoint found in a folder: loaded, or the reason it could not be (for the sidebar)."""

    name: str
    path: Path
    checkpoint: Checkpoint | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.checkpoint is not None


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


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------ atomic writes


_DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM while checkpoint files are written; deliver them afterwards.

    Signal handlers can only be set from the main thread; elsewhere this does nothing (the
    write is still safe against errors: temporary files first, then renames).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in _DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):  # each once, in arrival order, to its own handler
            signal.raise_signal(sig)


def _write_tmp(path: Path, data: bytes) -> Path:
    """Write ``data`` durably to a hidden temporary file beside ``path``; return its name."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")  # unique per writer
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _commit(pairs: list[tuple[Path, bytes]]) -> None:
    """Write every file to a temporary name first, then rename them all into place."""
    tmps: list[tuple[Path, Path]] = []
    try:
        for path, data in pairs:
            tmps.append((_write_tmp(path, data), path))
        for tmp, path in tmps:
            os.replace(tmp, path)
        _fsync_dir(pairs[0][0].parent)
    finally:
        for tmp, _ in tmps:
            tmp.unlink(missing_ok=True)


@contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder (POSIX ``flock``) around a manifest read-modify-write, so
    that two trainings saving into one folder do not lose each other's manifest entries."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):  # no flock here: proceed unlocked
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def paths_for(path: str | Path) -> tuple[Path, Path]:
    """(weights file, metadata file) for a checkpoint given by either file or its stem."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def _meta_bytes(meta: dict[str, Any]) -> bytes:
    return (json.dumps(meta, indent=1) + "\n").encode()


# ---------------------------------------------------------------------------------- manifest


def read_manifest(folder: str | Path) -> dict[str, str] | None:
    """``{file name: sha256}`` from ``folder/MANIFEST.sha256``, or None when there is none."""
    path = Path(folder) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{MANIFEST_NAME} cannot be read ({e}); {_regenerate_hint(path.parent)}") from None
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _MANIFEST_LINE.match(line.rstrip("\r"))
        if not match:
            raise CheckpointError(
                f"{MANIFEST_NAME} line {number} is not '<sha256>  <file>'; {_regenerate_hint(path.parent)}"
            )
        entries[match.group(2)] = match.group(1).lower()
    return entries


def _manifest_text(entries: dict[str, str]) -> str:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(entries.items()))


def _manifest_files(folder: Path) -> list[Path]:
    """The checkpoint files a manifest covers: every visible .safetensors and .json."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix in (".safetensors", ".json")
    )


def write_manifest(folder: str | Path | None = None) -> Path:
    """Write ``folder/MANIFEST.sha256`` covering the .safetensors and .json of every checkpoint."""
    folder = Path(folder) if folder else checkpoint_dir()
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {folder} does not exist")
    path = folder / MANIFEST_NAME
    with _folder_locked(folder):
        entries = {p.name: sha256_bytes(p.read_bytes()) for p in _manifest_files(folder)}
        with _interrupts_deferred():
            _commit([(path, _manifest_text(entries).encode())])
    return path


def _regenerate_hint(folder: Path) -> str:
    return f"if the checkpoint files are the ones you want, regenerate it with: python -m cvae_core.checkpoints manifest {folder}"


def _manifest_with(folder: Path, updates: dict[str, str]) -> tuple[Path, bytes] | None:
    """The manifest rewritten with new digests for files it already lists (None: nothing to do).

    An unreadable manifest is left as it is (loading reports it); a save never fails over it.
    """
    try:
        entries = read_manifest(folder)
    except CheckpointError:
        return None
    if entries is None or not any(name in entries for name in updates):
        return None
    entries.update({name: digest for name, digest in updates.items() if name in entries})
    return folder / MANIFEST_NAME, _manifest_text(entries).encode()


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
    with Ctrl-C deferred, so the previous checkpoint stays whole until the new one is complete.
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
    try:
        meta_blob = _meta_bytes(meta)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{meta_path.name}: metadata cannot be written as JSON ({e})") from None
    files = [(weights_path, blob), (meta_path, meta_blob)]
    with _folder_locked(weights_path.parent):
        manifest = _manifest_with(weights_path.parent, {p.name: sha256_bytes(b) for p, b in files})
        with _interrupts_deferred():
            _commit(files + ([manifest] if manifest else []))
    return weights_path


def update_metadata(path: str | Path, updates: dict[str, Any]) -> None:
    """Merge ``updates`` into a checkpoint's metadata (used by ``cvae_core.evaluate``).

    If the folder's manifest lists the metadata file and the file matched it before this
    change, the manifest is updated too; a file that had already changed stays flagged.
    """
    _, meta_path = paths_for(path)
    with _folder_locked(meta_path.parent):
        before = _read_meta_bytes(meta_path)
        meta = _parse_meta(meta_path, before)
        meta.update(updates)
        try:
            blob = _meta_bytes(meta)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{meta_path.name}: metadata cannot be written as JSON ({e})") from None
        try:
            entries = read_manifest(meta_path.parent)
        except CheckpointError:
            entries = None
        manifest = None
        if entries is not None and entries.get(meta_path.name) == sha256_bytes(before):
            manifest = _manifest_with(meta_path.parent, {meta_path.name: sha256_bytes(blob)})
        with _interrupts_deferred():
            _commit([(meta_path, blob)] + ([manifest] if manifest else []))


# ------------------------------------------------------------------------------------ loading


def _read_meta_bytes(meta_path: Path) -> bytes:
    try:
        size = meta_path.stat().st_size
        if size > MAX_META_BYTES:
            raise CheckpointError(f"{meta_path.name}: metadata file is {size / 1e6:.0f} MB, too large to be real")
        return meta_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{meta_path.name}: metadata file is missing") from None
    except IsADirectoryError:
        raise CheckpointError(f"{meta_path.name}: is a folder, not a metadata file") from None
    except OSError as e:
        raise CheckpointError(f"{meta_path.name}: metadata file cannot be read ({e.strerror})") from None


def _parse_meta(meta_path: Path, blob: bytes) -> dict[str, Any]:
    if not blob.strip():
        raise CheckpointError(f"{meta_path.name}: metadata file is empty")
    try:
        meta = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{meta_path.name}: metadata is not readable JSON ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{meta_path.name}: metadata has no model config")
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The checkpoint's JSON metadata (no checksum checks; cheap, for listings)."""
    _, meta_path = paths_for(path)
    return _parse_meta(meta_path, _read_meta_bytes(meta_path))


def _check_manifest(folder: Path, blobs: dict[str, bytes], meta: dict[str, Any] | None) -> None:
    entries = read_manifest(folder)
    if entries is None:
        return
    stale = [name for name, blob in blobs.items() if name in entries and entries[name] != sha256_bytes(blob)]
    if not stale:
        return
    names = " and ".join(stale)
    weights_name = next(n for n in blobs if n.endswith(".safetensors"))
    self_consistent = meta is not None and meta.get("weights_sha256") == sha256_bytes(blobs[weights_name])
    if self_consistent:
        raise CheckpointError(
            f"{names}: changed since {MANIFEST_NAME} was written (the files agree with each other, so only the "
            f"manifest may be out of date, e.g. after evaluate); {_regenerate_hint(folder)}"
        )
    raise CheckpointError(f"{names}: does not match {MANIFEST_NAME}; the file is damaged or was replaced")


def load_checkpoint(path: str | Path, *, device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild a model from its checkpoint files alone, in eval mode.

    Checks, each failing with ``CheckpointError`` and a reason a person can act on: both files
    exist and are readable; the folder's manifest (if it lists them); the weights' SHA-256
    recorded in the metadata; a valid model config; a valid safetensors file; finite weights
    that fit the config exactly (strict); latents of consistent shape.
    """
    weights_path, meta_path = paths_for(path)
    folder = weights_path.parent
    if not folder.exists():
        raise CheckpointError(f"{weights_path.stem}: checkpoint folder {folder} does not exist")
    if Path(path).is_dir():
        raise CheckpointError(f"{Path(path).name}: is a folder, not a checkpoint (give the .safetensors file or its stem)")
    meta_blob = _read_meta_bytes(meta_path)
    try:
        blob = weights_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{weights_path.name}: weights file is missing") from None
    except IsADirectoryError:
        raise CheckpointError(f"{weights_path.name}: is a folder, not a weights file") from None
    except OSError as e:
        raise CheckpointError(f"{weights_path.name}: weights file cannot be read ({e.strerror})") from None
    try:
        meta: dict[str, Any] | None = _parse_meta(meta_path, meta_blob)
    except CheckpointError:
        meta = None
    _check_manifest(folder, {weights_path.name: blob, meta_path.name: meta_blob}, meta)
    if meta is None:
        meta = _parse_meta(meta_path, meta_blob)  # raises the metadata's own error
    if not blob:
        raise CheckpointError(f"{weights_path.name}: weights file is empty")
    expected = meta.get("weights_sha256")
    actual = sha256_bytes(blob)
    if expected and actual != expected:
        raise CheckpointError(
            f"{weights_path.name}: weights do not match their metadata (SHA-256 {actual[:12]}..., "
            f"expected {str(expected)[:12]}...); the file is damaged, truncated or from another run"
        )
    try:
        config = ModelConfig.from_dict(meta["config"])
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
    return Checkpoint(model=model, meta=meta, latents=latents, latent_labels=latent_labels, path=weights_path)


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


def list_checkpoints(folder: str | Path | None = None) -> list[Path]:
    """Weights files in ``folder`` (default: ``checkpoint_dir()``), sorted by name."""
    folder = Path(folder) if folder else checkpoint_dir()
    return sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("."))


def discover(folder: str | Path | None = None, *, device: torch.device | str = "cpu") -> list[ModelEntry]:
    """Try to load every checkpoint in ``folder``; never raises.

    Each ``.safetensors`` or ``.json`` stem gives one entry, with the loaded checkpoint or a
    human-readable reason it is unavailable. A missing folder gives an empty list.
    """
    folder = Path(folder) if folder else checkpoint_dir()
    try:
        stems = sorted({
            p.with_suffix("").name for p in folder.iterdir()
            if not p.name.startswith(".") and p.suffix in (".safetensors", ".json")
        })
    except OSError:
        return []
    entries = []
    for stem in stems:
        path = folder / f"{stem}.safetensors"
        try:
            entries.append(ModelEntry(stem, path, checkpoint=load_checkpoint(path, device=device)))
        except CheckpointError as e:
            entries.append(ModelEntry(stem, path, error=str(e)))
        except Exception as e:  # a sidebar must never fall over: report anything else too
            entries.append(ModelEntry(stem, path, error=f"{path.name}: could not be loaded ({type(e).__name__}: {e})"))
    return entries


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m cvae_core.checkpoints", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("manifest", "write FOLDER/MANIFEST.sha256"), ("verify", "load every checkpoint, report each")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("folder", nargs="?", default=None, help=f"default: {checkpoint_dir()}")
    args = p.parse_args(argv)
    folder = Path(args.folder) if args.folder else checkpoint_dir()
    if args.command == "manifest":
        try:
            path = write_manifest(folder)
        except (CheckpointError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        count = sum(1 for line in path.read_text().splitlines() if line.strip())
        print(f"wrote {path} ({count} files)")
        return 0
    entries = discover(folder)
    for entry in entries:
        print(f"{entry.name}: {'ok' if entry.ok else 'UNAVAILABLE: ' + str(entry.error)}")
    if not entries:
        print(f"no checkpoints in {folder}")
    return 0 if entries and all(e.ok for e in entries) else 1


if __name__ == "__main__":
    sys.exit(main())

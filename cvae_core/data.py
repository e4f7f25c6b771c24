"""MNIST from the four standard IDX files, held in memory as tensors.

The folder comes from ``--data-dir`` or the ``CVAE_DATA_DIR`` environment variable; files may be
gzip-compressed (``*.gz``) or raw. With no folder, torchvision downloads MNIST into a cache
folder (for users with a network) and the same reader takes it from there.

Batches are cut by index slicing from uint8 tensors: no per-sample Python work.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

ENV_VAR = "CVAE_DATA_DIR"
DEFAULT_CACHE = Path.home() / ".cache" / "cvae_digit_explorer"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_MAGIC = {2049: 1, 2051: 3}  # IDX magic for unsigned bytes: 0x801 labels (1-D), 0x803 images (3-D)


class DataError(RuntimeError):
    """The data folder or one of its files is missing or malformed."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file of unsigned bytes (``.gz`` or raw) and check its header against its size."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip raises EOFError / BadGzipFile on a cut file
        raise DataError(f"{path}: cannot read ({e}); the file is damaged or not gzip") from e
    if len(raw) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in _MAGIC:
        raise DataError(f"{path}: not an MNIST IDX file (magic number {magic:#010x})")
    ndim = _MAGIC[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: header is truncated")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{path}: header promises {shape} ({expected} bytes) but the file has {len(raw)} bytes; "
            "it is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_file(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: missing {stem} (or {stem}.gz)")


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The folder given as argument, else ``$CVAE_DATA_DIR``, else None (meaning: download)."""
    chosen = data_dir or os.environ.get(ENV_VAR)
    if not chosen:
        return None
    folder = Path(chosen).expanduser()
    if not folder.is_dir():
        raise DataError(f"MNIST folder {folder} does not exist (set by --data-dir or ${ENV_VAR})")
    return folder


def download(cache: Path = DEFAULT_CACHE) -> Path:
    """Download MNIST with torchvision into ``cache``; returns the folder of raw IDX files."""
    from torchvision.datasets import MNIST as TorchvisionMNIST

    try:
        TorchvisionMNIST(str(cache), train=True, download=True)
        TorchvisionMNIST(str(cache), train=False, download=True)
    except Exception as e:  # network errors come in many types
        raise DataError(
            f"could not download MNIST ({e}); pass --data-dir or set ${ENV_VAR} to a folder "
            "holding the four IDX files"
        ) from e
    return cache / "MNIST" / "raw"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class MNIST:
    """The whole data set as uint8 image tensors (N, 28, 28) and int64 label tensors (N,)."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    folder: Path
    checksums: dict[str, str]

    def split(self, val_size: int, *, seed: int = 0) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """A fixed random split of the training images into (train, validation)."""
        n = len(self.train_labels)
        if not 0 <= val_size < n:
            raise ValueError(f"val_size must be in [0, {n}), got {val_size}")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        val, train = perm[:val_size], perm[val_size:]
        return (
            (self.train_images[train], self.train_labels[train]),
            (self.train_images[val], self.train_labels[val]),
        )


def load_mnist(data_dir: str | Path | None = None, *, checksums: bool = True) -> MNIST:
    """Load all four files, checking headers and that image and label counts agree."""
    folder = resolve_data_dir(data_dir) or download()
    paths = {key: find_file(folder, stem) for key, stem in FILES.items()}
    arrays = {key: read_idx(p) for key, p in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
        if labels.size and labels.max() > 9:
            raise DataError(f"{folder}: {split} labels go beyond 9")
    return MNIST(
        train_images=torch.from_numpy(arrays["train_images"].copy()),
        train_labels=torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        test_images=torch.from_numpy(arrays["test_images"].copy()),
        test_labels=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        folder=folder,
        checksums={p.name: sha256_file(p) for p in paths.values()} if checksums else {},
    )


def to_float(images: Tensor) -> Tensor:
    """uint8 (B, H, W) -> float32 (B, 1, H, W) in [0, 1]; float images (B, H, W) pass through."""
    if images.is_floating_point():
        return images.unsqueeze(1).float()
    return images.unsqueeze(1).float().div_(255.0)


def batches(
    images: Tensor,
    labels: Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (float images (B, 1, H, W), labels (B,)) by slicing, optionally in a shuffled order."""
    n = len(labels)
    order = torch.randperm(n, generator=generator) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            x, y = images[start : start + batch_size], labels[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            x, y = images[idx], labels[idx]
        yield to_float(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)

"""MNIST from the four standard IDX files, held in memory as tensors.

The folder comes from ``--data-dir`` or the ``CVAE_DATA_DIR`` environment variable; files may be
gzip-compressed (``*.gz``) or raw. With no folder, torchvision downloads MNIST into a cache
folder (for users with a network) and the same reader takes it from there.

Batches are cut by index slicing from uint8 tensors: no per-sample Python work.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch
from torch import Tensor

from cvae_core.config import IMAGE_SIZE, NUM_CLASSES

ENV_VAR = "CVAE_DATA_DIR"
DEFAULT_CACHE = Path.home() / ".cache" / "cvae_digit_explorer"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_MAGIC = {2049: 1, 2051: 3}  # IDX magic for unsigned bytes: 0x801 labels (1-D), 0x803 images (3-D)
LABELLED_IMAGES = "archive-images-idx3-ubyte"  # the two files of a labelled set (e.g. an archive export)
LABELLED_LABELS = "archive-labels-idx1-ubyte"
LABELLED_MAX_BYTES = 256 * 2**20  # a labelled set larger than this is refused before it is read


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
    return parse_idx(raw, path)


def parse_idx(raw: bytes, where: str | Path) -> np.ndarray:
    """The array in the bytes of one raw IDX file; ``where`` names it in errors."""
    if len(raw) < 8:
        raise DataError(f"{where}: too short to be an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in _MAGIC:
        raise DataError(f"{where}: not an MNIST IDX file (magic number {magic:#010x})")
    ndim = _MAGIC[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{where}: header is truncated")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(shape)  # Python integers: a hostile header cannot wrap around
    if len(raw) != expected:
        raise DataError(
            f"{where}: header promises {shape} ({expected} bytes) but the file has {len(raw)} bytes; "
            "it is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def idx_header(shape: tuple[int, ...]) -> bytes:
    """The IDX header of an unsigned-byte array of this shape (1-D labels or 3-D images)."""
    magic = {ndim: magic for magic, ndim in _MAGIC.items()}.get(len(shape))
    if magic is None:
        raise ValueError(f"IDX files here hold 1-D labels or 3-D images, not shape {shape}")
    return b"".join(int(n).to_bytes(4, "big") for n in (magic, *shape))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array (labels (N,) or images (N, H, W)) as a raw IDX file that ``read_idx`` reads."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"IDX files here hold unsigned bytes, not {array.dtype}")
    with open(path, "wb") as f:
        f.write(idx_header(array.shape))
        f.write(np.ascontiguousarray(array).tobytes())


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


def _idx_member(raw: bytes, where: str) -> np.ndarray:
    """One IDX file read from a ZIP member (decompressed first when its name ends in ``.gz``)."""
    if where.endswith(".gz"):
        try:
            raw = gzip.GzipFile(fileobj=io.BytesIO(raw)).read(LABELLED_MAX_BYTES + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{where}: cannot read ({e}); the file is damaged or not gzip") from e
        if len(raw) > LABELLED_MAX_BYTES:
            raise DataError(f"{where}: larger than the {LABELLED_MAX_BYTES // 2**20} MB a labelled set may have")
    return parse_idx(raw, where)


def _pair_in(names: list[str], where: Path) -> tuple[str, str]:
    """The images and labels member names among ``names`` (``*-images-idx3-ubyte[.gz]`` and its labels)."""
    images = [n for n in names if Path(n).name.removesuffix(".gz").endswith("-images-idx3-ubyte")]
    labels = [n for n in names if Path(n).name.removesuffix(".gz").endswith("-labels-idx1-ubyte")]
    if len(images) != 1 or len(labels) != 1:
        raise DataError(f"{where}: expected one {LABELLED_IMAGES} and one {LABELLED_LABELS} (or another "
                        f"*-images-idx3-ubyte / *-labels-idx1-ubyte pair), found {len(images)} image and "
                        f"{len(labels)} label files")
    return images[0], labels[0]


def _read_bounded(path: Path) -> np.ndarray:
    """``read_idx`` that reads (and decompresses) at most ``LABELLED_MAX_BYTES``."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read(LABELLED_MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({e}); the file is damaged or not gzip") from e
    if len(raw) > LABELLED_MAX_BYTES:
        raise DataError(f"{path}: larger than the {LABELLED_MAX_BYTES // 2**20} MB a labelled set may have")
    return parse_idx(raw, path)


_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def _readable(info: zipfile.ZipInfo, where: Path) -> None:
    """Refuse a member that zipfile cannot read, in one sentence: encrypted, or an unknown method."""
    if info.flag_bits & 0x1:
        raise DataError(f"{where}: {info.filename} is encrypted; export the labelled set again without a password")
    if info.compress_type not in _ZIP_METHODS:
        raise DataError(f"{where}: {info.filename} uses compression method {info.compress_type}, which cannot be "
                        "read; store it plain or with deflate")


def _npy_member(member: IO[bytes], name: str, size: int, where: Path) -> np.ndarray:
    """One ``.npy`` of a ZIP member of ``size`` bytes, its header checked against that size before
    any array is allocated (``np.load`` would allocate what the header declares, e.g. 730 GiB)."""
    try:
        version = np.lib.format.read_magic(member)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(member)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, tokenize.TokenError) as e:
        raise DataError(f"{where}: its '{name}' array cannot be read ({_one_line(e)})") from None
    if any(n < 0 for n in shape):
        raise DataError(f"{where}: its '{name}' array cannot be read: its header declares shape {shape}")
    if dtype.hasobject:
        raise DataError(f"{where}: its '{name}' array cannot be read: it holds Python objects, which are never loaded")
    declared = math.prod(shape) * dtype.itemsize
    header = member.tell()
    if declared != size - header:
        raise DataError(f"{where}: its '{name}' array declares shape {shape} of {dtype} ({declared:,} bytes) "
                        f"but holds {size - header:,} bytes")
    data = bytearray(declared)  # at most the member's declared size, itself checked against the limit
    got = member.readinto(data)
    if got != declared or member.read(1):
        raise DataError(f"{where}: its '{name}' array does not hold the {declared:,} bytes its header declares")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _read_zip(path: Path) -> tuple[np.ndarray, np.ndarray]:
    npz = path.suffix.lower() == ".npz"
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename: info for info in zf.infolist() if not info.is_dir()}
            if npz:
                wanted = {"images.npy": "images", "labels.npy": "labels"}
                if not set(wanted) <= set(members):
                    raise DataError(f"{path}: an .npz of a labelled set holds 'images' and 'labels' arrays; "
                                    f"this one has {sorted(n.removesuffix('.npy') for n in members)}")
            else:
                images, labels = _pair_in(list(members), path)
                wanted = {images: "images", labels: "labels"}
            declared = sum(members[name].file_size for name in wanted)
            if declared > LABELLED_MAX_BYTES:
                raise DataError(f"{path}: {declared / 2**20:.0f} MB uncompressed, more than the "
                                f"{LABELLED_MAX_BYTES // 2**20} MB a labelled set may have")
            raw: dict[str, bytes | np.ndarray] = {}
            for name, key in wanted.items():
                _readable(members[name], path)
                try:
                    with zf.open(name) as member:  # read no more than allowed, whatever the header claims
                        raw[key] = (_npy_member(member, key, members[name].file_size, path) if npz
                                    else member.read(LABELLED_MAX_BYTES + 1))
                except DataError:
                    raise
                except (zlib.error, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:
                    raise DataError(f"{path}: {name} is damaged ({_one_line(e)})") from None
                if not npz and len(raw[key]) > LABELLED_MAX_BYTES:
                    raise DataError(f"{path}: {name} is larger than the {LABELLED_MAX_BYTES // 2**20} MB "
                                    "a labelled set may have")
    except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as e:
        raise DataError(f"{path}: cannot read it as a {'.npz' if npz else 'ZIP'} file ({_one_line(e)})") from None
    if npz:
        return raw["images"], raw["labels"]
    return (_idx_member(raw["images"], f"{path}:{images}"), _idx_member(raw["labels"], f"{path}:{labels}"))


def load_labelled(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A labelled set of MNIST-sized digits -> (images uint8 (N, 28, 28), labels int64 (N,)).

    ``path`` is a folder holding ``archive-images-idx3-ubyte`` and ``archive-labels-idx1-ubyte``
    (raw or ``.gz``; any other single ``*-images-idx3-ubyte`` / ``*-labels-idx1-ubyte`` pair too), a
    ``.zip`` of those two files (the archive's "labelled set as IDX" export), or an ``.npz`` with
    arrays ``images`` and ``labels``. Raises ``DataError`` saying what is wrong.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        images, labels = (_read_bounded(path / name)
                          for name in _pair_in([p.name for p in path.iterdir() if p.is_file()], path))
    elif path.is_file() and path.suffix.lower() in (".zip", ".npz"):
        if path.stat().st_size > LABELLED_MAX_BYTES:
            raise DataError(f"{path}: larger than the {LABELLED_MAX_BYTES // 2**20} MB a labelled set may have")
        images, labels = _read_zip(path)
    elif path.exists():
        raise DataError(f"{path}: a labelled set is a folder of two IDX files, a .zip of them, or an .npz")
    else:
        raise DataError(f"{path}: no such file or folder")
    side = IMAGE_SIZE
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (side, side):
        raise DataError(f"{path}: images must be uint8 of shape (N, {side}, {side}), not {images.dtype} {images.shape}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: labels must be a 1-D array of whole numbers, not {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels")
    if not len(labels):
        raise DataError(f"{path}: the set is empty")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise DataError(f"{path}: labels must be digits 0-{NUM_CLASSES - 1}, "
                        f"found {int(labels.min())}..{int(labels.max())}")
    return np.ascontiguousarray(images), labels.astype(np.int64)

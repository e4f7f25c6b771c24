"""The IDX reader and the MNIST loader, on tiny synthetic files and on the real folder."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from cvae_core.data import DataError, batches, load_mnist, read_idx, resolve_data_dir


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x803 if array.ndim == 3 else 0x801
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape) + array.tobytes()


def write_set(folder, n_train=6, n_test=4, *, gz=True):
    rng = np.random.default_rng(0)
    for stem, arr in {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10,
    }.items():
        data = idx_bytes(arr)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    path = tmp_path / ("x.gz" if gz else "x")
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if gz else data)
    assert np.array_equal(read_idx(path), arr)


def test_read_idx_rejects_truncated_file(tmp_path):
    path = tmp_path / "cut"
    path.write_bytes(idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-5])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(path)


def test_read_idx_rejects_cut_gzip(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8)))[:-20])
    with pytest.raises(DataError, match="damaged"):
        read_idx(path)


@pytest.mark.parametrize("payload", [b"", b"\x00\x00", struct.pack(">I", 0x999) + b"\x00" * 20])
def test_read_idx_rejects_wrong_headers(tmp_path, payload):
    path = tmp_path / "bad"
    path.write_bytes(payload)
    with pytest.raises(DataError):
        read_idx(path)


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_synthetic_folder(tmp_path, gz):
    write_set(tmp_path, gz=gz)
    data = load_mnist(tmp_path)
    assert data.train_images.shape == (6, 28, 28) and data.train_images.dtype == torch.uint8
    assert data.test_labels.tolist() == [0, 1, 2, 3]
    assert set(data.checksums) == {p.name for p in tmp_path.iterdir()}
    (_, train_y), (_, val_y) = data.split(2, seed=0)
    assert len(train_y) == 4 and len(val_y) == 2
    assert sorted(torch.cat([train_y, val_y]).tolist()) == sorted(data.train_labels.tolist())


def test_load_mnist_reports_missing_file_and_mismatch(tmp_path):
    write_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels"):
        load_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(3, np.uint8))))
    with pytest.raises(DataError, match="do not match"):
        load_mnist(tmp_path)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CVAE_DATA_DIR", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    monkeypatch.setenv("CVAE_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="does not exist"):
        resolve_data_dir()


def test_batches_cover_every_image_once():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1).expand(10, 2, 2).contiguous()
    labels = torch.arange(10)
    seen = []
    for x, y in batches(images, labels, 3, shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert x.shape[1:] == (1, 2, 2) and x.dtype == torch.float32
        assert torch.allclose(x[:, 0, 0, 0] * 255, y.float())  # images stay paired with labels
        seen += y.tolist()
    assert sorted(seen) == list(range(10))


def test_real_mnist(mnist):
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert torch.bincount(mnist.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    mean = mnist.train_images.float().mean().item() / 255
    assert mean == pytest.approx(0.1307, abs=0.001)

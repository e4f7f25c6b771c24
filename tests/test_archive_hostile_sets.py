"""Hostile labelled-set files for ``cvae_core.data.load_labelled``: one sentence and a bounded memory.

Each file is small on disk and lies about what it holds: a corrupt deflate stream, an encrypted or
method-99 (AES) ZIP member, an IDX header whose dimensions multiply past 2^64 (to 0 in int64), an
``.npy`` header declaring (10^9, 28, 28) (730 GiB), a malformed ``.npy`` header. Each must raise
``DataError`` with a one-line message, and the reading must not allocate more than a few MB beyond
the file itself (``tracemalloc`` measures what Python and numpy allocate).
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from cvae_core.data import DataError, load_labelled

IMAGES, LABELS = "archive-images-idx3-ubyte", "archive-labels-idx1-ubyte"
PEAK_BYTES = 8 * 2**20  # what reading one of these small files may allocate at most


def idx(shape: tuple[int, ...], payload: bytes = b"") -> bytes:
    magic = {1: 2049, 3: 2051}[len(shape)]
    return struct.pack(f">{1 + len(shape)}I", magic, *shape) + payload


def good_labels(n: int = 2) -> bytes:
    return idx((n,), bytes(n))


def npy(header: str, payload: bytes = b"") -> bytes:
    """An .npy (version 1.0) with a header dict of our choosing."""
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload


def labels_npy(n: int = 2) -> bytes:
    out = io.BytesIO()
    np.save(out, np.zeros(n, np.int64))
    return out.getvalue()


def zip_of(path: Path, members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def corrupt_deflate(path: Path) -> Path:
    """A ZIP whose images member's deflate stream is garbage after its first bytes (sizes intact)."""
    data = idx((2, 28, 28), bytes(2 * 28 * 28))
    zip_of(path, {IMAGES: data, LABELS: good_labels()})
    raw = bytearray(path.read_bytes())
    start = raw.index(zlib.compress(data)[2:6])  # the deflate stream of the first member
    raw[start : start + 4] = b"\xff" * 4  # block type 3: "invalid block type"
    path.write_bytes(bytes(raw))
    return path


def flagged(path: Path, *, flag: int = 0, method: int | None = None) -> Path:
    """A ZIP whose first member says it is encrypted (flag bit 0) or uses another method (e.g. 99, AES)."""
    zip_of(path, {IMAGES: idx((2, 28, 28), bytes(2 * 28 * 28)), LABELS: good_labels()}, method=zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = raw.index(signature)  # the first member's local header, then its central directory entry
        raw[at + flag_at : at + flag_at + 2] = struct.pack("<H", flag)
        if method is not None:
            raw[at + method_at : at + method_at + 2] = struct.pack("<H", method)
    path.write_bytes(bytes(raw))
    return path


HOSTILE = {
    "corrupt-deflate": (lambda p: corrupt_deflate(p / "set.zip"), "damaged"),
    "encrypted-member": (lambda p: flagged(p / "set.zip", flag=1), "encrypted"),
    "method-99-member": (lambda p: flagged(p / "set.zip", method=99), "compression method"),
    # 2^32-1 three times is about 2^96: int64 arithmetic wraps it (np.prod gave 0 for 2^32 x 2^32 x 1)
    "idx-overflow": (lambda p: zip_of(p / "set.zip", {IMAGES: idx((2**32 - 1, 2**32 - 1, 2**32 - 1)),
                                                      LABELS: good_labels()}), "promises"),
    "idx-wraps-to-zero": (lambda p: zip_of(p / "set.zip", {IMAGES: idx((2**31, 2**31, 4)), LABELS: good_labels()}),
                          "promises"),
    "npy-declares-730-gib": (lambda p: zip_of(p / "set.npz", {
        "images.npy": npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000, 28, 28), }"),
        "labels.npy": labels_npy()}), "declares"),
    "npy-malformed-header": (lambda p: zip_of(p / "set.npz", {
        "images.npy": npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 28, 28)"),  # no closing brace
        "labels.npy": labels_npy()}), "cannot be read"),
    "npy-negative-shape": (lambda p: zip_of(p / "set.npz", {
        "images.npy": npy("{'descr': '|u1', 'fortran_order': False, 'shape': (-1, 28, 28), }"),
        "labels.npy": labels_npy()}), "cannot be read"),
    "npy-not-npy": (lambda p: zip_of(p / "set.npz", {"images.npy": b"hello" * 100, "labels.npy": labels_npy()}),
                    "cannot be read"),
}


@pytest.mark.parametrize(("make", "message"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_set_is_one_sentence_and_bounded(tmp_path, make, message):
    path = make(tmp_path)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=message) as caught:
            load_labelled(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    text = str(caught.value)
    assert "\n" not in text and "Traceback" not in text, text
    assert peak < PEAK_BYTES + path.stat().st_size, f"{peak / 2**20:.0f} MB allocated reading {path.name}"


def test_an_idx_folder_with_an_overflowing_header(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / IMAGES).write_bytes(idx((2**32 - 1, 2**32 - 1, 2**32 - 1)))
    (folder / LABELS).write_bytes(good_labels())
    with pytest.raises(DataError, match="promises"):
        load_labelled(folder)


def test_a_declared_size_beyond_the_file_is_refused_before_reading(tmp_path, monkeypatch):
    """An .npy member declaring more than its ZIP entry's size is refused from its header alone."""
    path = zip_of(tmp_path / "set.npz", {
        "images.npy": npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4000, 28, 28), }"),
        "labels.npy": labels_npy()})
    read = []
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: read.append(1))
    with pytest.raises(DataError, match="declares"):
        load_labelled(path)
    assert not read

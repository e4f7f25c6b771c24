"""Exports of the archive (CSV, ZIP, the labelled set as IDX and .npz) and reading a labelled set back
with ``cvae_core.data.load_labelled``: contents, caps, and memory that does not grow with the export.
"""

from __future__ import annotations

import csv
import gzip
import io
import tracemalloc
import zipfile
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image
from postgres import postgres, postgres_url  # noqa: F401 -- fixtures
from records import full_record, make_record

from cvae_core.archive import (
    CSV_COLUMNS,
    Archive,
    ArchiveError,
    ExportTooLarge,
    Filters,
    export_csv,
    export_idx,
    export_npz,
    export_zip,
    labelled_arrays,
    labelled_filters,
    png_bytes,
    png_to_array,
    to_csv,
)
from cvae_core.archive import export as export_module
from cvae_core.archive.schema import items
from cvae_core.data import DataError, load_labelled, read_idx, write_idx


@pytest.fixture(params=["sqlite", "postgresql"])
def archive(request, tmp_path):
    sqlite = f"sqlite:///{tmp_path / 'archive.db'}"
    url = sqlite if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    store = Archive.from_url(url)
    yield store
    store.engine.dispose()


def rows_of(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def test_csv_carries_every_field(archive):
    first = archive.save(full_record(1, filename="=HYPERLINK(1)", source="upload"))
    archive.save(make_record(2))  # an item with only the first version's fields
    with export_csv(archive, Filters()) as f:
        data = f.read()
    assert data.decode().splitlines()[0] == ",".join(CSV_COLUMNS)
    newest, oldest = rows_of(data)
    assert oldest["id"] == str(first) and oldest["filename"] == "'=HYPERLINK(1)"  # no formula for spreadsheets
    record = full_record(1)
    assert [float(oldest[f"p{d}"]) for d in range(10)] == pytest.approx(record.probs, abs=1e-6)
    logliks = [float(oldest[f"loglik{d}"]) for d in range(10)] + [float(oldest["loglik_not_digit"])]
    assert logliks == pytest.approx(record.log_likelihoods, abs=1e-4)
    assert (oldest["true_label"], oldest["not_digit"], oldest["partner_model"], oldest["partner_digit"]) == (
        "1", "0.125000", "conv-2", "3")
    assert oldest["verdict"] == ("right" if record.label == 1 else "wrong")
    assert (newest["true_label"], newest["verdict"], newest["p0"], newest["not_digit"]) == ("", "unlabelled", "", "")
    assert newest["loglik_not_digit"] == ""
    assert to_csv(archive.list()) == data  # the small in-memory form writes the same table


def test_csv_follows_the_filters(archive):
    archive.save(make_record(0, label=1, true_label=1))
    archive.save(make_record(1, label=1, true_label=7))
    archive.save(make_record(2, label=2))
    with export_csv(archive, Filters(truth="wrong")) as f:
        assert [row["true_label"] for row in rows_of(f.read())] == ["7"]


def test_zip_holds_images_named_by_id_and_the_table(archive):
    one = archive.save(make_record(0, source="upload", filename="../../evil.png", original=Image.new("L", (64, 64))))
    two = archive.save(make_record(1))
    with export_zip(archive, Filters()) as f, zipfile.ZipFile(f) as zf:
        assert sorted(zf.namelist()) == sorted([
            "archive.csv", f"item-{one:06d}/input.png", f"item-{one:06d}/original.png",
            f"item-{one:06d}/reconstruction.png", f"item-{two:06d}/input.png", f"item-{two:06d}/reconstruction.png",
        ])
        assert png_to_array(zf.read(f"item-{two:06d}/input.png")).shape == (28, 28)
        assert [row["id"] for row in rows_of(zf.read("archive.csv"))] == [str(two), str(one)]
    with export_zip(archive, Filters(), originals=False) as f, zipfile.ZipFile(f) as zf:
        assert not any(name.endswith("original.png") for name in zf.namelist())


def test_labelled_set_round_trips_as_idx_and_npz(archive, tmp_path):
    saved = [archive.save(full_record(seed, true_label=seed % 10)) for seed in range(5)]
    archive.save(make_record(9))  # unlabelled: left out
    archive.set_true_label(saved[2], None)  # a label taken back: left out
    expected = [archive.get(i) for i in saved if i != saved[2]]  # oldest first
    pixels = np.stack([np.rint(png_to_array(item.input_png) * 255).astype(np.uint8) for item in expected])
    labels = np.array([item.true_label for item in expected])

    with export_idx(archive, Filters()) as f:
        (tmp_path / "set.zip").write_bytes(f.read())
    with zipfile.ZipFile(tmp_path / "set.zip") as zf:
        assert sorted(zf.namelist()) == ["archive-images-idx3-ubyte", "archive-labels-idx1-ubyte"]
        zf.extractall(tmp_path / "folder")
    with export_npz(archive, Filters()) as f:
        (tmp_path / "set.npz").write_bytes(f.read())
    for path in (tmp_path / "set.zip", tmp_path / "folder", tmp_path / "set.npz"):
        images, got = load_labelled(path)
        assert images.dtype == np.uint8 and images.shape == (4, 28, 28) and got.dtype == np.int64
        assert np.array_equal(images, pixels) and np.array_equal(got, labels)
    assert np.array_equal(read_idx(tmp_path / "folder" / "archive-images-idx3-ubyte"), pixels)  # plain MNIST IDX


def test_labelled_set_leaves_out_unfinished_drawings(archive):
    """A drawing that went on after it was saved is marked unfinished and stays out of the data set;
    finished ones and items saved before the mark existed (None) are in it."""
    whole = archive.save(full_record(0, true_label=4, finished=True))
    half = archive.save(full_record(1, true_label=4, finished=True))
    older = archive.save(full_record(2, true_label=7))
    assert archive.set_finished(half, False)
    _, labels = labelled_arrays(archive, Filters())
    assert labels.tolist() == [4, 7]
    assert [i.id for i in archive.list(labelled_filters(Filters()))] == [older, whole]
    assert archive.count(Filters()) == 3  # the table and the other exports keep every item
    assert [row["finished"] for row in rows_of(export_csv(archive, Filters()).read())] == ["", "false", "true"]


def test_labelled_set_needs_labels(archive):
    archive.save(make_record(0))
    with pytest.raises(ArchiveError, match="No finished item matching these filters has a true label"):
        export_idx(archive, Filters())
    with pytest.raises(ArchiveError, match="Unlabelled items have no true label"):
        export_npz(archive, Filters(truth="unlabelled"))


def test_exports_are_capped(archive, monkeypatch):
    """Fault 5: what one export may hold is capped before it is built, and while it is written."""
    for seed in range(5):
        archive.save(make_record(seed, true_label=seed))
    monkeypatch.setattr(export_module, "EXPORT_MAX_ITEMS", 4)
    for export in (export_csv, export_zip, export_idx, export_npz):
        with pytest.raises(ExportTooLarge, match="more than 4 items"):
            export(archive, Filters())
    with export_csv(archive, Filters(digit=0)) as f:  # narrowed by the filters, it fits
        assert len(rows_of(f.read())) == 1
    monkeypatch.setattr(export_module, "EXPORT_MAX_ITEMS", 100)
    monkeypatch.setattr(export_module, "EXPORT_MAX_BYTES", 5000)
    with pytest.raises(ExportTooLarge, match="MB, the most one ZIP may hold"):
        export_zip(archive, Filters())
    budget = export_module._Budget(max_items=100, max_bytes=10)  # and again while writing
    with pytest.raises(ExportTooLarge):
        budget.check(1, 11)


def test_zip_export_memory_does_not_grow_with_the_export(tmp_path):
    """Fault 5: "Images as ZIP" built the whole ZIP (and every original) in memory, about 3x its size.
    Now 48 MB of originals export with a Python-heap peak of a few batches."""
    archive = Archive.from_url(f"sqlite:///{tmp_path / 'archive.db'}")
    archive.count()
    rng = np.random.default_rng(0)
    png = png_bytes(np.zeros((28, 28), np.uint8))
    blob = rng.integers(0, 256, 1_000_000, dtype=np.uint8).tobytes()  # an incompressible 1 MB "photo"
    with archive.engine.begin() as conn:
        conn.execute(items.insert(), [
            {"created_at": datetime.now(UTC), "model": "conv-2", "source": "upload", "label": 1, "confidence": 0.5,
             "sigma": 0.0, "fingerprint": f"{i:064x}", "input_png": png, "recon_png": png,
             "original_png": blob[i:] + blob[:i]}
            for i in range(48)
        ])
    tracemalloc.start()
    try:
        with export_zip(archive, Filters()) as f:
            peak = tracemalloc.get_traced_memory()[1]
            size = f.seek(0, io.SEEK_END)
    finally:
        tracemalloc.stop()
    assert size > 48_000_000
    assert peak < 24_000_000, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB ZIP"
    archive.engine.dispose()


# -- reading a labelled set back (cvae_core.data) --------------------------------------------------


def test_write_idx_round_trip(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    write_idx(tmp_path / "archive-images-idx3-ubyte", images)
    write_idx(tmp_path / "archive-labels-idx1-ubyte", np.array([1, 2, 3], np.uint8))
    assert np.array_equal(read_idx(tmp_path / "archive-images-idx3-ubyte"), images)
    got_images, got_labels = load_labelled(tmp_path)
    assert np.array_equal(got_images, images) and got_labels.tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="unsigned bytes"):
        write_idx(tmp_path / "x", images.astype(np.int64))


def test_load_labelled_reads_gzipped_members(tmp_path):
    images, labels = np.zeros((2, 28, 28), np.uint8), np.array([4, 5], np.uint8)
    write_idx(tmp_path / "raw-images", images)
    write_idx(tmp_path / "raw-labels", labels)
    with zipfile.ZipFile(tmp_path / "set.zip", "w") as zf:
        zf.writestr("class/t10k-images-idx3-ubyte.gz", gzip.compress((tmp_path / "raw-images").read_bytes()))
        zf.writestr("class/t10k-labels-idx1-ubyte.gz", gzip.compress((tmp_path / "raw-labels").read_bytes()))
    assert load_labelled(tmp_path / "set.zip")[1].tolist() == [4, 5]


def idx_pair(folder, images, labels):
    folder.mkdir(exist_ok=True)
    write_idx(folder / "archive-images-idx3-ubyte", images)
    write_idx(folder / "archive-labels-idx1-ubyte", labels)
    return folder


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda p: p / "nothing-here", "no such file or folder", id="missing"),
        pytest.param(lambda p: (p / "x.txt").write_text("hi") and p / "x.txt", "a labelled set is", id="text-file"),
        pytest.param(lambda p: (p / "x.zip").write_bytes(b"PK\x03\x04 not really") and p / "x.zip", "cannot read it",
                     id="broken-zip"),
        pytest.param(lambda p: p, "expected one archive-images-idx3-ubyte", id="empty-folder"),
        pytest.param(lambda p: idx_pair(p / "s", np.zeros((2, 28, 28), np.uint8), np.zeros(3, np.uint8)),
                     "2 images but 3 labels", id="count-mismatch"),
        pytest.param(lambda p: idx_pair(p / "s", np.zeros((2, 20, 20), np.uint8), np.zeros(2, np.uint8)),
                     "shape", id="not-28x28"),
        pytest.param(lambda p: idx_pair(p / "s", np.zeros((1, 28, 28), np.uint8), np.array([12], np.uint8)),
                     "digits 0-9", id="label-12"),
        pytest.param(lambda p: idx_pair(p / "s", np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8)),
                     "empty", id="empty-set"),
    ],
)
def test_load_labelled_says_what_is_wrong(tmp_path, make, message):
    with pytest.raises(DataError, match=message):
        load_labelled(make(tmp_path))


def test_load_labelled_npz_needs_both_arrays_and_no_pickles(tmp_path):
    np.savez(tmp_path / "one.npz", images=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataError, match="'images' and 'labels'"):
        load_labelled(tmp_path / "one.npz")
    np.savez(tmp_path / "objects.npz", images=np.array([object()]), labels=np.array([1]))
    with pytest.raises(DataError, match="cannot be read"):
        load_labelled(tmp_path / "objects.npz")


def test_load_labelled_is_bounded(tmp_path, monkeypatch):
    import cvae_core.data as data

    folder = idx_pair(tmp_path / "s", np.zeros((10, 28, 28), np.uint8), np.zeros(10, np.uint8))
    monkeypatch.setattr(data, "LABELLED_MAX_BYTES", 1000)
    with pytest.raises(DataError, match="larger than"):
        load_labelled(folder)
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:  # small packed, large unpacked
        zf.writestr("archive-images-idx3-ubyte", bytes(100_000))
        zf.writestr("archive-labels-idx1-ubyte", bytes(10))
    with pytest.raises(DataError, match="MB uncompressed"):
        load_labelled(tmp_path / "bomb.zip")

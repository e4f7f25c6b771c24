"""Exports of the archive: the table as CSV, the images as ZIP, the labelled items as a data set.

Every export is written in chunks to an anonymous temporary file (deleted when closed), reading the
archive in small batches, so building one costs a bounded amount of memory whatever the archive
holds; the caller gets the file, rewound. What one export may contain is capped *before* it is built
(``EXPORT_MAX_ITEMS`` items, ``EXPORT_MAX_BYTES`` bytes of images), and again while it is written,
since items may be saved meanwhile: a larger request raises ``ExportTooLarge`` saying what to do.

The labelled set is what a model can be scored on (``python -m cvae_core.evaluate --data PATH``,
read by ``cvae_core.data.load_labelled``): every item with a true label, as the 28x28 image the
model saw, either as the two MNIST IDX files in a ZIP or as an ``.npz`` with ``images`` and ``labels``.
"""

from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import IO

import numpy as np

from cvae_core.archive.records import SIDE, ArchiveError, ArchiveItem, png_to_array
from cvae_core.archive.store import Archive, Filters
from cvae_core.config import NUM_CLASSES

EXPORT_MAX_ITEMS = 50_000  # items in one export of any kind (a labelled set: <= 39 MB of pixels)
EXPORT_MAX_BYTES = 100 * 10**6  # bytes of stored images in one ZIP (Streamlit holds a download in memory)
BATCH = 200  # items read per query without originals
BATCH_WITH_ORIGINALS = 16  # with originals (each at most 512x512 RGBA PNG, about 1 MB)
IMAGES_NAME = "archive-images-idx3-ubyte"  # the names cvae_core.data.load_labelled looks for
LABELS_NAME = "archive-labels-idx1-ubyte"
CSV_COLUMNS = (
    "id", "saved_utc", "digit", "confidence", "true_label", "verdict", "model", "source", "sigma", "filename",
    "not_digit", "partner_model", "partner_digit", "partner_confidence", "finished",
    *(f"p{d}" for d in range(NUM_CLASSES)), *(f"loglik{d}" for d in range(NUM_CLASSES)), "loglik_not_digit",
)


class ExportTooLarge(ArchiveError):
    """An export would exceed what one export may contain; narrow the filters."""


def _inert(text: str) -> str:
    """Keep spreadsheets from reading user text as a formula (OWASP CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def csv_row(item: ArchiveItem) -> list[object]:
    """One item as a CSV row (``CSV_COLUMNS``); absent values are empty cells."""
    probs = item.probs or (None,) * NUM_CLASSES
    # Ten digits' log-likelihoods, then "not a digit"'s for models with that condition (else empty).
    logliks = (*(item.log_likelihoods or ()), *(None,) * (NUM_CLASSES + 1))[: NUM_CLASSES + 1]
    return [
        item.id, item.created_at.isoformat(timespec="seconds"), item.label, f"{item.confidence:.6f}",
        "" if item.true_label is None else item.true_label, item.verdict, _inert(item.model), item.source,
        f"{item.sigma:.6g}", _inert(item.filename or ""), _number(item.not_digit, ".6f"),
        _inert(item.partner_model or ""), "" if item.partner_label is None else item.partner_label,
        _number(item.partner_confidence, ".6f"), "" if item.finished is None else str(item.finished).lower(),
        *(_number(p, ".6f") for p in probs),
        *(_number(v, ".4f") for v in logliks),
    ]


def to_csv(found: Iterable[ArchiveItem]) -> bytes:
    """A few items as UTF-8 CSV bytes (no images); exports of the archive use ``export_csv``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_row(item) for item in found)
    return out.getvalue().encode("utf-8")


class _Budget:
    """Counts what an export has taken and stops it past the caps."""

    def __init__(self, max_items: int, max_bytes: int | None) -> None:
        self.max_items, self.max_bytes, self.items, self.bytes = max_items, max_bytes, 0, 0

    def check(self, items: int, size: int = 0) -> None:
        self.items, self.bytes = self.items + items, self.bytes + size
        if self.items > self.max_items:
            raise ExportTooLarge(f"This export has more than {self.max_items:,} items, the most one export may "
                                 "hold. Narrow the filters (digit, answer, source, model) and export in parts.")
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            raise ExportTooLarge(f"This export's images take more than {self.max_bytes / 1e6:,.0f} MB, the most "
                                 "one ZIP may hold. Leave out the originals, or narrow the filters and export "
                                 "in parts.")


def _start(archive: Archive, filters: Filters, *, with_original: bool, images: bool) -> tuple[int | None, _Budget]:
    """Check the caps up front (one query); the newest id the export will include, and its budget."""
    budget = _Budget(EXPORT_MAX_ITEMS, EXPORT_MAX_BYTES if images else None)
    top = archive.newest_id()
    count, size = archive.size(filters, with_original=with_original)
    _Budget(budget.max_items, budget.max_bytes).check(count, size if images else 0)
    return top, budget


@contextmanager
def _temporary() -> Iterator[IO[bytes]]:
    """An anonymous temporary file for the caller, rewound; closed (and so deleted) on an error."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 -- handed to the caller, who closes it
    try:
        yield out
    except BaseException:
        out.close()
        raise
    out.seek(0)


def export_csv(archive: Archive, filters: Filters) -> IO[bytes]:
    """The matching items as a CSV file (no images): a rewound temporary file."""
    top, budget = _start(archive, filters, with_original=False, images=False)
    with _temporary() as out:
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text)
        writer.writerow(CSV_COLUMNS)
        for item in archive.iterate(filters, batch=BATCH, top=top):
            budget.check(1)
            writer.writerow(csv_row(item))
        text.flush()
        text.detach()  # keep ``out`` open for the caller
    return out


def export_zip(archive: Archive, filters: Filters, *, originals: bool = True) -> IO[bytes]:
    """Every matching item's images, named by id (never by a user's file name), plus ``archive.csv``:
    a rewound temporary file."""
    top, budget = _start(archive, filters, with_original=originals, images=True)
    with _temporary() as out, tempfile.TemporaryFile() as table, zipfile.ZipFile(out, "w") as zf:
        text = io.TextIOWrapper(table, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text)
        writer.writerow(CSV_COLUMNS)
        batch = BATCH_WITH_ORIGINALS if originals else BATCH
        for item in archive.iterate(filters, batch=batch, with_original=originals, top=top):
            budget.check(1, len(item.input_png) + len(item.recon_png) + len(item.original_png or b""))
            writer.writerow(csv_row(item))
            stem = f"item-{item.id:06d}"
            zf.writestr(f"{stem}/input.png", item.input_png)
            zf.writestr(f"{stem}/reconstruction.png", item.recon_png)
            if item.original_png is not None:
                zf.writestr(f"{stem}/original.png", item.original_png)
        text.flush()
        table.seek(0)
        with zf.open("archive.csv", "w", force_zip64=True) as member:
            while chunk := table.read(1 << 16):
                member.write(chunk)
        text.detach()
    return out


def labelled_filters(filters: Filters) -> Filters:
    """What the labelled data set takes of ``filters``: labelled, finished items only."""
    return replace(filters, truth=filters.truth or "labelled", finished_only=True)


def labelled_arrays(archive: Archive, filters: Filters) -> tuple[np.ndarray, np.ndarray]:
    """The matching items that have a true label: images uint8 (N, 28, 28) as the model saw them,
    labels int64 (N,), oldest first; at most ``EXPORT_MAX_ITEMS``. Drawings marked unfinished (a
    stroke was added after they were saved) are left out: the set holds whole digits only."""
    if filters.truth == "unlabelled":
        raise ArchiveError("Unlabelled items have no true label to export; choose another answer filter.")
    labelled = labelled_filters(filters)
    top, budget = _start(archive, labelled, with_original=False, images=False)
    images: list[np.ndarray] = []
    labels: list[int] = []
    for item in archive.iterate(labelled, batch=BATCH, top=top):
        budget.check(1)
        images.append(np.rint(png_to_array(item.input_png) * 255).astype(np.uint8))
        labels.append(int(item.true_label))
    if not labels:
        raise ArchiveError("No finished item matching these filters has a true label yet. Say what was "
                           "written (\"What was written?\") for some items first.")
    return np.stack(images[::-1]).reshape(-1, SIDE, SIDE), np.asarray(labels[::-1], np.int64)


def export_idx(archive: Archive, filters: Filters) -> IO[bytes]:
    """The labelled items as a ZIP of two MNIST IDX files (``archive-images-idx3-ubyte``,
    ``archive-labels-idx1-ubyte``): a rewound temporary file."""
    from cvae_core.data import idx_header  # imported here: the store itself never needs torch

    images, labels = labelled_arrays(archive, filters)
    with _temporary() as out, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, array in ((IMAGES_NAME, images), (LABELS_NAME, labels.astype(np.uint8))):
            with zf.open(name, "w") as member:
                member.write(idx_header(array.shape))
                member.write(np.ascontiguousarray(array).tobytes())
    return out


def export_npz(archive: Archive, filters: Filters) -> IO[bytes]:
    """The labelled items as an ``.npz`` (``images`` uint8 (N, 28, 28), ``labels`` int64 (N,))."""
    images, labels = labelled_arrays(archive, filters)
    with _temporary() as out:
        np.savez_compressed(out, images=images, labels=labels)
    return out

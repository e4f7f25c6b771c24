"""The archive: recognised digits saved to a SQL database (SQLite by default, or PostgreSQL).

    records.py  what is stored, typed: Record (from the app) -> Entry (validated, PNG) -> ArchiveItem
    schema.py   the table built from those fields, the engine, SQLite's recipe, upgrades, error messages
    store.py    Archive: save (idempotent), list a page, count, label, mark finished, delete; Filters
    export.py   CSV, ZIP and labelled-set (IDX / .npz) exports, streamed to temporary files and capped

Nothing here imports torch, so that a process that only saves (tests/archive_writer.py) starts fast.
"""

from cvae_core.archive.export import (
    CSV_COLUMNS,
    EXPORT_MAX_BYTES,
    EXPORT_MAX_ITEMS,
    ExportTooLarge,
    export_csv,
    export_idx,
    export_npz,
    export_zip,
    labelled_arrays,
    labelled_filters,
    to_csv,
)
from cvae_core.archive.records import (
    FILENAME_MAX,
    MODEL_MAX,
    ORIGINAL_MAX_SIDE,
    SOURCES,
    Answer,
    ArchiveError,
    ArchiveItem,
    Entry,
    Record,
    RecordError,
    clean_filename,
    fingerprint,
    png_bytes,
    png_to_array,
    prepare,
    save_token,
)
from cvae_core.archive.schema import ENGINE_OPTIONS
from cvae_core.archive.store import ARCHIVE_ENV, LIST_MAX, TRUTHS, Archive, Filters, Saved, archive_url

__all__ = [
    "ARCHIVE_ENV", "CSV_COLUMNS", "ENGINE_OPTIONS", "EXPORT_MAX_BYTES", "EXPORT_MAX_ITEMS", "FILENAME_MAX",
    "LIST_MAX", "MODEL_MAX", "ORIGINAL_MAX_SIDE", "SOURCES", "TRUTHS", "Answer", "Archive", "ArchiveError",
    "ArchiveItem", "Entry", "ExportTooLarge", "Filters", "Record", "RecordError", "Saved", "archive_url",
    "clean_filename", "export_csv", "export_idx", "export_npz", "export_zip", "fingerprint", "labelled_arrays",
    "labelled_filters", "png_bytes", "png_to_array", "prepare", "save_token", "to_csv",
]

"""The archive store: recognised digits saved to a SQL database, with their images as PNG.

Any SQLAlchemy URL works (``$CVAE_ARCHIVE_URL``); the default is a SQLite file in the project's
git-ignored ``archive/`` folder, created on demand. The app reaches it through Streamlit's SQL
connection and hands the engine to :class:`Archive`; tests and scripts use ``Archive.from_url``.

What is stored is re-encoded by us, never the user's bytes: the 28x28 input the model saw, its
reconstruction and the original (size-capped), all as PNG. An upload's file name is kept only as
text (control characters removed, truncated) for display; no user-supplied name becomes a path.

On SQLite (the documented pysqlite recipe, see SQLAlchemy's "Transactions with SQLite and the
sqlite3 driver"): WAL journal, a busy timeout, and writes that take the write lock up front with
``BEGIN IMMEDIATE`` in one short transaction per save. Every connection remembers the identity
(device, inode) of the file it opened, so a database file deleted or replaced while the app runs
is detected before a write and nothing is written into an unlinked file.

Every failure to store or read raises :class:`ArchiveError` whose ``str`` is a message for a
person; a record that is not valid raises its subclass :class:`RecordError` before any write.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import logging
import math
import numbers
import os
import sqlite3
import threading
import unicodedata
import weakref
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARCHIVE_DIR = PROJECT_ROOT / "archive"
ARCHIVE_ENV = "CVAE_ARCHIVE_URL"

SIDE = 28  # the MNIST field the model sees
ORIGINAL_MAX_SIDE = 512  # originals are downscaled to fit this box before storing
ORIGINAL_MAX_PIXELS = 4096 * 4096  # larger originals are refused, not resized
FILENAME_MAX = 120
MODEL_MAX = 64
SOURCES = ("canvas", "upload")
SIGMA_MAX = 1.0
BUSY_TIMEOUT_S = 5.0
_WRITE_OPTION = "cvae_archive_write"  # execution option: this transaction writes (BEGIN IMMEDIATE)
_FILE_ID = "cvae_archive_file_id"  # connection-record key: (st_dev, st_ino) of the file it opened

metadata = MetaData()
items = Table(
    "archive_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("model", String(MODEL_MAX), nullable=False),
    Column("source", String(16), nullable=False),
    Column("label", Integer, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("sigma", Float, nullable=False),
    Column("filename", String(FILENAME_MAX), nullable=True),
    Column("fingerprint", String(64), nullable=False),
    Column("input_png", LargeBinary, nullable=False),
    Column("recon_png", LargeBinary, nullable=False),
    Column("original_png", LargeBinary, nullable=True),
)
_SUMMARY_COLUMNS = [c for c in items.c if c.name != "original_png"]


class ArchiveError(RuntimeError):
    """The archive could not store or read an item; ``str(e)`` is a message for the user."""


class RecordError(ArchiveError, ValueError):
    """A record is not valid and was not stored; retrying it cannot help."""


def archive_url() -> str:
    """``$CVAE_ARCHIVE_URL`` (any SQLAlchemy URL) or the default SQLite file ``archive/archive.db``."""
    url = os.environ.get(ARCHIVE_ENV, "").strip() or f"sqlite:///{ARCHIVE_DIR / 'archive.db'}"
    try:
        make_url(url)
    except ArgumentError:
        raise ArchiveError(f"{ARCHIVE_ENV} is not a valid SQLAlchemy database URL.") from None
    return url


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A validated record, ready to store: the images are already re-encoded as PNG."""

    model: str
    source: str
    label: int
    confidence: float
    sigma: float
    input_png: bytes
    recon_png: bytes
    original_png: bytes | None
    filename: str | None
    fingerprint: str


@dataclass(frozen=True)
class ArchiveItem:
    """One stored item. ``original_png`` is None when there is none or it was not loaded."""

    id: int
    created_at: datetime  # UTC
    model: str
    source: str
    label: int
    confidence: float
    sigma: float
    filename: str | None
    fingerprint: str
    input_png: bytes
    recon_png: bytes
    original_png: bytes | None = None


def _field(record: Mapping[str, Any], name: str) -> Any:
    if name not in record:
        raise RecordError(f"The item cannot be saved: it has no '{name}'.")
    return record[name]


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RecordError(f"The item cannot be saved: its {name} is not a number.")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise RecordError(f"The item cannot be saved: its {name} ({number}) is not between {low:g} and {high:g}.")
    return number


def _pixels(value: Any, name: str) -> np.ndarray:
    """A 28x28 array in [0, 1] (leading axes of size 1 allowed) -> uint8 (28, 28)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise RecordError(f"The item cannot be saved: its {name} is not an image array.") from None
    arr = arr.reshape(arr.shape[-2:]) if arr.ndim >= 2 and math.prod(arr.shape[:-2]) == 1 else arr
    if arr.shape != (SIDE, SIDE):
        raise RecordError(f"The item cannot be saved: its {name} is {arr.shape}, not {SIDE}x{SIDE}.")
    if not np.isfinite(arr).all():
        raise RecordError(f"The item cannot be saved: its {name} has non-finite values.")
    if arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise RecordError(f"The item cannot be saved: its {name} has values outside [0, 1].")
    return np.rint(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)


def clean_filename(name: Any) -> str | None:
    """A display-only file name: text, control characters removed, at most ``FILENAME_MAX`` chars."""
    if name is None:
        return None
    text = "".join(ch for ch in str(name) if unicodedata.category(ch)[0] != "C").strip()
    if len(text) > FILENAME_MAX:
        text = text[: FILENAME_MAX - 1] + "…"
    return text or None


def _fingerprint(pixels: np.ndarray, model: str, sigma: float) -> str:
    digest = hashlib.sha256()
    digest.update(f"{model}\0{sigma:.6g}\0".encode())
    digest.update(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def fingerprint(record: Mapping[str, Any]) -> str:
    """The identity of a record for de-duplication: its input pixels, model and sigma."""
    model = _field(record, "model")
    sigma = _number(_field(record, "sigma"), "noise sigma", 0.0, SIGMA_MAX)
    return _fingerprint(_pixels(_field(record, "input_image"), "input image"), str(model), sigma)


def png_bytes(pixels: np.ndarray) -> bytes:
    """A uint8 (H, W) array -> greyscale PNG bytes."""
    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="PNG", optimize=False)
    return out.getvalue()


def png_to_array(data: bytes) -> np.ndarray:
    """Stored PNG bytes -> float32 (H, W) in [0, 1] (greyscale)."""
    with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def original_png(img: Any) -> bytes:
    """Any Pillow image -> PNG bytes that fit ``ORIGINAL_MAX_SIDE``; the caller's image is untouched."""
    if not isinstance(img, Image.Image):
        raise RecordError("The item cannot be saved: its original is not an image.")
    w, h = img.size
    if w < 1 or h < 1 or w * h > ORIGINAL_MAX_PIXELS:
        raise RecordError(f"The item cannot be saved: its original image is {w}x{h} pixels.")
    if img.mode.startswith("I") or img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        top = 65535.0 if img.mode.startswith("I") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.rint(np.clip(arr / top, 0, 1) * 255).astype(np.uint8), mode="L")
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):
        keep_alpha = img.mode == "PA" or (img.mode == "P" and "transparency" in img.info)
        img = img.convert("L" if img.mode == "1" else "RGBA" if keep_alpha else "RGB")
    scale = min(1.0, ORIGINAL_MAX_SIDE / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = io.BytesIO()
    try:
        img = img.resize(size, Image.Resampling.LANCZOS) if size != (w, h) else img
        img.save(out, format="PNG")
    except (OSError, ValueError) as e:
        raise RecordError(f"The item cannot be saved: its original image cannot be re-encoded ({e}).") from None
    return out.getvalue()


def prepare(record: Mapping[str, Any] | Entry) -> Entry:
    """Validate a record from the app and re-encode its images; raises ``RecordError``."""
    if isinstance(record, Entry):
        return record
    if not isinstance(record, Mapping):
        raise RecordError("The item cannot be saved: it is not a record.")
    model = _field(record, "model")
    if not isinstance(model, str) or not model.strip() or len(model) > MODEL_MAX:
        raise RecordError(f"The item cannot be saved: its model name must be 1 to {MODEL_MAX} characters.")
    source = _field(record, "source")
    if source not in SOURCES:
        raise RecordError(f"The item cannot be saved: its source must be one of {', '.join(SOURCES)}.")
    label = _field(record, "label")
    if isinstance(label, bool) or not isinstance(label, numbers.Integral) or not 0 <= int(label) <= 9:
        raise RecordError("The item cannot be saved: its recognised digit must be a whole number from 0 to 9.")
    confidence = _number(_field(record, "confidence"), "confidence", 0.0, 1.0)
    sigma = _number(_field(record, "sigma"), "noise sigma", 0.0, SIGMA_MAX)
    pixels = _pixels(_field(record, "input_image"), "input image")
    recon = _pixels(_field(record, "recon_image"), "reconstruction")
    original = record.get("original")
    return Entry(
        model=model,
        source=source,
        label=int(label),
        confidence=confidence,
        sigma=sigma,
        input_png=png_bytes(pixels),
        recon_png=png_bytes(recon),
        original_png=None if original is None else original_png(original),
        filename=clean_filename(record.get("filename")),
        fingerprint=_fingerprint(pixels, model, sigma),
    )


# -- storage ---------------------------------------------------------------------------------


def sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL (plain or ``file:`` URI), or None for memory and other databases."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    name = url.database
    if name.startswith("file:"):
        name = name.removeprefix("file:").split("?", 1)[0]
        if not name or name == ":memory:" or url.query.get("mode") == "memory":
            return None
    return Path(name).resolve()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


@dataclass
class _EngineState:
    """Per-engine bookkeeping shared by every ``Archive`` over that engine (e.g. one per rerun)."""

    lock: threading.Lock
    busy_timeout: float  # seconds, set by the first Archive over the engine (its connect hook uses it)
    schema_ready: bool = False


_ENGINES: weakref.WeakKeyDictionary[Engine, _EngineState] = weakref.WeakKeyDictionary()
_ENGINES_LOCK = threading.Lock()


def _install_sqlite_hooks(engine: Engine, path: Path | None, busy_timeout_ms: int) -> None:
    """The pysqlite recipe: we emit BEGIN ourselves (IMMEDIATE for writes) and set pragmas."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None  # stop pysqlite from issuing its own BEGIN
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()
        if path is not None:
            connection_record.info[_FILE_ID] = _file_id(path)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "BEGIN")


def _describe(error: Exception, where: str, busy_timeout: float) -> str:
    """A human message for a database failure."""
    orig = error if isinstance(error, sqlite3.Error) else getattr(error, "orig", None)
    if isinstance(orig, sqlite3.Error):
        code = (getattr(orig, "sqlite_errorcode", 0) or 0) & 0xFF
        messages = {
            sqlite3.SQLITE_BUSY: f"The archive is busy: another save held it for more than {busy_timeout:g} s.",
            sqlite3.SQLITE_LOCKED: f"The archive is busy: another save held it for more than {busy_timeout:g} s.",
            sqlite3.SQLITE_FULL: f"The disk holding the archive ({where}) is full.",
            sqlite3.SQLITE_READONLY: f"The archive ({where}) is read-only; check the file's permissions.",
            sqlite3.SQLITE_NOTADB: f"{where} is not an archive database (damaged, or another kind of file). "
            "It was left untouched; move it aside to start a new archive.",
            sqlite3.SQLITE_CORRUPT: f"The archive database ({where}) is damaged. "
            "It was left untouched; move it aside to start a new archive.",
            sqlite3.SQLITE_CANTOPEN: f"The archive database ({where}) cannot be opened; check that its folder exists "
            "and is writable.",
            sqlite3.SQLITE_IOERR: f"The disk reported an error while using the archive ({where}).",
            sqlite3.SQLITE_PERM: f"The archive ({where}) may not be written; check the file's permissions.",
        }
        if code in messages:
            return messages[code]
    if isinstance(error, PoolTimeoutError):
        return "The archive is busy: too many saves at once."
    detail = str(orig if orig is not None else error).strip().splitlines()
    return f"The archive database ({where}) failed: {detail[0] if detail else type(error).__name__}."


class Archive:
    """Saved items in one SQL database: ``save``, ``list``, ``get``, ``exists``, ``delete``, ``count``.

    Thread-safe. Many ``Archive`` objects may share one engine (the app makes one per rerun over
    the cached connection's engine); the first one installs the SQLite hooks and sets the busy timeout.
    """

    def __init__(self, engine: Engine, *, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.engine = engine
        self.path = sqlite_file(engine.url)
        with _ENGINES_LOCK:
            state = _ENGINES.get(engine)
            if state is None:
                if engine.dialect.name == "sqlite":
                    _install_sqlite_hooks(engine, self.path, round(busy_timeout * 1000))
                    engine.dispose()  # pooled connections, if any, predate the hooks
                state = _ENGINES[engine] = _EngineState(lock=threading.Lock(), busy_timeout=busy_timeout)
        self._state = state
        self.busy_timeout = state.busy_timeout

    @classmethod
    def from_url(cls, url: str, *, busy_timeout: float = BUSY_TIMEOUT_S) -> Archive:
        """An archive over a new engine (scripts and tests; the app uses ``st.connection``)."""
        try:
            engine = create_engine(url)
        except (ArgumentError, ImportError) as e:
            raise ArchiveError(f"The archive database URL cannot be used: {e}") from None
        return cls(engine, busy_timeout=busy_timeout)

    @property
    def location(self) -> str:
        """Where the archive lives, for display (a file path, or the URL without its password)."""
        if self.path is not None:
            return str(self.path)
        return self.engine.url.render_as_string(hide_password=True)

    # -- connections -------------------------------------------------------------------------

    def _stale(self, conn: Connection) -> bool:
        """Does this pooled connection hold a file that is no longer the one at ``self.path``?"""
        if self.path is None:
            return False
        opened = conn.connection.info.get(_FILE_ID)
        return opened is None or opened != _file_id(self.path)

    def _open(self) -> tuple[Connection, bool]:
        """Check out a connection, and whether the file was missing. A missing file is created afresh,
        without the -wal and -shm a deleted database may have left (SQLite would replay them into it)."""
        if self.path is None or self.path.exists():
            return self.engine.connect(), False
        with self._state.lock:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                for suffix in ("-wal", "-shm"):
                    orphan = self.path.with_name(self.path.name + suffix)
                    if orphan.exists():
                        log.warning("removing %s, left behind by a deleted archive database", orphan)
                        orphan.unlink(missing_ok=True)
            return self.engine.connect(), True

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[Connection]:
        """A checked connection: never one to a deleted/replaced file; schema created if needed."""
        conn, created = self._open()
        try:
            replaced = self._stale(conn)
            if replaced:
                log.warning("archive file %s was deleted or replaced while in use; reopening", self.path)
                if self.path.exists():
                    # Replaced: our -wal still carries the old file's pages under the name the new file
                    # will use. Empty it through the old handle so they are not replayed into the new one.
                    try:
                        conn.connection.dbapi_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    except sqlite3.Error as e:
                        log.warning("could not empty the old -wal of %s: %s", self.path, e)
                conn.invalidate()
                conn.close()
                with self._state.lock:
                    self.engine.dispose()  # close every pooled handle on the old file
                    self._state.schema_ready = False
                conn, created = self._open()
            if not self._state.schema_ready:
                with self._state.lock:
                    if not self._state.schema_ready:
                        self._create_schema(conn)
                        self._state.schema_ready = True
            if replaced and write:
                now = "A new, empty archive has been started there" if created else "It now uses the file found there"
                raise ArchiveError(f"The archive file ({self.location}) was deleted or replaced while the app was "
                                   f"running, so nothing was saved. {now}; try again to save into it.")
            if write:
                conn.execution_options(**{_WRITE_OPTION: True})
            yield conn
        finally:
            conn.close()

    def _create_schema(self, conn: Connection) -> None:
        with conn.begin():  # a plain read first, so a read-only archive can still be read
            if inspect(conn).has_table(items.name):
                return
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            metadata.create_all(conn, checkfirst=True)
        conn.execution_options(**{_WRITE_OPTION: False})

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn database failures into ``ArchiveError`` with a human message, logging the details."""
        try:
            yield
        except ArchiveError:
            raise
        except (SQLAlchemyError, sqlite3.Error) as e:
            log.warning("archive %s failed at %s: %s", action, self.location, e)
            raise ArchiveError(_describe(e, self.location, self.busy_timeout)) from e
        except OSError as e:  # the archive folder could not be created or cleaned
            log.warning("archive %s failed at %s: %s", action, self.location, e)
            raise ArchiveError(f"The archive folder cannot be prepared ({self.location}): {e.strerror}.") from e

    # -- API ---------------------------------------------------------------------------------

    def save(self, record: Mapping[str, Any] | Entry) -> int:
        """Store one item in one short transaction; its new id, or ``ArchiveError`` and nothing stored."""
        entry = prepare(record)
        with self._guard("save"), self._connect(write=True) as conn:
            with conn.begin():
                if self._stale(conn):  # deleted between checkout and BEGIN: write nothing
                    raise ArchiveError(f"The archive file ({self.location}) was deleted while saving; nothing was saved.")
                result = conn.execute(insert(items).values(created_at=datetime.now(UTC), **_row(entry)))
                item_id = int(result.inserted_primary_key[0])
            if self._stale(conn):  # deleted during the write: the row went with the file
                raise ArchiveError(f"The archive file ({self.location}) was deleted while saving; the item was lost "
                                   "with it. Try again to save it into a new archive.")
        return item_id

    def list(
        self,
        *,
        digit: int | None = None,
        source: str | None = None,
        model: str | None = None,
        with_original: bool = False,
    ) -> list[ArchiveItem]:
        """Items matching every given filter, newest first (originals only when asked for)."""
        columns = list(items.c) if with_original else _SUMMARY_COLUMNS
        query = _filtered(select(*columns), digit, source, model).order_by(items.c.id.desc())
        with self._guard("list"), self._connect(write=False) as conn, conn.begin():
            return [_item(row) for row in conn.execute(query).mappings()]

    def get(self, item_id: int) -> ArchiveItem | None:
        """One item with its original, or None if there is no such id."""
        with self._guard("get"), self._connect(write=False) as conn, conn.begin():
            row = conn.execute(select(items).where(items.c.id == int(item_id))).mappings().first()
        return None if row is None else _item(row)

    def exists(self, item_id: int) -> bool:
        """Is there an item with this id?"""
        query = select(items.c.id).where(items.c.id == int(item_id))
        with self._guard("get"), self._connect(write=False) as conn, conn.begin():
            return conn.execute(query).first() is not None

    def delete(self, item_id: int) -> bool:
        """Delete one item; False if it did not exist."""
        with self._guard("delete"), self._connect(write=True) as conn, conn.begin():
            return conn.execute(delete(items).where(items.c.id == int(item_id))).rowcount > 0

    def count(self, *, digit: int | None = None, source: str | None = None, model: str | None = None) -> int:
        """How many items match every given filter."""
        query = _filtered(select(func.count()).select_from(items), digit, source, model)
        with self._guard("count"), self._connect(write=False) as conn, conn.begin():
            return int(conn.execute(query).scalar_one())

    def models(self) -> list[str]:
        """The model names that occur in the archive, sorted."""
        query = select(items.c.model).distinct().order_by(items.c.model)
        with self._guard("list models"), self._connect(write=False) as conn, conn.begin():
            return list(conn.execute(query).scalars())

    def integrity(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: "ok" when the file is sound (other databases: not checked)."""
        if self.engine.dialect.name != "sqlite":
            return f"not checked ({self.engine.dialect.name})"
        with self._guard("check"), self._connect(write=False) as conn:
            return "\n".join(str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check"))


def _row(entry: Entry) -> dict[str, Any]:
    return {
        "model": entry.model, "source": entry.source, "label": entry.label, "confidence": entry.confidence,
        "sigma": entry.sigma, "filename": entry.filename, "fingerprint": entry.fingerprint,
        "input_png": entry.input_png, "recon_png": entry.recon_png, "original_png": entry.original_png,
    }


def _filtered(query: Any, digit: int | None, source: str | None, model: str | None) -> Any:
    if digit is not None:
        query = query.where(items.c.label == int(digit))
    if source is not None:
        query = query.where(items.c.source == source)
    if model is not None:
        query = query.where(items.c.model == model)
    return query


def _item(row: Mapping[str, Any]) -> ArchiveItem:
    created = row["created_at"]
    if created.tzinfo is None:  # SQLite keeps no zone; we always write UTC
        created = created.replace(tzinfo=UTC)
    return ArchiveItem(
        id=row["id"], created_at=created, model=row["model"], source=row["source"], label=row["label"],
        confidence=row["confidence"], sigma=row["sigma"], filename=row["filename"],
        fingerprint=row["fingerprint"], input_png=bytes(row["input_png"]), recon_png=bytes(row["recon_png"]),
        original_png=None if row.get("original_png") is None else bytes(row["original_png"]),
    )


# -- views and exports -----------------------------------------------------------------------


def data_url(png: bytes, *, scale: int = 1) -> str:
    """PNG bytes as a ``data:`` URL, optionally enlarged without blur (for table thumbnails)."""
    if scale > 1:
        with Image.open(io.BytesIO(png), formats=["PNG"]) as img:
            big = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
        out = io.BytesIO()
        big.save(out, format="PNG")
        png = out.getvalue()
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def table_rows(found: Iterable[ArchiveItem], *, thumb_scale: int = 2) -> list[dict[str, Any]]:
    """One plain dict per item for the archive table (images as data URLs)."""
    return [
        {
            "id": item.id,
            "input": data_url(item.input_png, scale=thumb_scale),
            "reconstruction": data_url(item.recon_png, scale=thumb_scale),
            "digit": item.label,
            "confidence": item.confidence,
            "model": item.model,
            "source": item.source,
            "sigma": item.sigma,
            "saved": item.created_at,
            "filename": item.filename or "",
        }
        for item in found
    ]


CSV_COLUMNS = ("id", "saved_utc", "digit", "confidence", "model", "source", "sigma", "filename")


def _inert(text: str) -> str:
    """Keep spreadsheets from reading user text as a formula (OWASP CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(found: Iterable[ArchiveItem]) -> bytes:
    """The table as UTF-8 CSV (no images)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for item in found:
        writer.writerow([
            item.id, item.created_at.isoformat(timespec="seconds"), item.label, f"{item.confidence:.6f}",
            _inert(item.model), item.source, f"{item.sigma:.6g}", _inert(item.filename or ""),
        ])
    return out.getvalue().encode("utf-8")


def to_zip(found: Iterable[ArchiveItem]) -> bytes:
    """Every item's images, named by id (never by a user's file name), plus ``archive.csv``."""
    found = list(found)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive.csv", to_csv(found), compress_type=zipfile.ZIP_DEFLATED)
        for item in found:
            stem = f"item-{item.id:06d}"
            zf.writestr(f"{stem}/input.png", item.input_png)
            zf.writestr(f"{stem}/reconstruction.png", item.recon_png)
            if item.original_png is not None:
                zf.writestr(f"{stem}/original.png", item.original_png)
    return out.getvalue()

"""The archive store: save, read a page, count, label, delete; one short transaction per call.

Any SQLAlchemy URL works (``$CVAE_ARCHIVE_URL``); the default is a SQLite file in the project's
git-ignored ``archive/`` folder, created on demand. The app reaches it through Streamlit's SQL
connection and hands the engine to :class:`Archive`; tests and scripts use ``Archive.from_url``.

A save returns its id only after its transaction has committed. Every connection to a SQLite file
remembers the identity (device, inode) of the file it opened, so a database file deleted or
replaced while the app runs is detected before a write and nothing is written into an unlinked
file. Every failure to store or read raises ``ArchiveError`` whose ``str`` is a message for a
person; a record that is not valid raises its subclass ``RecordError`` before any write.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from cvae_core.archive import schema
from cvae_core.archive.records import (
    ArchiveError,
    ArchiveItem,
    Entry,
    Record,
    fingerprint,
    prepare,
    save_token,
    true_label,
)
from cvae_core.config import NUM_CLASSES

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
ARCHIVE_DIR = PROJECT_ROOT / "archive"
ARCHIVE_ENV = "CVAE_ARCHIVE_URL"
BUSY_TIMEOUT_S = 5.0
LIST_MAX = 500  # the most items one ``list`` call returns (a page of the archive is smaller)
TRUTHS = ("right", "wrong", "labelled", "unlabelled")  # the answer against the true label the user gave
items = schema.items


def archive_url() -> str:
    """``$CVAE_ARCHIVE_URL`` (any SQLAlchemy URL) or the default SQLite file ``archive/archive.db``."""
    url = os.environ.get(ARCHIVE_ENV, "").strip() or f"sqlite:///{ARCHIVE_DIR / 'archive.db'}"
    try:
        make_url(url)
    except ArgumentError:
        raise ArchiveError(f"{ARCHIVE_ENV} is not a valid SQLAlchemy database URL.") from None
    return url


@dataclass(frozen=True)
class Filters:
    """Which items: every given condition must hold (None: any)."""

    digit: int | None = None  # the recognised digit
    source: str | None = None
    model: str | None = None
    truth: str | None = None  # one of TRUTHS
    finished_only: bool = False  # leave out drawings marked unfinished (the labelled data set does)

    def __post_init__(self) -> None:
        if self.truth is not None and self.truth not in TRUTHS:
            raise ValueError(f"truth must be one of {TRUTHS}, not {self.truth!r}")
        if self.digit is not None and not 0 <= self.digit < NUM_CLASSES:
            raise ValueError(f"digit must be 0 to {NUM_CLASSES - 1}, not {self.digit}")

    def apply(self, query: Select) -> Select:
        if self.digit is not None:
            query = query.where(items.c.label == int(self.digit))
        if self.source is not None:
            query = query.where(items.c.source == self.source)
        if self.model is not None:
            query = query.where(items.c.model == self.model)
        if self.truth == "unlabelled":
            query = query.where(items.c.true_label.is_(None))
        elif self.truth == "right":
            query = query.where(items.c.true_label == items.c.label)
        elif self.truth == "wrong":
            query = query.where(items.c.true_label != items.c.label)  # NULL compares to neither
        elif self.truth == "labelled":
            query = query.where(items.c.true_label.is_not(None))
        if self.finished_only:
            query = query.where(items.c.finished.is_not(False))  # NULL (not known) stays in
        return query


EVERYTHING = Filters()


@dataclass(frozen=True)
class Saved:
    """Where a save put its item: its id, and whether it is new (False: the archive had it already)."""

    id: int
    new: bool


@dataclass
class _EngineState:
    """Per-engine bookkeeping shared by every ``Archive`` over that engine (e.g. one per rerun)."""

    lock: threading.Lock
    busy_timeout: float  # seconds, set by the first Archive over the engine (its connect hook uses it)
    schema_ready: bool = False
    columns: set[str] = field(default_factory=set)  # what the table has (fewer than ours: not upgradable)
    upgrade_error: Exception | None = None


_ENGINES: weakref.WeakKeyDictionary[Engine, _EngineState] = weakref.WeakKeyDictionary()
_ENGINES_LOCK = threading.Lock()


class Archive:
    """Saved items in one SQL database. Thread-safe; many ``Archive`` objects may share one engine
    (the app makes one per rerun over the cached connection's engine); the first one installs the
    SQLite or PostgreSQL hooks and sets the busy timeout (on PostgreSQL also the longest a statement
    may take, and about the longest any wait for the server may take)."""

    def __init__(self, engine: Engine, *, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.engine = engine
        self.path = schema.sqlite_file(engine.url)
        with _ENGINES_LOCK:
            state = _ENGINES.get(engine)
            if state is None:
                if engine.dialect.name == "sqlite":
                    schema.install_sqlite_hooks(engine, self.path, round(busy_timeout * 1000))
                elif engine.dialect.name == "postgresql":
                    schema.install_postgres_hooks(engine, busy_timeout)
                engine.dispose()  # pooled connections, if any, predate the hooks
                state = _ENGINES[engine] = _EngineState(lock=threading.Lock(), busy_timeout=busy_timeout)
        self._state = state
        self.busy_timeout = state.busy_timeout

    @classmethod
    def from_url(cls, url: str, *, busy_timeout: float = BUSY_TIMEOUT_S) -> Archive:
        """An archive over a new engine (scripts and tests; the app uses ``st.connection``)."""
        return cls(schema.make_engine(url), busy_timeout=busy_timeout)

    @property
    def location(self) -> str:
        """Where the archive lives, for the server's log (a file path, or the URL without its password)."""
        if self.path is not None:
            return str(self.path)
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def name(self) -> str:
        """What visitors are shown of the archive: a name, never a path, host or user ("archive.db",
        "PostgreSQL database cvae")."""
        if self.path is not None:
            return self.path.name
        url = self.engine.url
        kind = {"postgresql": "PostgreSQL", "sqlite": "SQLite", "mysql": "MySQL"}.get(url.get_backend_name(),
                                                                                  url.get_backend_name())
        return f"{kind} database {url.database}" if url.database and url.database != ":memory:" else f"{kind} database"

    # -- connections -----------------------------------------------------------------------------

    def _stale(self, conn: Connection) -> bool:
        """Does this pooled connection hold a file that is no longer the one at ``self.path``?"""
        if self.path is None:
            return False
        opened = conn.connection.info.get(schema.FILE_ID)
        return opened is None or opened != schema.file_id(self.path)

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
        """A checked connection: never one to a deleted/replaced file; schema created or upgraded."""
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
                        columns, error = schema.ensure_schema(conn)
                        self._state.columns, self._state.upgrade_error = columns, error
                        self._state.schema_ready = error is None
            if replaced and write:
                now = "A new, empty archive has been started there" if created else "It now uses the file found there"
                raise ArchiveError(f"The archive file ({self.name}) was deleted or replaced while the app was "
                                   f"running, so nothing was saved. {now}; try again to save into it.")
            if write and self._state.upgrade_error is not None:
                raise self._state.upgrade_error
            if write:
                conn.execution_options(**{schema.WRITE_OPTION: True})
            yield conn
        finally:
            conn.close()

    def _columns(self, *, with_original: bool) -> list[Any]:
        """The columns to read: all that the table has (an old read-only archive may lack some)."""
        if not self._state.columns:  # not looked at yet over this engine
            with self._guard("open"), self._connect(write=False):
                pass
        have = self._state.columns
        return [c for c in items.c if c.name in have and (with_original or c.name != "original_png")]

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn database failures into ``ArchiveError`` with a human message, logging the details."""
        try:
            yield
        except ArchiveError:
            raise
        except (SQLAlchemyError, sqlite3.Error) as e:
            log.warning("archive %s failed at %s: %s", action, self.location, e)
            raise ArchiveError(schema.describe(e, self.name, self.busy_timeout)) from e
        except OSError as e:  # the archive folder could not be created or cleaned
            log.warning("archive %s failed at %s: %s", action, self.location, e)
            raise ArchiveError(f"The archive folder cannot be prepared ({self.name}): {e.strerror}.") from e

    def _read(self, action: str, query: Any) -> Any:
        """Run one read in its own short transaction; the result, fully fetched."""
        with self._guard(action), self._connect(write=False) as conn, conn.begin():
            return conn.execute(query).all()

    # -- writes ----------------------------------------------------------------------------------

    def save(self, record: Record | Entry | dict[str, Any]) -> int:
        """Store one item and return its id once its transaction has committed (see :meth:`store`)."""
        return self.store(record).id

    def store(self, record: Record | Entry | dict[str, Any]) -> Saved:
        """Validate, de-duplicate and store one item in one short transaction; or raise ``ArchiveError``
        with nothing stored. An input the archive already holds (the same save token: the same
        pixels, model and sigma) is not stored again: its item is returned, with the record's true
        label, finished mark and number (a corrected one), when it has them, written onto it."""
        entry = prepare(record)
        with self._guard("save"):
            try:
                return self._insert(entry)
            except IntegrityError:  # the same entry, saved at the same moment by another session
                return self._insert(entry)

    def _insert(self, entry: Entry) -> Saved:
        with self._connect(write=True) as conn:
            with conn.begin():
                if self._stale(conn):  # deleted between checkout and BEGIN: write nothing
                    raise ArchiveError(f"The archive file ({self.name}) was deleted while saving; "
                                       "nothing was saved.")
                known = conn.execute(select(items.c.id).where(items.c.save_token == entry.save_token)).first()
                if known is not None:
                    given = {name: getattr(entry, name) for name in ("true_label", "finished", "number")
                             if getattr(entry, name) is not None}
                    if given:
                        conn.execute(update(items).where(items.c.id == known[0]).values(**given))
                    return Saved(int(known[0]), new=False)
                result = conn.execute(insert(items).values(created_at=datetime.now(UTC), **entry.row()))
                item_id = int(result.inserted_primary_key[0])
            # committed here, and only now is the id reported
            if self._stale(conn):  # deleted during the write: the row went with the file
                raise ArchiveError(f"The archive file ({self.name}) was deleted while saving; the item was lost "
                                   "with it. Try again to save it into a new archive.")
        return Saved(item_id, new=True)

    def find(self, record: Record | Entry | dict[str, Any]) -> int | None:
        """The id of the item holding this input (same pixels, model and sigma), or None."""
        token = record.save_token if isinstance(record, Entry) else save_token(fingerprint(record))
        found = self._read("get", select(items.c.id).where(items.c.save_token == token))
        return int(found[0][0]) if found else None

    def set_finished(self, item_id: int, finished: bool) -> bool:
        """Mark a saved drawing finished or not (unfinished ones stay out of the labelled data set);
        False if there is no such item."""
        query = update(items).where(items.c.id == int(item_id)).values(finished=bool(finished))
        with self._guard("mark"), self._connect(write=True) as conn, conn.begin():
            return conn.execute(query).rowcount > 0

    def set_true_label(self, item_id: int, label: int | None) -> bool:
        """Set (or, with None, clear) what the user says they wrote; False if there is no such item."""
        value = true_label(label)
        query = update(items).where(items.c.id == int(item_id)).values(true_label=value)
        with self._guard("label"), self._connect(write=True) as conn, conn.begin():
            return conn.execute(query).rowcount > 0

    def delete(self, item_id: int) -> bool:
        """Delete one item; False if it did not exist."""
        with self._guard("delete"), self._connect(write=True) as conn, conn.begin():
            return conn.execute(delete(items).where(items.c.id == int(item_id))).rowcount > 0

    # -- reads -----------------------------------------------------------------------------------

    def list(self, filters: Filters = EVERYTHING, *, limit: int = LIST_MAX, offset: int = 0,
             with_original: bool = False, below: int | None = None) -> list[ArchiveItem]:
        """At most ``limit`` (<= ``LIST_MAX``) items matching ``filters``, newest first, skipping
        ``offset`` (a page) or taking only ids below ``below`` (a batch of an export); originals
        only when asked for."""
        if not 0 < limit <= LIST_MAX or offset < 0:
            raise ValueError(f"limit must be 1 to {LIST_MAX} and offset at least 0, not {limit} and {offset}")
        query = filters.apply(select(*self._columns(with_original=with_original)))
        if below is not None:
            query = query.where(items.c.id < int(below))
        query = query.order_by(items.c.id.desc()).limit(limit).offset(offset)
        return [ArchiveItem.from_row(row._mapping) for row in self._read("list", query)]

    def iterate(self, filters: Filters = EVERYTHING, *, batch: int, with_original: bool = False,
                top: int | None = None) -> Iterator[ArchiveItem]:
        """Every matching item with an id up to ``top`` (default: the newest now), newest first, read
        ``batch`` at a time, each batch in its own short transaction (keyset pagination). At most one
        batch is held: an item is let go as soon as it has been handed out."""
        below = None if top is None else top + 1
        while found := self.list(filters, limit=batch, with_original=with_original, below=below):
            below = found[-1].id
            found.reverse()
            while found:
                yield found.pop()

    def get(self, item_id: int) -> ArchiveItem | None:
        """One item with its original, or None if there is no such id."""
        found = self._read("get", select(*self._columns(with_original=True)).where(items.c.id == int(item_id)))
        return ArchiveItem.from_row(found[0]._mapping) if found else None

    def exists(self, item_id: int) -> bool:
        """Is there an item with this id?"""
        return bool(self._read("get", select(items.c.id).where(items.c.id == int(item_id))))

    def count(self, filters: Filters = EVERYTHING) -> int:
        """How many items match ``filters``."""
        return int(self._read("count", filters.apply(select(func.count()).select_from(items)))[0][0])

    def newest_id(self) -> int | None:
        """The id of the newest item, or None when the archive is empty."""
        return self._read("count", select(func.max(items.c.id)))[0][0]

    def size(self, filters: Filters = EVERYTHING, *, with_original: bool = False) -> tuple[int, int]:
        """How many items match and how many bytes their images take (originals when asked for)."""
        length = func.length(items.c.input_png) + func.length(items.c.recon_png)
        if with_original:
            length = length + func.coalesce(func.length(items.c.original_png), 0)
        query = filters.apply(select(func.count(), func.coalesce(func.sum(length), 0)).select_from(items))
        count, total = self._read("count", query)[0]
        return int(count), int(total)

    def models(self) -> list[str]:
        """The model names that occur in the archive, sorted."""
        return [row[0] for row in self._read("list models", select(items.c.model).distinct().order_by(items.c.model))]

    def integrity(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: "ok" when the file is sound (other databases: not checked)."""
        if self.engine.dialect.name != "sqlite":
            return f"not checked ({self.engine.dialect.name})"
        with self._guard("check"), self._connect(write=False) as conn:
            return "\n".join(str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check"))

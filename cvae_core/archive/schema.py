"""The archive's SQL side: the table, the engine, SQLite's locking recipe, schema upgrades, errors.

The table is built from the fields of ``records.Entry`` (each carries its column type), so adding a
field adds a column. An archive written by an earlier version gains the columns it lacks with
``ALTER TABLE ... ADD COLUMN`` (all added columns are nullable: no row is rewritten or lost); if it
cannot be upgraded (a read-only file) it can still be read, with the missing fields as None.

Engines are made with ``pool_pre_ping``: a pooled connection that died with its server (e.g. a
PostgreSQL restart) is replaced at checkout instead of failing the next save.

On SQLite (the documented pysqlite recipe, see SQLAlchemy's "Transactions with SQLite and the
sqlite3 driver"): WAL journal with ``synchronous=FULL``, a busy timeout, and writes that take the
write lock up front with ``BEGIN IMMEDIATE`` in one short transaction per save.

On PostgreSQL (psycopg) nothing waits for the server for long: a connect timeout, a server-side
``statement_timeout``, and a deadline on every wait for the server's answer, which also covers a
server that is frozen or a network that is cut (there the server can enforce nothing). The
connection that missed its deadline is closed, and the call fails with ``ArchiveError``.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, Table, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from cvae_core.archive.records import ArchiveError, stored_fields

log = logging.getLogger(__name__)

ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True}  # also passed by the app to st.connection
WRITE_OPTION = "cvae_archive_write"  # execution option: this transaction writes (BEGIN IMMEDIATE)
FILE_ID = "cvae_archive_file_id"  # connection-record key: (st_dev, st_ino) of the file it opened

metadata = MetaData()
items = Table(
    "archive_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    *(Column(f.name, f.metadata["sql"], nullable=f.metadata["nullable"]) for f in stored_fields()),
    Index("archive_items_model", "model"),
    Index("archive_items_save_token", "save_token", unique=True),
)


def make_engine(url: str) -> Engine:
    """An engine for the archive at ``url`` (scripts and tests; the app's comes from ``st.connection``)."""
    try:
        return create_engine(url, **ENGINE_OPTIONS)
    except (ArgumentError, ImportError) as e:
        raise ArchiveError(f"The archive database URL cannot be used: {e}") from None


# -- SQLite ----------------------------------------------------------------------------------------


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


def file_id(path: Path) -> tuple[int, int] | None:
    """The identity (device, inode) of the file at ``path``, or None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def install_sqlite_hooks(engine: Engine, path: Path | None, busy_timeout_ms: int) -> None:
    """The pysqlite recipe: we emit BEGIN ourselves (IMMEDIATE for writes) and set pragmas."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None  # stop pysqlite from issuing its own BEGIN
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as e:  # a read-only file in another journal mode: read it as it is
                log.info("archive journal mode left unchanged: %s", e)
            cursor.execute("PRAGMA synchronous = FULL")  # a reported commit survives power loss too
        finally:
            cursor.close()
        if path is not None:
            connection_record.info[FILE_ID] = file_id(path)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")


# -- PostgreSQL ------------------------------------------------------------------------------------

ANSWER_MARGIN_S = 2.0  # the client's deadline is the server's statement timeout plus this


def install_postgres_hooks(engine: Engine, timeout_s: float) -> None:
    """Bound every wait on a psycopg engine: connecting, each statement on the server, and each wait
    for an answer in the client (frozen server, cut network), all within a few seconds."""
    if engine.dialect.driver != "psycopg":
        return
    import psycopg  # the archive's PostgreSQL driver (requirements.txt); SQLite users never load it

    deadline = timeout_s + ANSWER_MARGIN_S
    waited_too_long = psycopg.errors._WaitTimeout  # what psycopg's wait raises when its timeout expires

    class DeadlineConnection(psycopg.Connection):
        """A psycopg connection whose every wait for the server ends after ``deadline`` seconds."""

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            try:
                return super().wait(gen, interval=interval, timeout=deadline if timeout is None else timeout)
            except waited_too_long:
                self.pgconn.finish()  # the answer may still come: never reuse this connection
                raise psycopg.OperationalError(f"the database did not answer within {deadline:g} s") from None

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        cparams.setdefault("connect_timeout", max(2, math.ceil(timeout_s)))  # libpq: whole seconds, at least 2
        statement = f"-c statement_timeout={round(timeout_s * 1000)} -c lock_timeout={round(timeout_s * 1000)}"
        cparams["options"] = f"{cparams.get('options', '')} {statement}".strip()  # keeps the URL's own options
        return DeadlineConnection.connect(*cargs, **cparams)


# -- schema ----------------------------------------------------------------------------------------


def present_columns(conn: Connection) -> set[str] | None:
    """The columns the archive table has, or None when there is no table yet."""
    inspector = inspect(conn)
    if not inspector.has_table(items.name):
        return None
    return {c["name"] for c in inspector.get_columns(items.name)}


def _upgrade(conn: Connection) -> None:
    """Create the table, or add the columns and indexes it lacks (inside a write transaction)."""
    present = present_columns(conn)
    if present is None:
        metadata.create_all(conn, checkfirst=True)
        return
    quote = conn.dialect.identifier_preparer.quote
    exists = " IF NOT EXISTS" if conn.dialect.name == "postgresql" else ""  # replicas may race here
    for column in items.c:
        if column.name not in present:
            if not column.nullable:
                raise ArchiveError(f"The archive ({items.name}) lacks the column {column.name}, which cannot be "
                                   "added to existing rows; it was left untouched.")
            log.warning("upgrading the archive: adding column %s", column.name)
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {quote(items.name)} ADD COLUMN{exists} {quote(column.name)} {kind}"))
    for index in items.indexes:
        index.create(conn, checkfirst=True)


def ensure_schema(conn: Connection) -> tuple[set[str], Exception | None]:
    """Make the table current; the columns it has, and the error if an existing table could not be
    upgraded (then it can still be read with the columns it has). A missing table that cannot be
    created raises."""
    with conn.begin():  # a plain read first, so a read-only archive can still be read
        present = present_columns(conn)
    if present is not None and present >= set(items.c.keys()):
        return present, None
    try:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            _upgrade(conn)
    except SQLAlchemyError as e:
        conn.execution_options(**{WRITE_OPTION: False})
        with conn.begin():  # another process (a replica) may have done it meanwhile
            now = present_columns(conn)
        if now is not None and now >= set(items.c.keys()):
            return now, None
        if present is None:
            raise
        log.warning("the archive could not be upgraded (%s); reading it as it is", e)
        return present, e
    finally:
        conn.execution_options(**{WRITE_OPTION: False})
    return set(items.c.keys()), None


# -- errors ----------------------------------------------------------------------------------------

_PG_STATES = {  # SQLSTATE classes and codes PostgreSQL reports, in words
    "53100": "The disk holding the archive ({where}) is full.",
    "25006": "The archive ({where}) is read-only.",
    "42501": "The archive ({where}) may not be written by this database user.",
    "57P01": "The archive database ({where}) was shut down; try again in a moment.",
    "57P03": "The archive database ({where}) is starting up or shutting down; try again in a moment.",
    "57014": "The archive database ({where}) took too long to answer (more than {timeout:g} s); try again in a moment.",
    "55P03": "The archive is busy: another save held it for more than {timeout:g} s.",
}


def describe(error: Exception, where: str, busy_timeout: float) -> str:
    """A human message for a database failure."""
    orig = error if isinstance(error, sqlite3.Error) else getattr(error, "orig", None)
    if isinstance(orig, sqlite3.Error):
        code = (getattr(orig, "sqlite_errorcode", 0) or 0) & 0xFF
        busy = f"The archive is busy: another save held it for more than {busy_timeout:g} s."
        messages = {
            sqlite3.SQLITE_BUSY: busy,
            sqlite3.SQLITE_LOCKED: busy,
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
    state = getattr(orig, "sqlstate", None)  # psycopg
    if state in _PG_STATES:
        return _PG_STATES[state].format(where=where, timeout=busy_timeout)
    detail = str(orig if orig is not None else error).strip().splitlines()
    first = detail[0] if detail else type(error).__name__
    remote = not isinstance(orig, sqlite3.Error) and (state is None or state.startswith("08"))
    if isinstance(error, OperationalError) and remote:
        return f"The archive database ({where}) cannot be reached: {first}."
    return f"The archive database ({where}) failed: {first}."

"""The archive under faults, load and crashes: clear errors, no corruption, nothing reported lost.

Each SQLite fault test checks the same three things: the failing call raises ``ArchiveError`` with a
human message, ``PRAGMA integrity_check`` is ``ok`` with every earlier row intact, and the archive
works again once the fault is gone. The file faults (deleted, replaced, full, read-only, garbage, a
lock held past the timeout) are about SQLite's file and locking and run on SQLite only; concurrent
sessions, commits in doubt and ``kill -9`` run on SQLite and on the real PostgreSQL of
``tests/postgres.py``, which is also restarted under a running archive. Figures (sessions, saves,
rows lost) are recorded as test properties (``--junitxml`` shows them).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from postgres import free_port, postgres, postgres_url  # noqa: F401 -- fixtures
from records import make_record
from sqlalchemy import create_engine, event

from cvae_core.archive import ENGINE_OPTIONS, Archive, ArchiveError, fingerprint, png_to_array, prepare

WRITER = Path(__file__).resolve().parent / "archive_writer.py"
SESSIONS = 50
PER_WRITER = 25  # saves each killed writer must have reported before it is killed


def stored_correctly(archive: Archive, item_id: int, key: str) -> bool:
    """The row exists and its input PNG still decodes to the pixels it was saved with."""
    item = archive.get(item_id)
    if item is None or item.fingerprint != key:
        return False
    pixels = png_to_array(item.input_png)
    return fingerprint({"model": item.model, "sigma": item.sigma, "input_image": pixels}) == key


def sound(path: Path) -> str:
    """``PRAGMA integrity_check`` through a fresh, plain connection."""
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "archive" / "archive.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, db) -> str:
    """An empty archive's URL: a SQLite file, or a fresh schema on the test PostgreSQL server."""
    if request.param == "sqlite":
        db.parent.mkdir(parents=True)
        return f"sqlite:///{db}"
    return request.getfixturevalue("postgres_url")


def healthy(archive: Archive) -> bool:
    """SQLite's integrity check passes (PostgreSQL checks its own pages)."""
    return archive.integrity() in ("ok", "not checked (postgresql)")


def test_locked_past_the_timeout(db):
    archive = Archive.from_url(f"sqlite:///{db}", busy_timeout=0.2)
    first = archive.save(make_record(0))
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer keeps the write lock
    try:
        started = time.monotonic()
        with pytest.raises(ArchiveError, match=r"busy: another save held it for more than 0.2 s"):
            archive.save(make_record(1))
        assert time.monotonic() - started >= 0.2
        assert archive.count() == 1  # reads still work while it is locked (WAL)
    finally:
        holder.rollback()
        holder.close()
    second = archive.save(make_record(1))
    assert sound(db) == "ok" and [i.id for i in archive.list()] == [second, first]


def test_database_file_deleted_while_running(db):
    archive = Archive.from_url(f"sqlite:///{db}")
    archive.save(make_record(0))
    archive.save(make_record(1))
    witness = sqlite3.connect(db)  # another reader of the old file, which it keeps open once unlinked
    assert witness.execute("SELECT count(*) FROM archive_items").fetchone()[0] == 2
    os.unlink(db)  # the -wal and -shm files stay behind, as with a careless `rm archive.db`
    with pytest.raises(ArchiveError, match=r"deleted or replaced while the app was running.*new, empty archive"):
        archive.save(make_record(2))
    assert witness.execute("SELECT count(*) FROM archive_items").fetchone()[0] == 2  # nothing written there
    witness.close()
    assert archive.count() == 0  # reads show the new file, never the deleted one
    item_id = archive.save(make_record(2))  # the retry lands in the new archive
    assert stored_correctly(archive, item_id, fingerprint(make_record(2)))
    assert archive.count() == 1 and sound(db) == "ok"


def test_archive_folder_deleted_while_running(db):
    archive = Archive.from_url(f"sqlite:///{db}")
    archive.save(make_record(0))
    shutil.rmtree(db.parent)
    with pytest.raises(ArchiveError, match="deleted or replaced"):
        archive.save(make_record(1))
    archive.save(make_record(1))
    assert archive.count() == 1 and sound(db) == "ok"


def test_database_file_replaced_while_running(db, tmp_path):
    archive = Archive.from_url(f"sqlite:///{db}")
    archive.save(make_record(0))
    other = Archive.from_url(f"sqlite:///{tmp_path / 'other.db'}")  # e.g. a backup restored over it
    for seed in (5, 6, 7):
        other.save(make_record(seed))
    other.engine.dispose()
    os.replace(tmp_path / "other.db", db)
    with pytest.raises(ArchiveError, match=r"deleted or replaced.*now uses the file found there"):
        archive.save(make_record(1))
    assert archive.count() == 3 and sound(db) == "ok"  # the old file's -wal was not replayed into it


def test_disk_full(db):
    archive = Archive.from_url(f"sqlite:///{db}")
    first = archive.save(make_record(0))
    archive.engine.dispose()

    @event.listens_for(archive.engine, "connect")
    def _no_room(dbapi_connection, _record):  # the file may not grow: a full disk
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)  # PNG cannot shrink it
    with pytest.raises(ArchiveError, match="is full"):
        archive.save(make_record(1, original=Image.fromarray(noise)))
    assert [i.id for i in archive.list()] == [first] and sound(db) == "ok"
    event.remove(archive.engine, "connect", _no_room)
    archive.engine.dispose()
    archive.save(make_record(1, original=Image.fromarray(noise)))
    assert archive.count() == 2 and sound(db) == "ok"


def test_read_only_file(db):
    writable = Archive.from_url(f"sqlite:///{db}")
    first = writable.save(make_record(0))
    writable.engine.dispose()
    db.chmod(0o444)
    try:
        # root ignores permission bits, so open it the way SQLite opens a file it may not write
        url = f"sqlite:///file:{db}?mode=ro&uri=true" if os.geteuid() == 0 else f"sqlite:///{db}"
        archive = Archive.from_url(url)
        assert [i.id for i in archive.list()] == [first]  # still readable
        with pytest.raises(ArchiveError, match="read-only"):
            archive.save(make_record(1))
        with pytest.raises(ArchiveError, match="read-only"):
            archive.delete(first)
        archive.engine.dispose()
    finally:
        db.chmod(0o644)
    assert sound(db) == "ok" and writable.count() == 1


@pytest.mark.parametrize("garbage", [b"not a database\n" * 300, bytes(range(256)) * 40], ids=["text", "binary"])
def test_garbage_where_the_database_should_be(db, garbage):
    db.parent.mkdir(parents=True)
    db.write_bytes(garbage)
    archive = Archive.from_url(f"sqlite:///{db}")
    for call in (lambda: archive.save(make_record(0)), archive.list, archive.count):
        with pytest.raises(ArchiveError, match=r"is not an archive database .* left untouched"):
            call()
    assert db.read_bytes() == garbage  # never overwritten
    assert sorted(p.name for p in db.parent.iterdir()) == ["archive.db"]


def test_bad_urls_and_drivers():
    with pytest.raises(ArchiveError, match="cannot be used"):
        Archive.from_url("nosuchdialect://x")
    with pytest.raises(ArchiveError, match="cannot be opened"):
        Archive.from_url("sqlite:///file:/nonexistent/dir/archive.db?mode=ro&uri=true").count()


# -- load ------------------------------------------------------------------------------------


def run_sessions(engine, count: int, *, busy_timeout: float) -> list[tuple[str, object]]:
    """``count`` sessions saving at once over one engine, as Streamlit sessions share one connection."""
    Archive(engine, busy_timeout=busy_timeout).count()  # the table exists before the rush
    start = threading.Barrier(count)
    outcomes: list[tuple[str, object]] = []

    def session(i: int) -> None:
        archive = Archive(engine, busy_timeout=busy_timeout)
        record = make_record(i)
        start.wait()
        try:
            outcomes.append((fingerprint(record), archive.save(record)))
        except ArchiveError as e:
            outcomes.append(("failed", str(e)))

    threads = [threading.Thread(target=session, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def check_sessions(archive: Archive, outcomes, record_property) -> list[str]:
    landed = [(key, item_id) for key, item_id in outcomes if key != "failed"]
    failed = [message for key, message in outcomes if key == "failed"]
    record_property("sessions", SESSIONS)
    record_property("saved", len(landed))
    record_property("reported_failed", len(failed))
    assert len(outcomes) == SESSIONS  # every save either landed or was reported
    assert archive.count() == len(landed) and len({i for _, i in landed}) == len(landed)
    assert all(stored_correctly(archive, item_id, key) for key, item_id in landed)
    assert all("busy" in message for message in failed)
    assert healthy(archive)
    return failed


def test_fifty_concurrent_sessions(url, record_property):
    engine = create_engine(url, **ENGINE_OPTIONS)
    outcomes = run_sessions(engine, SESSIONS, busy_timeout=5.0)
    assert not check_sessions(Archive(engine), outcomes, record_property)  # all land
    engine.dispose()


def test_fifty_sessions_without_waiting_for_the_sqlite_lock(db, record_property):
    """SQLite's single writer with no busy timeout: saves that find it locked say so, none is lost."""
    db.parent.mkdir(parents=True)
    engine = create_engine(f"sqlite:///{db}")
    check_sessions(Archive(engine), run_sessions(engine, SESSIONS, busy_timeout=0.0), record_property)
    assert sound(db) == "ok"


def read_lines(process: subprocess.Popen, into: list[str]) -> None:
    for line in process.stdout:
        into.append(line.strip())


def test_kill_9_while_saving(url, record_property):
    """Two processes saving at once, killed with SIGKILL mid-loop: every save they reported is intact."""
    Archive.from_url(url).count()
    children = [subprocess.Popen([sys.executable, str(WRITER), url, "--seed", str(k)], stdout=subprocess.PIPE,
                                 text=True) for k in range(2)]
    outputs: list[list[str]] = [[] for _ in children]
    readers = [threading.Thread(target=read_lines, args=(c, out)) for c, out in zip(children, outputs, strict=True)]
    for reader in readers:
        reader.start()
    try:  # until each child has reported some saves (a busy machine starts them slowly)
        deadline = time.monotonic() + 120
        while min(len(out) for out in outputs) < PER_WRITER and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        for child in children:
            os.kill(child.pid, signal.SIGKILL)
        for child, reader in zip(children, readers, strict=True):
            child.wait(timeout=10)
            reader.join(timeout=10)
    assert all(child.returncode == -signal.SIGKILL for child in children)

    reported = [line.split() for out in outputs for line in out if re.fullmatch(r"\d+ [0-9a-f]{64}", line)]
    archive = Archive.from_url(url)  # the "restart"
    assert healthy(archive)
    lost = [i for i, key in reported if not stored_correctly(archive, int(i), key)]
    record_property("killed_writers", len(children))
    record_property("reported_committed", len(reported))
    record_property("rows_lost", len(lost))
    assert len(reported) >= 2 * PER_WRITER and not lost
    assert 0 <= archive.count() - len(reported) <= len(children)  # at most the save each was killed in
    archive.save(make_record(0))  # and it keeps working
    assert healthy(archive)
    archive.engine.dispose()


def test_kill_9_before_the_commit_stores_nothing_and_reports_nothing(url):
    """Fault 9: a save killed after its row was written but before its commit leaves no row, and was
    never reported saved; the archive is sound and takes the next save."""
    Archive.from_url(url).count()
    child = subprocess.Popen([sys.executable, str(WRITER), url, "--hang-before-commit"], stdout=subprocess.PIPE,
                             text=True)
    try:
        line = child.stdout.readline().strip()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        rest = child.communicate(timeout=10)[0]
    assert line.startswith("committing ") and not rest  # it got as far as the commit, and said nothing more
    archive = Archive.from_url(url)
    assert archive.count() == 0 and healthy(archive)
    assert archive.save(make_record(0)) > 0 and archive.count() == 1
    archive.engine.dispose()


def test_a_commit_in_doubt_is_not_reported_and_its_retry_is_stored_once(url):
    """Fault 9: the row commits but the client hears an error (the connection dropped as it answered):
    the save is not reported, the entry is kept, and retrying it finds the row instead of a copy."""
    archive = Archive.from_url(url)
    archive.count()
    entry = prepare(make_record(0))

    def commit_then_fail(conn) -> None:
        conn.connection.dbapi_connection.commit()
        raise sqlite3.OperationalError("disk I/O error") if conn.dialect.name == "sqlite" else ConnectionError

    event.listen(archive.engine, "commit", commit_then_fail)
    with pytest.raises((ArchiveError, ConnectionError)):
        archive.save(entry)
    event.remove(archive.engine, "commit", commit_then_fail)
    assert archive.count() == 1  # it did land
    item_id = archive.save(entry)  # the retry the app offers
    assert archive.count() == 1 and stored_correctly(archive, item_id, entry.fingerprint)
    archive.engine.dispose()


def test_first_save_after_a_postgresql_restart(request):
    """The pooled connections die with the server; the next save checks them out, pings, reconnects."""
    server, url = request.getfixturevalue("postgres"), request.getfixturevalue("postgres_url")
    archive = Archive.from_url(url)
    archive.save(make_record(0))
    server.restart()
    item_id = archive.save(make_record(1))
    assert archive.count() == 2 and stored_correctly(archive, item_id, fingerprint(make_record(1)))
    archive.engine.dispose()


def test_postgresql_down_is_a_clear_message(request):
    server, url = request.getfixturevalue("postgres"), request.getfixturevalue("postgres_url")
    archive = Archive.from_url(url.replace(f":{server.port}/", f":{free_port()}/"))  # nothing listens there
    with pytest.raises(ArchiveError, match="cannot be reached"):
        archive.save(make_record(0))
    with pytest.raises(ArchiveError, match="cannot be reached"):
        archive.count()
    archive.engine.dispose()


FROZEN_TIMEOUT_S = 1.0  # the archive's timeout in the frozen-server tests
FROZEN_BOUND_S = 10.0  # a save against a frozen server must have failed by then (the old code: forever)


def timed_failure(call) -> tuple[float, str]:
    """Seconds until ``call`` raised ``ArchiveError``, and its message."""
    started = time.monotonic()
    with pytest.raises(ArchiveError) as caught:
        call()
    return time.monotonic() - started, str(caught.value)


@contextlib.contextmanager
def hang_guard(seconds: float) -> Iterator[None]:
    """Fail the test if the block takes longer than ``seconds`` (SIGALRM in the test's thread
    interrupts a blocked wait for the server), instead of hanging the run."""

    def give_up(signum, frame) -> None:
        pytest.fail(f"still waiting after {seconds:g} s: no timeout on a frozen PostgreSQL")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("pooled", [True, False], ids=["pooled-connection", "new-connection"])
def test_a_frozen_postgresql_fails_a_save_within_seconds(request, pooled):
    """SIGSTOP on the whole server: TCP still connects but nothing answers. A save over a pooled
    connection (its pre-ping waits for an answer) and one that must connect anew both fail with a
    clear message within seconds; once the server resumes, saving works again and nothing that was
    reported lost was stored."""
    server, url = request.getfixturevalue("postgres"), request.getfixturevalue("postgres_url")
    archive = Archive.from_url(url, busy_timeout=FROZEN_TIMEOUT_S)
    first = archive.save(make_record(0))
    if not pooled:
        archive.engine.dispose()
    with server.frozen(), hang_guard(FROZEN_BOUND_S * 3):
        took, message = timed_failure(lambda: archive.save(make_record(1)))
    assert took < FROZEN_BOUND_S, f"the save failed only after {took:.1f} s"
    assert re.search(r"cannot be reached: .*(did not answer within|timeout expired)", message), message
    with hang_guard(FROZEN_BOUND_S * 3):
        second = archive.save(make_record(2))
    assert [item.id for item in archive.list()] == [second, first]
    archive.engine.dispose()

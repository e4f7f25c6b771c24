"""A throwaway PostgreSQL server for the tests, started from Debian's binaries (package ``postgresql``).

    from postgres import postgres, postgres_url   # in a test module: two pytest fixtures

``postgres`` (session scope) runs ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` in a
fresh temporary folder, listening only on 127.0.0.1 at a free port and on a unix socket inside that
folder, with a random password (SCRAM) for the ``postgres`` role. PostgreSQL refuses to run as root,
so when the tests run as root the server runs as the ``postgres`` system user that the Debian package
creates (``runuser -u postgres``). It is stopped, and its folder removed, when the session ends.
``postgres_url`` (function scope) gives one test an empty schema of its own and drops it afterwards.
``PostgresServer.frozen()`` stops the whole server with SIGSTOP for a while (a hung database).

When PostgreSQL is not installed the tests that need it are skipped, except under ``CI=true``, where
they fail: CI must run them (``apt-get install postgresql``). ``running_postgres()`` is the same
server as a context manager, for scripts and other fixtures (e.g. the replica tests).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT_S = 120  # initdb takes ~1 s on a quiet machine; far longer beside a training run
_SETTINGS = {  # a throwaway cluster: durability is the client's concern in these tests, speed is ours
    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "120",
    "shared_buffers": "32MB",
}


class PostgresMissing(RuntimeError):
    """PostgreSQL's server binaries are not installed."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_ctl`` (else $PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    raise PostgresMissing("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); "
                          "install it with `apt-get install postgresql`")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """One running cluster: where it lives, how to reach it, and how to restart or stop it."""

    bin_dir: Path
    folder: Path
    port: int
    password: str
    run_as: str | None  # the system user the server runs as, when we are root

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3 driver) over TCP on 127.0.0.1."""
        return f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")

    def init(self) -> None:
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._chown(pwfile)
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--pwfile", str(pwfile),
                  "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                  "--no-sync")
        pwfile.unlink()

    def start(self) -> None:
        options = " ".join([f"-p {self.port}", "-c listen_addresses=127.0.0.1",
                            f"-c unix_socket_directories={self.socket_dir}",
                            *(f"-c {key}={value}" for key, value in _SETTINGS.items())])
        self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.folder / "server.log"), "-w",
                  "-t", str(START_TIMEOUT_S), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(START_TIMEOUT_S))

    def restart(self) -> None:
        """Stop (closing every client connection) and start again on the same port."""
        self.stop()
        self.start()

    def processes(self) -> list[int]:
        """The server's process ids: the postmaster (from its pid file) and every process it started."""
        postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        children = [int(stat.split(b" ", 1)[0]) for stat in _stats()  # "pid (name) state ppid ..."
                    if int(stat.rsplit(b") ", 1)[1].split()[1]) == postmaster]
        return [postmaster, *children]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The whole server stopped with SIGSTOP (it accepts TCP connections but never answers),
        resumed with SIGCONT on the way out, whatever happened inside."""
        stopped = self.processes()
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def _chown(self, path: Path) -> None:
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)


def _stats() -> Iterator[bytes]:
    """``/proc/<pid>/stat`` of every process still there."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            yield stat.read_bytes()


def _server_user() -> str | None:
    """None when we may run the server ourselves; else the system user to run it as."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresMissing("running as root and there is no `postgres` user to run PostgreSQL as "
                              "(the Debian package `postgresql` creates it)") from None
    if shutil.which("runuser") is None:
        raise PostgresMissing("running as root and `runuser` is missing, so PostgreSQL cannot be started")
    return "postgres"


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh cluster on 127.0.0.1 (free port) and a unix socket in its temporary folder."""
    bin_dir, run_as = find_bin_dir(), _server_user()
    folder = Path(tempfile.mkdtemp(prefix="cvae-postgres-"))  # not pytest's tmp: that is 0700 for root
    server = PostgresServer(bin_dir, folder, free_port(), secrets.token_hex(16), run_as)
    try:
        server.socket_dir.mkdir()
        for path in (folder, server.socket_dir):
            server._chown(path)
        server.init()
        server.start()
        try:
            yield server
        finally:
            server.stop("immediate")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- pytest fixtures -------------------------------------------------------------------------------

_shared: dict[str, object] = {}  # one server per session, however many modules import the fixture
_shared_lock = threading.Lock()


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (skipped locally when PostgreSQL is missing, failing under CI)."""
    with _shared_lock:
        if "failed" in _shared:  # tried once this session: do not pay for a failing start per test
            raise RuntimeError(f"the test PostgreSQL server did not start: {_shared['failed']}")
        if "server" not in _shared:
            stack = contextlib.ExitStack()
            try:
                _shared["server"] = stack.enter_context(running_postgres())
            except PostgresMissing as e:
                stack.close()
                _missing(str(e))
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                stack.close()
                _shared["failed"] = e
                raise
            _shared["stack"], _shared["users"] = stack, 0
        _shared["users"] = int(_shared["users"]) + 1
    try:
        yield _shared["server"]  # type: ignore[misc]
    finally:
        with _shared_lock:
            _shared["users"] = int(_shared["users"]) - 1
            if not _shared["users"]:
                _shared.pop("stack").close()  # type: ignore[union-attr]
                _shared.clear()


_names = itertools.count()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A SQLAlchemy URL whose tables live in a new, empty schema of the server's ``postgres`` database
    (first on the connection's search path), dropped after the test: one test's tables never meet
    another's, at a fraction of the cost of a database per test."""
    import psycopg

    name = f"test_{os.getpid()}_{next(_names)}"
    admin = dict(host="127.0.0.1", port=postgres.port, user="postgres", password=postgres.password,
                 dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    yield postgres.url() + f"?options=-csearch_path%3D{name}"
    with psycopg.connect(**admin) as conn:
        conn.execute("SET lock_timeout = '10s'")  # a test that left a transaction open must not hang the run
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

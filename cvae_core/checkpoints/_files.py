"""File plumbing for checkpoints: bounded reads of regular files only, and writes that leave the
previous files whole when interrupted (temporary names, fsync, rename, a folder lock; the renames
run inside the guard a command chose, ``guarding_writes``).

Private to ``cvae_core.checkpoints``: the format and the manifest call these, nothing else should.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import BinaryIO


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------- reading


class NotRegularFile(OSError):
    """The path is a named pipe, a device or a socket: opening or reading it could block forever
    or never end, so it is never read."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(errno.EINVAL, f"is {kind}, not a regular file", str(path))
        self.kind = kind


class FileTooLarge(OSError):
    def __init__(self, path: Path, size: int, limit: int) -> None:
        super().__init__(errno.EFBIG, f"is {size:,} bytes, over the {limit:,} byte limit", str(path))
        self.size, self.limit = size, limit


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_regular(path: Path, *, limit: int, wanted: Callable[[BinaryIO, int], int] | None = None) -> bytes:
    """The bytes of the regular file ``path``: its size is checked against ``limit`` before
    anything is read, and at most ``wanted(file, size)`` bytes are read when given (e.g. the size
    a header declares). A folder raises ``IsADirectoryError``; a named pipe, device or socket
    ``NotRegularFile``, without waiting for a writer (the file is opened non-blocking and
    checked on its descriptor, so swapping it between a check and the open changes nothing).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(path, _kind(info.st_mode))
        if info.st_size > limit:
            raise FileTooLarge(path, info.st_size, limit)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        size = info.st_size
        if wanted is not None:
            size = max(0, min(size, wanted(f, size)))
            f.seek(0)
        return f.read(size)  # at most the size seen: a file growing meanwhile is not followed


# ------------------------------------------------------------------------------------- writing


_write_guard: Callable[[], AbstractContextManager[None]] = nullcontext


@contextmanager
def guarding_writes(guard: Callable[[], AbstractContextManager[None]]) -> Iterator[None]:
    """Run every checkpoint write (the renames that put new files in place) inside ``guard()``
    while this block runs. Library code writes unguarded; a command chooses its process's policy,
    e.g. ``cvae_core.interrupts.interrupts_deferred`` so that Ctrl-C waits until the files are whole."""
    global _write_guard
    previous, _write_guard = _write_guard, guard
    try:
        yield
    finally:
        _write_guard = previous


def guarded() -> AbstractContextManager[None]:
    """The guard the running command chose for a write (``guarding_writes``), else nothing."""
    return _write_guard()


def write_tmp(path: Path, data: bytes) -> Path:
    """Write ``data`` durably to a hidden temporary file beside ``path``; return its name."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")  # unique per writer
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit(pairs: list[tuple[Path, bytes]]) -> None:
    """Write every file to a temporary name first, then rename them all into place."""
    tmps: list[tuple[Path, Path]] = []
    try:
        for path, data in pairs:
            tmps.append((write_tmp(path, data), path))
        for tmp, path in tmps:
            os.replace(tmp, path)
        fsync_dir(pairs[0][0].parent)
    finally:
        for tmp, _ in tmps:
            tmp.unlink(missing_ok=True)


@contextmanager
def folder_locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder (POSIX ``flock``) around a manifest read-modify-write, so
    that two trainings saving into one folder do not lose each other's manifest entries."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):  # no flock here: proceed unlocked
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

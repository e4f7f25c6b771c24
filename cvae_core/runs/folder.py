"""A training run's folder: what the worker writes and the Train page reads, and nothing else.

    RUNS/<run id>/
      request.json     the settings asked for (``RunRequest``), the model's name and its train command
      status.json      queued | starting | running | evaluating | done | failed | cancelled, with a message
      metrics.jsonl    one JSON object a line: "start", a "batch" point every few dozen optimiser
                       steps (mean training loss since the last point), an "epoch" row (train, validation
                       and test loss, as the checkpoint's history has it)
      snapshots/       epoch-NNNN.npz: latent means of 2,000 fixed validation digits (and their labels),
                       reconstructions of 10 fixed digits (one per label), one sample per label;
                       fixed.npz: those 10 digits
      log.txt          the worker's output
      model/           the checkpoint while it trains; moved to the trained models when it is done
      worker.lock      held (flock) by the live worker: free while the status says it runs = it died
      cancel           present once Cancel was asked for

Everything a reader sees is whole: status and snapshots are written under a temporary name and
renamed; a metrics line is appended in one write, and a reader skips a last line without its
newline. The folder appears under its id only once ``request.json`` and ``status.json`` are in it.
Runs live in ``$CVAE_RUNS_DIR`` (default ``~/.local/share/cvae_digit_explorer/runs``).
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cvae_core.checkpoints import now_iso
from cvae_core.runs.request import RunRefused, RunRequest

RUNS_ENV = "CVAE_RUNS_DIR"
STATES = ("queued", "starting", "running", "evaluating", "done", "failed", "cancelled")
ACTIVE = ("starting", "running", "evaluating")  # a worker process is (or should be) on it
FINISHED = ("done", "failed", "cancelled")
RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
MAX_METRICS_BYTES = 4 * 1024 * 1024  # a 200-epoch run writes about 1 MB
MAX_JSON_BYTES = 64 * 1024  # request.json and status.json are a few hundred bytes
MAX_SNAPSHOT_BYTES = 8 * 1024 * 1024  # 2,000 latent means of 64 dimensions in float16 are 256 kB


def data_home() -> Path:
    """Where the app keeps what it makes at run time (``$XDG_DATA_HOME``, else ~/.local/share)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "cvae_digit_explorer"


def runs_dir() -> Path:
    """The folder of training runs: ``$CVAE_RUNS_DIR``, else ``data_home()/runs``."""
    return Path(os.environ.get(RUNS_ENV) or data_home() / "runs")


def new_run_id() -> str:
    """Sortable by creation time, unguessable enough that one visitor does not stumble on another's run."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Status:
    state: str
    created: str
    message: str = ""  # what went wrong, or what happened, in a sentence
    started: str | None = None
    ended: str | None = None
    pid: int | None = None  # the worker's process id
    model: str | None = None  # the trained model's name, once it is in the picker

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def write_atomic(path: Path, data: bytes) -> None:
    """Write under a hidden temporary name beside ``path``, then rename: readers see the old file or
    the new one, never a part. An interruption leaves no temporary file behind."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        blob = f.read(MAX_JSON_BYTES + 1)
    if len(blob) > MAX_JSON_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_JSON_BYTES} bytes")
    return json.loads(blob)


class RunFolder:
    """One run's folder (``root``); every read is bounded and every write whole."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.request_path = self.root / "request.json"
        self.status_path = self.root / "status.json"
        self.metrics_path = self.root / "metrics.jsonl"
        self.log_path = self.root / "log.txt"
        self.snapshot_dir = self.root / "snapshots"
        self.model_dir = self.root / "model"
        self.lock_path = self.root / "worker.lock"
        self.cancel_path = self.root / "cancel"

    @property
    def id(self) -> str:
        return self.root.name

    # ------------------------------------------------------------------ request and status

    @classmethod
    def create(cls, parent: Path, request: RunRequest) -> RunFolder:
        """A new run folder for ``request`` (queued), made whole under a hidden name and then renamed."""
        parent.mkdir(parents=True, exist_ok=True)
        run_id = new_run_id()
        name = f"{request.arch}-{request.latent_dim}-{run_id[-6:]}"
        staging = cls(parent / f".{run_id}.new")
        staging.root.mkdir()
        try:
            document = {"request": request.to_dict(), "name": name, "command": request.command(name)}
            staging.request_path.write_text(json.dumps(document, indent=1) + "\n")
            staging.status_path.write_text(json.dumps(asdict(Status("queued", created=now_iso()))) + "\n")
            os.rename(staging.root, parent / run_id)
        except BaseException:
            shutil.rmtree(staging.root, ignore_errors=True)
            raise
        return cls(parent / run_id)

    def _request_document(self) -> dict[str, Any]:
        try:
            document = _read_json(self.request_path)
        except (OSError, ValueError) as e:
            raise RunRefused(f"run {self.id}: its request file cannot be read ({e})") from None
        if not isinstance(document, dict) or not isinstance(document.get("name"), str):
            raise RunRefused(f"run {self.id}: its request file is damaged")
        return document

    def request(self) -> RunRequest:
        """The settings asked for (``RunRefused`` when the file is damaged; not checked against the budget)."""
        return RunRequest.from_dict(self._request_document().get("request"))

    @property
    def model_name(self) -> str:
        name = self._request_document()["name"]
        if not re.fullmatch(r"[a-z]+-\d+-[0-9a-f]{6}", name):
            raise RunRefused(f"run {self.id}: its model name {name[:40]!r} is not one the app gives")
        return name

    @property
    def command(self) -> str:
        return str(self._request_document().get("command", ""))

    def status(self) -> Status:
        """The run's status; a missing or damaged file reads as a failed run that says so."""
        try:
            data = _read_json(self.status_path)
            known = {f.name for f in fields(Status)}
            status = Status(**{k: v for k, v in data.items() if k in known})
            if status.state not in STATES:
                raise ValueError(f"unknown state {status.state!r}")
            return status
        except (OSError, ValueError, TypeError, AttributeError) as e:
            return Status("failed", created="", message=f"The run's status file cannot be read ({e}).")

    @contextmanager
    def _status_locked(self) -> Iterator[None]:
        fd = os.open(self.root / "status.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update_status(self, **changes: Any) -> Status:
        """Change fields of the status in one read-modify-write (the worker and the queue both write it)."""
        with self._status_locked():
            status = replace(self.status(), **changes)
            write_atomic(self.status_path, (json.dumps(asdict(status)) + "\n").encode())
            return status

    # ------------------------------------------------------------------ metrics

    def append_metric(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, allow_nan=True) + "\n").encode()
        with open(self.metrics_path, "ab") as f:
            f.write(line)

    def metrics(self) -> list[dict[str, Any]]:
        """Every whole metrics line (the newest ``MAX_METRICS_BYTES`` of them at most)."""
        try:
            with open(self.metrics_path, "rb") as f:
                size = f.seek(0, io.SEEK_END)
                f.seek(max(0, size - MAX_METRICS_BYTES))
                blob = f.read(MAX_METRICS_BYTES)
        except FileNotFoundError:
            return []
        lines = blob.split(b"\n")[:-1]  # the last piece has no newline yet: not whole
        if size > MAX_METRICS_BYTES:
            lines = lines[1:]  # cut in the middle
        out = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    # ------------------------------------------------------------------ snapshots

    def write_snapshot(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        self.snapshot_dir.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_atomic(self.snapshot_dir / f"{name}.npz", buffer.getvalue())

    def snapshot_epochs(self) -> list[int]:
        try:
            names = [p.name for p in self.snapshot_dir.iterdir()]
        except OSError:
            return []
        return sorted(int(m.group(1)) for n in names if (m := re.fullmatch(r"epoch-(\d{4})\.npz", n)))

    def snapshot(self, name: str) -> dict[str, np.ndarray] | None:
        """The arrays of ``snapshots/NAME.npz`` (never pickled objects), or None when absent or damaged."""
        path = self.snapshot_dir / f"{name}.npz"
        try:
            if path.stat().st_size > MAX_SNAPSHOT_BYTES:
                return None
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError):
            return None

    # ------------------------------------------------------------------ the worker

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, io.SEEK_END) - max_bytes))
                return f.read(max_bytes).decode("utf-8", "replace")
        except OSError:
            return ""

    def worker_alive(self) -> bool:
        """Does a live process hold this run's worker lock? (A killed worker's lock is released by the kernel.)"""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return True
            raise
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def take_lock(self) -> int:
        """Open and lock ``worker.lock`` for a worker; the descriptor holds the lock until it is closed
        (or the process ends). ``BlockingIOError`` when another process holds it."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def clear_model(self) -> None:
        """Remove the run's own checkpoint (and its resume state): a run that did not finish leaves none."""
        shutil.rmtree(self.model_dir, ignore_errors=True)


def run_folder(run_id: str, parent: Path | None = None) -> RunFolder | None:
    """The folder of run ``run_id`` (as given in a URL: checked, never used as a path unchecked), or None."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        return None
    folder = RunFolder((parent or runs_dir()) / run_id)
    return folder if folder.status_path.exists() else None


def all_runs(parent: Path | None = None) -> list[RunFolder]:
    """Every run in the folder, oldest first."""
    parent = parent or runs_dir()
    try:
        names = sorted(p.name for p in parent.iterdir() if RUN_ID.fullmatch(p.name))
    except OSError:
        return []
    return [RunFolder(parent / name) for name in names]

"""One server's training queue: at most ``$CVAE_TRAIN_SLOTS`` runs at a time (default 1), the others
wait in order of arrival, each with a visible position.

The queue is the runs folder itself (``cvae_core.runs.folder``): a run's status says where it is.
``advance`` is the scheduler, called when a run is submitted or cancelled, by every page that
watches a run, and by a worker as it ends: under a lock on the folder it marks runs whose worker
has died as failed, then starts the oldest queued runs while slots are free. A worker is its own
process (``python -m cvae_core.runs.worker``), in its own session, so neither a Streamlit rerun nor
a closed tab nor the server's Ctrl-C stops it; it holds its run's ``worker.lock`` for as long as it
lives, which is how a killed worker is told from a live one.

Servers with their own runs folder have their own queue (replicas each run theirs); servers that
share one folder share its queue, as they share the machine's cores.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from cvae_core.checkpoints import now_iso
from cvae_core.checkpoints.format import PACKAGE_ROOT
from cvae_core.runs.folder import RunFolder, all_runs, runs_dir
from cvae_core.runs.request import RunRefused, RunRequest
from cvae_core.runs.trained import models, trained_max

SLOTS_ENV = "CVAE_TRAIN_SLOTS"
MAX_WAITING = 20  # queued runs; more are refused
STARTING_EXIT_SECONDS = 3.0  # how long Cancel waits for a worker that had not started training
KEEP_FINISHED = 50  # finished run folders kept (their curves, snapshots and logs); older ones are removed
DIED = ("The training process stopped unexpectedly (it was killed, or the machine ran out of memory); "
        "nothing was saved. Its log is below.")

_children: list[subprocess.Popen] = []  # workers this process started: polled, so none stays a zombie


def slots() -> int:
    """Runs that may train at once on this server (``$CVAE_TRAIN_SLOTS``, default 1)."""
    raw = os.environ.get(SLOTS_ENV, "1")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


@contextmanager
def _locked(parent: Path) -> Iterator[None]:
    parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(parent / ".queue.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def submit(request: RunRequest, parent: Path | None = None) -> RunFolder:
    """Queue a checked request (``RunRefused`` says why it cannot run) and start it if a slot is free."""
    parent = parent or runs_dir()
    request.check()
    with _locked(parent):
        if len(models()) >= trained_max():
            raise RunRefused(f"this server keeps at most {trained_max()} trained models and has that many: "
                             "delete one on this page first")
        waiting = [r for r in all_runs(parent) if r.status().state == "queued"]
        if len(waiting) >= MAX_WAITING:
            raise RunRefused(f"{len(waiting)} runs are already waiting on this server; try again when the queue is shorter")
        folder = RunFolder.create(parent, request)
        _prune(parent)
    advance(parent)
    return folder


def _prune(parent: Path) -> None:
    """Remove the oldest finished runs beyond ``KEEP_FINISHED`` (bounded disk use)."""
    finished = [r for r in all_runs(parent) if r.status().finished]
    for old in finished[: max(0, len(finished) - KEEP_FINISHED)]:
        shutil.rmtree(old.root, ignore_errors=True)


def _reap() -> None:
    _children[:] = [p for p in _children if p.poll() is None]


def advance(parent: Path | None = None) -> None:
    """Mark runs whose worker died as failed (or cancelled, if Cancel was asked), then start queued
    runs, oldest first, while fewer than ``slots()`` train."""
    parent = parent or runs_dir()
    _reap()
    with _locked(parent):
        runs = all_runs(parent)
        live = 0
        for run in runs:
            status = run.status()
            if not status.active:
                continue
            if run.worker_alive():
                live += 1
                continue
            run.clear_model()
            if run.cancel_path.exists():
                run.update_status(state="cancelled", ended=now_iso(), message="Cancelled; nothing was saved.")
            else:
                run.update_status(state="failed", ended=now_iso(), message=DIED)
        for run in runs:
            if live >= slots():
                break
            if run.status().state == "queued" and _launch(run):
                live += 1


def _launch(run: RunFolder) -> bool:
    """Start the worker of a queued run; False when another process holds its lock already."""
    try:
        fd = run.take_lock()
    except BlockingIOError:
        return False
    try:
        run.update_status(state="starting", started=now_iso())
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with open(run.log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "cvae_core.runs.worker", str(run.root), "--lock-fd", str(fd)],
                cwd=PACKAGE_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(fd,), start_new_session=True,
            )
        _children.append(process)
        run.update_status(pid=process.pid)
    except OSError as e:
        run.update_status(state="failed", ended=now_iso(), message=f"The training process could not start ({e}).")
    finally:
        os.close(fd)  # the worker holds the lock from here on
    return True


def position(run: RunFolder, parent: Path | None = None) -> int | None:
    """1 for the next queued run to start, 2 for the one after, ...; None when it is not queued."""
    queued = [r.id for r in all_runs(parent or run.root.parent) if r.status().state == "queued"]
    return queued.index(run.id) + 1 if run.id in queued else None


def cancel(run: RunFolder) -> None:
    """Stop a run: a queued run never starts; a running worker gets SIGTERM and stops cleanly,
    leaving no model (its status then says cancelled)."""
    with _locked(run.root.parent):
        status = run.status()
        if status.finished:
            return
        run.cancel_path.touch()
        if status.state == "queued":
            run.update_status(state="cancelled", ended=now_iso(), message="Cancelled before it started.")
            return
        if status.pid and run.worker_alive():
            with suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(status.pid, signal.SIGTERM)
    if status.state == "starting":
        # Still importing torch, before its handler: SIGTERM ends it at once, and it cannot start the
        # next run itself as a worker that stops cleanly does. Wait for it, so this call can.
        deadline = time.monotonic() + STARTING_EXIT_SECONDS
        while run.worker_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
    advance(run.root.parent)

"""Ctrl-C and SIGTERM for the commands: process concerns, which library code never touches.

``python -m cvae_core.evaluate``, ``robustness`` and ``checkpoints`` run inside
``deferred_while_writing()``: a signal that arrives while checkpoint files are being put in place
(the renames of ``cvae_core.checkpoints``) is held back and delivered when they are whole, so the
previous checkpoint or the new one is on disk, never half of each. The library itself installs
no signal handler (``save_checkpoint`` called from a page or a thread writes unguarded; its
temporary files and renames still never leave a half-written file).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from cvae_core.checkpoints import guarding_writes

DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM inside the block; deliver them, each once and in arrival order,
    to their own handlers afterwards. Signal handlers can only be set from the main thread;
    elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in DEFERRED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


def deferred_while_writing() -> AbstractContextManager[None]:
    """For a command's ``main``: every checkpoint write inside the block runs in ``interrupts_deferred``."""
    return guarding_writes(interrupts_deferred)

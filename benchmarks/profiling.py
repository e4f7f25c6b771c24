"""Which torch operators a call spends its time in (``torch.profiler``), for calls over their target."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (torch.profiler's C++ side logs every start and stop there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def profile_top(fn: Callable[[], Any], *, calls: int = 5, top: int = 8) -> list[dict[str, Any]]:
    """The operators that take the most self CPU time over ``calls`` calls of ``fn`` (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [
        {
            "op": e.key,
            "calls_per_run": round(e.count / calls, 1),
            "self_ms_per_run": round(e.self_cpu_time_total / calls / 1e3, 3),
            "share_percent": round(100 * e.self_cpu_time_total / total, 1),
        }
        for e in events[:top]
    ]

"""Timing statistics: calls timed after a warm-up, and their p50 / p95.

Timings are wall-clock (``time.perf_counter_ns``) around complete calls, after a warm-up, with
torch on every core as in the app. p50 and p95 are the 50th and 95th percentiles of the runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def summarise(samples_s: list[float], *, scale: float = 1e3) -> dict[str, float]:
    """p50 / p95 / mean / min of samples in seconds, converted by ``scale`` (default to ms)."""
    a = np.asarray(samples_s, dtype=np.float64) * scale
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "mean": round(float(a.mean()), 3),
        "min": round(float(a.min()), 3),
        "n": len(a),
    }


def time_calls(fn: Callable[[], Any], *, warmup: int, runs: int, budget_s: float | None = None) -> list[float]:
    """Seconds per call of ``fn`` for ``runs`` calls after ``warmup`` calls; stops early (after at
    least a tenth of the runs, and 10) once ``budget_s`` seconds are spent, so slow cases stay bounded."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    for i in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1e9)
        if budget_s is not None and i + 1 >= max(10, runs // 10) and time.perf_counter() - start > budget_s:
            break
    return samples

"""What every benchmark shares: timing statistics, the machine's state, the shipped models, the
targets of issue 5, and a synthetic canvas drawing.

Timings are wall-clock (``time.perf_counter_ns``) around complete calls, after a warm-up, with
torch on every core as in the app. p50 and p95 are the 50th and 95th percentiles of the runs.
"""

from __future__ import annotations

import io
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvae_core import catalogue
from cvae_core.catalogue import ModelEntry
from cvae_core.checkpoints import checkpoint_dir

ROOT = Path(__file__).resolve().parent.parent
RESULTS_JSON = Path(__file__).resolve().parent / "results.json"
RESULTS_MD = Path(__file__).resolve().parent / "results.md"

# Issue 5's targets: name -> (comparison, bound, unit); benchmarks.tables checks the results against them.
TARGETS: dict[str, tuple[str, float, str]] = {
    "draw pipeline p95": ("<=", 20.0, "ms"),
    "decode p95": ("<=", 2.0, "ms"),
    "20x20 grid p95": ("<=", 30.0, "ms"),
    "stroke -> digit p95 over the floor": ("<=", 60.0, "ms"),
    "slider -> image p95 over the floor": ("<=", 30.0, "ms"),
    "slider -> image p95 (stretch)": ("<=", 50.0, "ms"),
    "cold start p95": ("<=", 6.0, "s"),
    "resident memory": ("<=", 700.0, "MB"),
    "training speed-up over the reference": (">=", 3.0, "x"),
    "MLP training FLOP/s / torch.mm peak": (">=", 40.0, "%"),
}


def use_all_cores(threads: int | None = None) -> int:
    """torch on every core (as the app and the training command run) or on ``threads``; returns the count."""
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (runnable processes; this machine is quiet below ~1)."""
    return [round(v, 2) for v in os.getloadavg()]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average_start": load_average(),
    }


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


Shipped = ModelEntry  # a shipped checkpoint, loaded: the app's own entry, so both pair models alike
partner = catalogue.partner  # (models, entry): the other architecture, at the same latent size if any


def shipped_models(folder: Path | None = None) -> list[Shipped]:
    """Every checkpoint in the checkpoint folder (``$CVAE_CHECKPOINT_DIR`` or ``checkpoints/``), loaded."""
    entries = catalogue.discover(folder or checkpoint_dir())
    if not entries:
        raise SystemExit(f"no checkpoints in {folder or checkpoint_dir()}; train some first (python -m cvae_core.train)")
    models = [e.load() for e in entries]
    broken = [f"{m.name}: {m.error}" for m in models if m.ckpt is None]
    if broken:
        raise SystemExit("cannot load " + "; ".join(broken))
    return models


# Single-stroke digits in canvas fractions (x, y), the shapes the browser benchmark draws too.
STROKES: dict[str, list[tuple[float, float]]] = {
    "1": [(0.52, 0.18), (0.50, 0.45), (0.48, 0.82)],
    "7": [(0.28, 0.22), (0.72, 0.22), (0.55, 0.50), (0.42, 0.82)],
    "0": [(0.5 + 0.2 * np.sin(t), 0.5 - 0.32 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 24)],
    "2": [(0.30, 0.32), (0.42, 0.20), (0.62, 0.22), (0.66, 0.38), (0.30, 0.80), (0.72, 0.80)],
}


def canvas_png(digit: str = "2", *, side: int = 280, width: int = 20) -> bytes:
    """A PNG like the one the app's canvas sends: white ink of ``width`` px on black, RGBA."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (side, side), (0, 0, 0, 255))
    points = [(x * side, y * side) for x, y in STROKES[digit]]
    ImageDraw.Draw(img).line(points, fill=(255, 255, 255, 255), width=width, joint="curve")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()

"""The speed and memory targets: name -> (comparison, bound, unit). ``benchmarks.tables`` and
``benchmarks.load`` check the measured figures against them."""

from __future__ import annotations

TARGETS: dict[str, tuple[str, float, str]] = {
    "draw pipeline p95": ("<=", 20.0, "ms"),
    "decode p95": ("<=", 2.0, "ms"),
    "20x20 grid p95": ("<=", 30.0, "ms"),
    "stroke -> digit p95 over the floor": ("<=", 60.0, "ms"),
    "slider -> image p95 over the floor": ("<=", 30.0, "ms"),
    "slider -> image p95 (stretch)": ("<=", 50.0, "ms"),
    "slider -> image p95, every shipped model": ("<=", 20.0, "ms"),
    "cold start p95": ("<=", 6.0, "s"),
    "resident memory": ("<=", 700.0, "MB"),
    "training speed-up over the reference": (">=", 3.0, "x"),
    "MLP training FLOP/s / torch.mm peak": (">=", 40.0, "%"),
    # A classroom on one server core (benchmarks.load): each session draws and saves a digit every 5 s.
    "stroke -> answer p95, 60 sessions": ("<=", 1.5, "s"),
    "the knee (largest N with p95 <= 1.5 s)": (">=", 60.0, "sessions"),
    "server CPU per digit": ("<=", 0.06, "s"),
    "server RSS, 60 sessions": ("<=", 700.0, "MB"),
}

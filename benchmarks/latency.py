"""Inference latency of every shipped model, called the way the app calls ``cvae_core``.

    python -m benchmarks --only latency [--quick]

Per model, p50 and p95 over many calls after a warm-up (ms): preprocessing one canvas PNG;
classifying one image over the 10 labels with the app's K; reconstructing it; decoding one z; a
20x20 manifold grid; and the draw page's pipeline as issue 5 defines it (preprocess + classify +
the reconstruction by this model and by its partner of the other architecture + restyle under all
10 labels). ``app_rerun`` is what the Draw page actually computes per new input: preprocess and,
for each of the two models, classify + encode + reconstruct + restyle (the partner is classified
too, for its caption). A call over its target is profiled with torch.profiler, and the model's
calls are timed again under candidate fixes (``what_if``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.common import TARGETS, Shipped, canvas_png, partner, profile_top, summarise, time_calls
from cvae_core import inference
from cvae_core.preprocess import prepare_bytes

GRID_N = 20
SEED = 0  # the app seeds every recognition the same way


def _classify(m: Shipped, x: torch.Tensor) -> int:
    probs, _ = inference.classify(m.model, x, k=m.k, generator=torch.Generator().manual_seed(SEED))
    return int(probs[0].argmax())


def _read(m: Shipped, x: torch.Tensor) -> None:
    """What app.common.read computes for one model and one input."""
    label = _classify(m, x)
    y = torch.tensor([label])
    inference.encode(m.model, x, y)
    inference.reconstruct(m.model, x, y)
    inference.restyle(m.model, x, label)


def cases(models: list[Shipped], m: Shipped, png: bytes) -> dict[str, Callable[[], Any]]:
    """The timed calls for model ``m``; each is a complete, self-contained call."""
    x = prepare_bytes(png).tensor  # (1, 1, 28, 28)
    label = _classify(m, x)
    y = torch.tensor([label])
    other = partner(models, m)
    z = torch.zeros(1, m.latent_dim)

    def draw_pipeline() -> None:
        xi = prepare_bytes(png).tensor
        lab = _classify(m, xi)
        yi = torch.tensor([lab])
        inference.reconstruct(m.model, xi, yi)
        if other is not None:
            inference.reconstruct(other.model, xi, yi)
        inference.restyle(m.model, xi, lab)

    def app_rerun() -> None:
        xi = prepare_bytes(png).tensor
        _read(m, xi)
        if other is not None:
            _read(other, xi)

    return {
        "preprocess": lambda: prepare_bytes(png),
        "classify": lambda: _classify(m, x),
        "reconstruct": lambda: inference.reconstruct(m.model, x, y),
        "decode": lambda: inference.decode(m.model, z, y),
        "grid_20x20": lambda: inference.latent_grid(m.model, label, GRID_N),
        "draw_pipeline": draw_pipeline,
        "app_rerun": app_rerun,
    }


def what_if(models: list[Shipped], m: Shipped, png: bytes, *, quick: bool) -> dict[str, Any]:
    """The same calls under changes the app or cvae_core could make: fewer importance samples,
    one torch thread, channels-last convolutions. Numbers to choose a fix by, not targets."""
    x = prepare_bytes(png).tensor
    runs, budget = (10, 1) if quick else (50, 1.0)

    def p(fn: Callable[[], Any]) -> dict[str, float]:
        return summarise(time_calls(fn, warmup=3, runs=runs, budget_s=budget))

    out: dict[str, Any] = {"classify_by_k": {}}
    for k in (1, 4, 8, 32):
        out["classify_by_k"][k] = p(lambda k=k: inference.classify(m.model, x, k=k,
                                                                   generator=torch.Generator().manual_seed(SEED)))
    draw = cases(models, m, png)["draw_pipeline"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out["one_thread"] = {"decode": p(lambda: inference.decode(m.model, torch.zeros(1, m.latent_dim),
                                                                    torch.tensor([0]))),
                             "draw_pipeline": p(draw)}
    finally:
        torch.set_num_threads(threads)
    if m.arch == "conv":
        nhwc = copy.deepcopy(m.model).to(memory_format=torch.channels_last)
        out["channels_last"] = {
            "classify": p(lambda: inference.classify(nhwc, x, k=m.k, generator=torch.Generator().manual_seed(SEED))),
            "grid_20x20": p(lambda: inference.latent_grid(nhwc, 0, GRID_N)),
        }
    return out


RUNS = {"preprocess": 200, "classify": 200, "reconstruct": 500, "decode": 1000, "grid_20x20": 200,
        "draw_pipeline": 200, "app_rerun": 100}
LIMITS = {"draw_pipeline": "draw pipeline p95", "decode": "decode p95", "grid_20x20": "20x20 grid p95"}


def run(models: list[Shipped], *, quick: bool = False) -> dict[str, Any]:
    png = canvas_png("2")
    out: dict[str, Any] = {"k": {m.name: m.k for m in models}, "grid_n": GRID_N, "models": {}}
    for m in models:
        other = partner(models, m)
        row: dict[str, Any] = {"partner": other.name if other else None}
        timed = cases(models, m, png)
        for name, fn in timed.items():
            runs = 20 if quick else RUNS[name]
            row[name] = summarise(time_calls(fn, warmup=3 if quick else 5, runs=runs, budget_s=2 if quick else 4))
        missed = False
        for name, target in LIMITS.items():
            _, bound, _ = TARGETS[target]
            if row[name]["p95"] > bound:
                missed = True
                row.setdefault("profiles", {})[name] = profile_top(timed[name], calls=3 if quick else 10)
        if missed:
            row["what_if"] = what_if(models, m, png, quick=quick)
        out["models"][m.name] = row
        print(f"  latency {m.name}: draw p95 {row['draw_pipeline']['p95']:.1f} ms, classify p95 "
              f"{row['classify']['p95']:.1f} ms, decode p95 {row['decode']['p95']:.2f} ms, "
              f"grid p95 {row['grid_20x20']['p95']:.1f} ms", flush=True)
    return out

"""Inference latency of every shipped model, called the way the app calls ``cvae_core``.

    python -m benchmarks --only latency [--quick]

Per model, p50 and p95 over many calls after a warm-up (ms): preprocessing one canvas PNG (and
the canvas's own RGBA array); classifying one image over the 10 labels with the app's K;
``inference.read`` (classify + posterior + reconstruction + restyle from one encoder pass);
reconstructing; decoding one z; a 20x20 manifold grid; and the draw page's pipeline as its target
("draw pipeline p95" in ``benchmarks.targets``) counts it (preprocess + classify + the
reconstruction by this model and by its partner of the other architecture + restyle under all 10
labels), computed with ``inference.read``.
``app_rerun`` is what the Draw page computes per new drawing as ``app.common`` calls ``cvae_core``:
preprocessing of the canvas's RGBA array and one ``inference.read`` for each of the two models
(the partner is classified too, for its caption); ``app_rerun_separate`` is the same through the
separate helpers (classify + encode + reconstruct + restyle per model), as the app did before.

``variants`` are timed for every model, alternated with the call they vary so that a busy machine
skews both alike: the draw pipeline through the separate helpers (before ``read``), one torch
thread, and for conv models the encoder and decoder batches of classify and the grid in the NCHW
layout against the channels-last one that ``cvae_core.inference`` uses. ``preprocess`` (section
level) times canvas inputs and large photos, with a cProfile of the canvas case. A model call over
its target is profiled with torch.profiler, and timed again under candidate fixes (``what_if``).
"""

from __future__ import annotations

import copy
import cProfile
import io
import pstats
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.profiling import profile_top
from benchmarks.strokes import canvas_png
from benchmarks.targets import TARGETS
from benchmarks.timing import summarise, time_calls
from cvae_core import catalogue, inference
from cvae_core.calibration import Calibration
from cvae_core.catalogue import ModelEntry
from cvae_core.images.preprocess import prepare_array, prepare_bytes

GRID_N = 20
SEED = 0  # the app seeds every recognition the same way


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(SEED)


def _calibration(m: ModelEntry) -> Calibration:
    """The model's calibration (K, temperature), as the app builds it."""
    return Calibration.for_checkpoint(m.info)


def _classify(m: ModelEntry, x: torch.Tensor) -> int:
    probs, _, _ = inference.classify(m.model, x, calibration=_calibration(m), generator=_generator())
    return int(probs[0].argmax())


def _read_separately(m: ModelEntry, x: torch.Tensor) -> None:
    """What ``app.common.read`` computes for one model and one input, helper by helper."""
    label = _classify(m, x)
    y = torch.tensor([label])
    inference.encode(m.model, x, y)
    inference.reconstruct(m.model, x, y)
    inference.restyle(m.model, x, label)


def canvas_array(png: bytes) -> np.ndarray:
    """The canvas as streamlit-drawable-canvas hands it over (``image_data``): (H, W, 4) uint8."""
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def cases(models: list[ModelEntry], m: ModelEntry, png: bytes) -> dict[str, Callable[[], Any]]:
    """The timed calls for model ``m``; each is a complete, self-contained call."""
    x = prepare_bytes(png).tensor  # (1, 1, 28, 28)
    rgba = canvas_array(png)
    label = _classify(m, x)
    y = torch.tensor([label])
    other = catalogue.partner(models, m)
    z = torch.zeros(1, m.latent_dim)

    def draw_pipeline() -> None:
        xi = prepare_bytes(png).tensor
        reading = inference.read(m.model, xi, calibration=_calibration(m), generator=_generator())  # recon and restyle included
        if other is not None:
            inference.reconstruct(other.model, xi, reading.labels)

    def app_rerun() -> None:
        xi = prepare_array(rgba).tensor
        inference.read(m.model, xi, calibration=_calibration(m), generator=_generator())
        if other is not None:
            inference.read(other.model, xi, calibration=_calibration(other), generator=_generator())

    def app_rerun_separate() -> None:
        xi = prepare_array(rgba).tensor
        _read_separately(m, xi)
        if other is not None:
            _read_separately(other, xi)

    return {
        "preprocess": lambda: prepare_bytes(png),
        "preprocess_array": lambda: prepare_array(rgba),
        "classify": lambda: _classify(m, x),
        "read": lambda: inference.read(m.model, x, calibration=_calibration(m), generator=_generator()),
        "reconstruct": lambda: inference.reconstruct(m.model, x, y),
        "decode": lambda: inference.decode(m.model, z, y),
        "grid_20x20": lambda: inference.latent_grid(m.model, label, GRID_N),
        "draw_pipeline": draw_pipeline,
        "app_rerun": app_rerun,
        "app_rerun_separate": app_rerun_separate,
    }


def _ab(fns: dict[str, Callable[[], Any]], *, runs: int, budget_s: float, rounds: int = 4) -> dict[str, dict[str, float]]:
    """Time several variants of one call in alternating rounds; p50 / p95 over all their runs."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name] += time_calls(fn, warmup=2, runs=max(1, runs // rounds), budget_s=budget_s / rounds)
    return {name: summarise(s) for name, s in samples.items()}


def _layouts(m: ModelEntry, x: torch.Tensor, *, runs: int, budget_s: float) -> dict[str, Any]:
    """A conv model's classify batches (encode 10 images, decode 10 * K codes) and 20x20 grid
    (decode 400 codes), called on the model directly in each memory layout."""
    nhwc = m.model  # ``cvae_core.inference`` already put it in channels-last
    nchw = copy.deepcopy(nhwc).to(memory_format=torch.contiguous_format)
    classes, d = nhwc.config.num_classes, nhwc.config.latent_dim
    xs, ys = x.repeat_interleave(classes, 0), torch.arange(classes)
    zs, yk = torch.randn(classes * m.k, d, generator=_generator()), ys.repeat(m.k)
    zg, yg = torch.randn(GRID_N * GRID_N, d, generator=_generator()), torch.zeros(GRID_N * GRID_N, dtype=torch.long)

    def passes(model: torch.nn.Module) -> Callable[[], Any]:
        @torch.inference_mode()
        def call() -> None:
            model.encode(xs, ys)
            model.decode_logits(zs, yk)
        return call

    def grid(model: torch.nn.Module) -> Callable[[], Any]:
        return torch.inference_mode()(lambda: torch.sigmoid(model.decode_logits(zg, yg)))

    return {
        "classify_passes": _ab({"nchw": passes(nchw), "channels_last": passes(nhwc)}, runs=runs, budget_s=budget_s),
        "grid_20x20": _ab({"nchw": grid(nchw), "channels_last": grid(nhwc)}, runs=runs, budget_s=budget_s),
    }


def variants(models: list[ModelEntry], m: ModelEntry, png: bytes, *, quick: bool) -> dict[str, Any]:
    """The draw pipeline through the separate helpers, one torch thread, and the conv layouts."""
    x = prepare_bytes(png).tensor
    runs, budget = (8, 1.0) if quick else (80, 3.0)
    timed = cases(models, m, png)
    other = catalogue.partner(models, m)

    def separately() -> None:  # the draw pipeline before ``inference.read``
        xi = prepare_bytes(png).tensor
        lab = _classify(m, xi)
        yi = torch.tensor([lab])
        inference.reconstruct(m.model, xi, yi)
        if other is not None:
            inference.reconstruct(other.model, xi, yi)
        inference.restyle(m.model, xi, lab)

    out: dict[str, Any] = {"draw_pipeline": _ab({"read": timed["draw_pipeline"], "separate_helpers": separately},
                                                runs=runs, budget_s=budget)}
    threads = torch.get_num_threads()
    one: dict[str, dict[str, float]] = {}
    for name in ("decode", "grid_20x20", "draw_pipeline"):
        samples: dict[str, list[float]] = {"all_cores": [], "one_thread": []}
        for _ in range(2):
            for key, n in (("all_cores", threads), ("one_thread", 1)):
                torch.set_num_threads(n)
                try:
                    samples[key] += time_calls(timed[name], warmup=2, runs=runs // 2, budget_s=budget / 4)
                finally:
                    torch.set_num_threads(threads)
        one[name] = {key: summarise(s) for key, s in samples.items()}
    out["threads"] = one
    if m.arch == "conv":
        out["layout"] = _layouts(m, x, runs=runs, budget_s=budget)
    return out


def what_if(models: list[ModelEntry], m: ModelEntry, png: bytes, *, quick: bool) -> dict[str, Any]:
    """The same calls under changes the app could make: fewer importance samples, one torch
    thread. Numbers to choose a fix by, not targets."""
    x = prepare_bytes(png).tensor
    runs, budget = (10, 1) if quick else (50, 1.0)

    def p(fn: Callable[[], Any]) -> dict[str, float]:
        return summarise(time_calls(fn, warmup=3, runs=runs, budget_s=budget))

    out: dict[str, Any] = {"classify_by_k": {}}
    for k in (1, 4, 8, 32):
        out["classify_by_k"][k] = p(lambda k=k: inference.classify(m.model, x, k=k, generator=_generator()))
    draw = cases(models, m, png)["draw_pipeline"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out["one_thread"] = {"decode": p(lambda: inference.decode(m.model, torch.zeros(1, m.latent_dim),
                                                                    torch.tensor([0]))),
                             "draw_pipeline": p(draw)}
    finally:
        torch.set_num_threads(threads)
    return out


def _photo(side: int, fmt: str, png: bytes) -> bytes:
    """The canvas digit as a large photo file: dark ink on light paper, ``side`` pixels a side."""
    img = Image.open(io.BytesIO(png)).convert("L").resize((side, side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    Image.eval(img, lambda v: 230 - v * 200 // 255).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _cprofile_top(fn: Callable[[], Any], *, calls: int, top: int = 10) -> list[dict[str, Any]]:
    """The Python functions that take the most time of their own over ``calls`` calls (cProfile;
    preprocessing is numpy and Pillow, which torch.profiler does not see)."""
    fn()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (calls, primitive calls, own s, cumulative s, callers)
    total = sum(v[2] for v in stats.values()) or 1.0
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return [{"function": f"{name} ({file.rsplit('/', 1)[-1]}:{line})", "self_ms_per_run": round(v[2] / calls * 1e3, 3),
             "share_percent": round(100 * v[2] / total, 1)} for (file, line, name), v in rows]


def preprocessing(png: bytes, *, quick: bool) -> dict[str, Any]:
    """Canvas inputs (PNG bytes and the RGBA array) and large photos, with a profile of the canvas."""
    rgba = canvas_array(png)
    calls = {
        "canvas_png": lambda: prepare_bytes(png),
        "canvas_array": lambda: prepare_array(rgba),
    }
    photos = {"photo_jpeg_3000": _photo(3000, "JPEG", png), "photo_png_2000": _photo(2000, "PNG", png)}
    for name, data in photos.items():
        calls[name] = lambda data=data: prepare_bytes(data)
    out: dict[str, Any] = {}
    for name, fn in calls.items():
        runs = (10 if quick else 40) if name.startswith("photo") else (20 if quick else 300)
        out[name] = summarise(time_calls(fn, warmup=3, runs=runs, budget_s=2 if quick else 6))
    out["profile_canvas_png"] = _cprofile_top(calls["canvas_png"], calls=10 if quick else 100)
    return out


RUNS = {"preprocess": 200, "preprocess_array": 200, "classify": 200, "read": 200, "reconstruct": 500,
        "decode": 1000, "grid_20x20": 200, "draw_pipeline": 200, "app_rerun": 100, "app_rerun_separate": 100}
LIMITS = {"draw_pipeline": "draw pipeline p95", "decode": "decode p95", "grid_20x20": "20x20 grid p95"}


def run(models: list[ModelEntry], *, quick: bool = False) -> dict[str, Any]:
    png = canvas_png("2")
    out: dict[str, Any] = {"k": {m.name: m.k for m in models}, "grid_n": GRID_N, "models": {}}
    out["preprocess"] = preprocessing(png, quick=quick)
    pre = out["preprocess"]
    print(f"  preprocess p50 / p95: canvas PNG {pre['canvas_png']['p50']:.2f} / {pre['canvas_png']['p95']:.2f} ms, "
          f"canvas array {pre['canvas_array']['p50']:.2f} / {pre['canvas_array']['p95']:.2f} ms", flush=True)
    for m in models:
        other = catalogue.partner(models, m)
        row: dict[str, Any] = {"partner": other.name if other else None}
        timed = cases(models, m, png)
        for name, fn in timed.items():
            runs = 20 if quick else RUNS[name]
            row[name] = summarise(time_calls(fn, warmup=3 if quick else 5, runs=runs, budget_s=2 if quick else 4))
        row["variants"] = variants(models, m, png, quick=quick)
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

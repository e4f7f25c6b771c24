"""Training in the app (the Train page, ``cvae_core.runs``): how soon a started run shows its first
curve point, the quick preset from Start to a model in the picker, and the other sessions meanwhile.

    python -m benchmarks.training             # the three measures, a few minutes
    python -m benchmarks.training --quick     # a tiny run instead of the quick preset: checks that it all runs
    python -m benchmarks --only training      # the same, stored in benchmarks/results.json

1. **Start -> first curve point on screen**: ``streamlit run`` on a free port, the Train page in
   Chromium, the quick preset; the clock runs from the click on "Start training" until the loss
   chart has a point (the worker's start, torch and MNIST loading, the first batches, and the page's
   next poll). The run is then cancelled.
2. **The quick preset** (2-D MLP, 10,000 digits, 10 epochs), queued as the Start button queues it:
   the wall time from the request to the model in the picker (training, calibration and the
   evaluation of its accuracy), the training time alone, images per second, and the accuracy by
   Bayes' rule on the test digits it was evaluated on.
3. **Other sessions while a run trains**: on the same server, stroke -> recognised digit on the
   Draw page (``benchmarks.browser.draw_trial``), first idle, then while a long run trains; the p95
   while training over the idle p95.

Runs and models go to a temporary folder (``$CVAE_RUNS_DIR``, ``$CVAE_TRAINED_DIR``), never the
user's. The worker trains on one core at low priority, as in the app: the figures mean something
only on a quiet machine (the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

from benchmarks.browser import browser, draw_trial, open_page, wait_idle
from benchmarks.machine import load_average
from benchmarks.paths import APP
from benchmarks.servers import server_env, start_server, stop_server, wait_healthy
from benchmarks.strokes import STROKES
from benchmarks.timing import summarise
from cvae_core.checkpoints import read_metadata
from cvae_core.runs import RunRequest, advance, cancel, run_folder, submit
from cvae_core.runs.request import ALL_TRAINING_IMAGES

TARGETS: dict[str, tuple[str, float, str]] = {
    "start -> first curve point on screen": ("<=", 15.0, "s"),
    "quick preset, start -> model in the picker": ("<=", 120.0, "s"),
    "quick preset, accuracy by Bayes' rule": (">=", 85.0, "%"),
    "stroke -> answer p95 while a run trains, over idle": ("<=", 1.25, "x"),
}
STROKE_TRIALS = 16  # per condition (4 in --quick)
QUICK_PRESET = RunRequest()  # the page's first preset: 2-D MLP, 10,000 digits, 10 epochs
TINY = RunRequest(epochs=1, train_size=1000, eval_size=200, calibration_size=200)
LOSS_POINT = '[data-testid="stPlotlyChart"]:has-text("total loss") .scatterlayer path.point'
BACKGROUND_RUN = RunRequest(epochs=200, train_size=10000)  # trains for the whole measurement; then cancelled
RUN_TIMEOUT_S = 900


def first_point(work: Path) -> float:
    """Seconds from the click on Start to the loss chart's first point, in Chromium."""
    server = start_server("train", APP, server_env(work), work, watch_files=False)
    try:
        wait_healthy(server, timeout=180)
        with browser() as b:
            page = open_page(b, server.url + "/train")
            start = page.get_by_role("button", name="Start training")
            start.wait_for(timeout=180_000)
            wait_idle(page, timeout=180_000)
            t0 = time.perf_counter()
            start.click()
            page.wait_for_selector(LOSS_POINT, timeout=RUN_TIMEOUT_S * 1000)
            seconds = time.perf_counter() - t0
            run = run_folder(page.url.split("run=")[-1])
        if run is not None:
            cancel(run)
    finally:
        stop_server(server)
    return seconds


def strokes_while_training(work: Path, *, trials: int) -> dict[str, Any]:
    """Stroke -> answer (ms) on the Draw page of one server, idle and then while a run trains there."""
    server = start_server("draw", APP, server_env(work), work, watch_files=False)
    run = None
    try:
        wait_healthy(server, timeout=180)
        with browser() as b:
            page = open_page(b, server.url)
            wait_idle(page, timeout=180_000)
            rng = random.Random(0)
            for digit in "17":  # warm-up: the models load on the first strokes
                draw_trial(page, digit, rng)
            digits = list(STROKES)  # the digits benchmarks.strokes can draw
            idle = [draw_trial(page, digits[i % len(digits)], rng) for i in range(trials)]
            run = submit(BACKGROUND_RUN)
            deadline = time.perf_counter() + RUN_TIMEOUT_S
            while not any(m.get("kind") == "batch" for m in run.metrics()):  # training, not starting
                if run.status().finished or time.perf_counter() > deadline:
                    raise RuntimeError(f"the background run did not start training: {run.status().message}")
                time.sleep(0.5)
            busy = [draw_trial(page, digits[i % len(digits)], rng) for i in range(trials)]
    finally:
        if run is not None:
            cancel(run)
        stop_server(server)
    idle_ms, busy_ms = summarise(idle, scale=1.0), summarise(busy, scale=1.0)
    return {"idle_ms": idle_ms, "training_ms": busy_ms, "p95_ratio": round(busy_ms["p95"] / idle_ms["p95"], 3)}


def end_to_end(request: RunRequest) -> dict[str, Any]:
    """Queue ``request`` as the page does and follow it to the end (polling as the page polls)."""
    t0 = time.perf_counter()
    run = submit(request)
    deadline = t0 + RUN_TIMEOUT_S
    while not run.status().finished:
        if time.perf_counter() > deadline:
            cancel(run)
            raise RuntimeError(f"the run did not finish in {RUN_TIMEOUT_S} s")
        advance()
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    status = run.status()
    if status.state != "done":
        raise RuntimeError(f"the run ended {status.state}: {status.message}\n{run.log_tail()}")
    epochs = [m for m in run.metrics() if m.get("kind") == "epoch"]
    training = epochs[-1]["seconds"]
    meta = read_metadata(Path(os.environ["CVAE_TRAINED_DIR"]) / status.model / status.model)
    return {
        "request": request.to_dict(), "wall_seconds": round(wall, 1), "training_seconds": round(training, 1),
        "images_per_second": round(request.cost / max(training, 1e-9)),
        "accuracy": meta.accuracy, "test_digits": meta.evaluation.n if meta.evaluation else None,
        "test_loss": meta.test.loss if meta.test else None,
    }


def target_rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with what was measured and whether it is met (None: not measured)."""
    measured = {
        "start -> first curve point on screen": out.get("first_point_seconds"),
        "quick preset, start -> model in the picker": out["preset"]["wall_seconds"],
        "quick preset, accuracy by Bayes' rule": 100 * (out["preset"]["accuracy"] or 0.0),
        "stroke -> answer p95 while a run trains, over idle": (out.get("strokes") or {}).get("p95_ratio"),
    }
    compare = {"<=": operator.le, ">=": operator.ge}
    return [{"target": name, "measured": measured[name], "bound": f"{op} {bound:g} {unit}",
             "met": None if measured[name] is None else compare[op](measured[name], bound)}
            for name, (op, bound, unit) in TARGETS.items()]


def run(*, quick: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"load_average_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="cvae-bench-training-") as tmp, \
            mock.patch.dict(os.environ, {"CVAE_RUNS_DIR": f"{tmp}/runs", "CVAE_TRAINED_DIR": f"{tmp}/trained"}):
        request = TINY if quick else QUICK_PRESET
        out["preset"] = end_to_end(request)
        try:
            out["first_point_seconds"] = round(first_point(Path(tmp)), 1)
        except Exception as e:  # no Chromium here, or the server failed: the preset's figures stand
            print(f"  first-point measurement failed: {type(e).__name__}: {e}", file=sys.stderr)
            out["first_point_seconds"] = None
        try:
            out["strokes"] = strokes_while_training(Path(tmp), trials=4 if quick else STROKE_TRIALS)
        except Exception as e:
            print(f"  strokes-while-training measurement failed: {type(e).__name__}: {e}", file=sys.stderr)
            out["strokes"] = None
    out["quick"] = quick
    out["targets"] = target_rows(out) if not quick else []
    out["load_average_after"] = load_average()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a tiny run instead of the quick preset")
    args = p.parse_args(argv)
    out = run(quick=args.quick)
    preset = out["preset"]
    size = "all" if preset["request"]["train_size"] == ALL_TRAINING_IMAGES else f"{preset['request']['train_size']:,}"
    print(f"run of {preset['request']['epochs']} epochs on {size} digits: {preset['wall_seconds']} s start to picker, "
          f"{preset['training_seconds']} s training ({preset['images_per_second']:,} images/s), accuracy "
          f"{100 * (preset['accuracy'] or 0):.1f} % on {preset['test_digits']} test digits; first curve point "
          f"on screen after {out['first_point_seconds']} s; stroke -> answer while training "
          f"{(out['strokes'] or {}).get('p95_ratio')} x idle at p95; load average {out['load_average_before']} -> "
          f"{out['load_average_after']}")
    for row in out["targets"]:
        print(f"  {row['target']}: {row['measured']} ({row['bound']}) {'met' if row['met'] else 'NOT met'}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

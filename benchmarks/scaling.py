"""Scaling: inference time against batch size, training time against data set size.

    python -m benchmarks --only scaling [--quick]

Inference: ``cvae_core.inference.reconstruct`` (encode + decode) of B test images, B = 1 .. 1024,
p50 over repeated calls, per shipped model; reported as ms per call and us per image.
Training: one epoch of ``cvae_core.train.train_one_epoch`` on the first N training images,
N doubling, for each architecture at latent size 2; a least-squares line time = a + b N gives
the fixed cost a and the cost per image b.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from benchmarks.timing import summarise, time_calls
from cvae_core import inference
from cvae_core.catalogue import ModelEntry
from cvae_core.config import TrainConfig
from cvae_core.data import MNIST, load_mnist, to_float
from cvae_core.models import build_model
from cvae_core.train import Run, set_seed, train_one_epoch

BATCHES = (1, 4, 16, 64, 256, 1024)


def inference_scaling(m: ModelEntry, data: MNIST, *, quick: bool) -> list[dict[str, float]]:
    rows = []
    for b in BATCHES:
        x, y = to_float(data.test_images[:b]), data.test_labels[:b]
        runs = 5 if quick else max(10, min(200, 4096 // b))
        s = summarise(time_calls(lambda x=x, y=y: inference.reconstruct(m.model, x, y), warmup=3, runs=runs,
                                 budget_s=1 if quick else 2))
        rows.append({"batch": b, "ms": s["p50"], "us_per_image": round(1e3 * s["p50"] / b, 2)})
    return rows


def training_scaling(m: ModelEntry, data: MNIST, *, quick: bool) -> dict[str, Any]:
    sizes = (256, 512, 1024) if quick else (1000, 2000, 4000, 8000)
    cfg = TrainConfig()
    rows = []
    for n in sizes:
        set_seed(0)
        model = build_model(m.ckpt.config)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        images, labels = data.train_images[:n], data.train_labels[:n]
        run = Run(model, opt, sched, cfg, torch.Generator().manual_seed(0), math.ceil(n / cfg.batch_size))
        train_one_epoch(run, images[:256], labels[:256])  # warm-up
        t0 = time.perf_counter()
        train_one_epoch(run, images, labels)
        rows.append({"images": n, "seconds": round(time.perf_counter() - t0, 3)})
    n_arr = np.array([r["images"] for r in rows], dtype=np.float64)
    t_arr = np.array([r["seconds"] for r in rows])
    slope, intercept = np.polyfit(n_arr, t_arr, 1)
    predicted = intercept + slope * n_arr
    r2 = 1 - ((t_arr - predicted) ** 2).sum() / max(((t_arr - t_arr.mean()) ** 2).sum(), 1e-12)
    return {"rows": rows, "fixed_seconds": round(float(intercept), 3), "us_per_image": round(float(slope) * 1e6, 1),
            "r2": round(float(r2), 4), "full_epoch_seconds_predicted": round(float(intercept + slope * 55000), 1)}


def run(models: list[ModelEntry], *, quick: bool = False, data: MNIST | None = None) -> dict[str, Any]:
    data = data or load_mnist(checksums=False)
    out: dict[str, Any] = {"inference": {}, "training": {}}
    for m in models:
        out["inference"][m.name] = rows = inference_scaling(m, data, quick=quick)
        print(f"  scaling {m.name}: {rows[0]['us_per_image']:.0f} us/image at batch 1, "
              f"{rows[-1]['us_per_image']:.1f} at {rows[-1]['batch']}", flush=True)
    for arch in ("mlp", "conv"):
        pick = [m for m in models if m.arch == arch]
        if not pick:
            continue
        m = min(pick, key=lambda m: (m.latent_dim != 2, m.name))
        out["training"][m.name] = t = training_scaling(m, data, quick=quick)
        print(f"  scaling {m.name} training: {t['fixed_seconds']:.2f} s + {t['us_per_image']:.0f} us/image "
              f"(R^2 {t['r2']:.3f})", flush=True)
    return out

"""Training throughput (images/s) of our in-memory pipeline against the usual DataLoader recipe.

    python -m benchmarks --only throughput [--quick]

Ours is ``cvae_core.train.train_one_epoch`` exactly as ``python -m cvae_core.train`` runs it:
uint8 tensors in memory, batches cut by index slicing, Adam (its fused kernel) with the
warm-up/cosine schedule, conv models in channels-last layout.
The reference is what most MNIST examples do: ``torchvision.datasets.MNIST`` over the same IDX
files (decompressed into a temporary folder), ``transforms.ToTensor()``, a shuffling
``DataLoader`` with batch 128 and the default ``num_workers=0``, and the same model (in
PyTorch's default layout), loss, optimiser (Adam as usually written, same hyperparameters)
and batch size. Both run on the same first N training images, alternated, in the same
process; each is timed over whole epochs after a warm-up of a few batches, and the best of the
repetitions is kept (the least disturbed by other load). The two data pipelines are also timed
alone (batches made and dropped), which shows how much of an epoch is data loading.
"""

from __future__ import annotations

import gzip
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from cvae_core.catalogue import ModelEntry
from cvae_core.config import TrainConfig
from cvae_core.data import FILES, MNIST, batches, find_file, load_mnist
from cvae_core.models import build_model, cvae_loss
from cvae_core.train import Run, lr_factor, make_optimizer, set_seed, train_one_epoch

BATCH = 128
WARMUP_BATCHES = 5


def torchvision_mnist(data: MNIST, root: Path) -> Any:
    """``torchvision.datasets.MNIST`` (train split, ``ToTensor``) over the same IDX files."""
    from torchvision import datasets, transforms

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stem in FILES.values():  # torchvision reads the raw (uncompressed) files
        src = find_file(data.folder, stem)
        with (gzip.open(src, "rb") if src.suffix == ".gz" else open(src, "rb")) as f, open(raw / stem, "wb") as g:
            shutil.copyfileobj(f, g)
    return datasets.MNIST(str(root), train=True, transform=transforms.ToTensor(), download=False)


def _optimiser(model: torch.nn.Module, steps: int, *, ours: bool) -> tuple[torch.optim.Optimizer, Any]:
    """Ours: the optimiser ``python -m cvae_core.train`` builds (fused Adam); the reference: Adam as
    most examples write it. Same hyperparameters and schedule."""
    cfg = TrainConfig()
    opt = make_optimizer(model, cfg) if ours else torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total=steps, warmup=steps // 10, floor=cfg.min_lr / cfg.lr)
    )
    return opt, sched


def training_layout(model: torch.nn.Module) -> torch.nn.Module:
    """The model as ``cvae_core.train.fit`` trains it: conv models in channels-last layout."""
    return model.to(memory_format=torch.channels_last) if model.config.arch == "conv" else model


def time_ours(m: ModelEntry, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Seconds for one epoch of ``train_one_epoch`` over (images, labels)."""
    set_seed(0)
    model = training_layout(build_model(m.ckpt.config))
    steps = math.ceil(len(labels) / BATCH)
    opt, sched = _optimiser(model, steps * 2, ours=True)
    cfg = TrainConfig(batch_size=BATCH)
    gen = torch.Generator().manual_seed(0)
    run = Run(model, opt, sched, cfg, gen, steps, device=torch.device("cpu"))
    warm = WARMUP_BATCHES * BATCH
    train_one_epoch(run, images[:warm], labels[:warm])
    t0 = time.perf_counter()
    train_one_epoch(run, images, labels)
    return time.perf_counter() - t0


def reference_epoch(model: torch.nn.Module, loader: DataLoader, opt: torch.optim.Optimizer, sched: Any,
                    *, limit: int | None = None) -> None:
    """The textbook loop: for x, y in loader -> forward, loss, backward, step."""
    model.train()
    for i, (x, y) in enumerate(loader):
        if limit is not None and i >= limit:
            break
        logits, mean, logvar = model(x, y)
        loss = cvae_loss(logits, x, mean, logvar)["loss"].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


def time_reference(m: ModelEntry, dataset: Any, n: int) -> float:
    set_seed(0)
    model = build_model(m.ckpt.config)
    opt, sched = _optimiser(model, math.ceil(n / BATCH) * 2, ours=False)
    loader = DataLoader(Subset(dataset, range(n)), batch_size=BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    reference_epoch(model, loader, opt, sched, limit=WARMUP_BATCHES)
    t0 = time.perf_counter()
    reference_epoch(model, loader, opt, sched)
    return time.perf_counter() - t0


def data_only(images: torch.Tensor, labels: torch.Tensor, dataset: Any) -> dict[str, float]:
    """Images/s of each data pipeline alone (batches produced and dropped): what the loaders cost."""
    n = len(labels)
    t0 = time.perf_counter()
    for _ in batches(images, labels, BATCH, shuffle=True, generator=torch.Generator().manual_seed(0)):
        pass
    ours = time.perf_counter() - t0
    loader = DataLoader(Subset(dataset, range(n)), batch_size=BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    for _ in loader:
        pass
    ref = time.perf_counter() - t0
    return {"ours_images_per_s": round(n / ours, 1), "reference_images_per_s": round(n / ref, 1),
            "speedup": round(ref / ours, 1)}


def shipped_training(models: list[ModelEntry]) -> dict[str, Any]:
    """Full training time of each shipped checkpoint, from its own metadata."""
    out = {}
    for m in models:
        training = m.ckpt.info.training
        history = training.history
        epochs = training.epochs_run or len(history)
        seconds = training.seconds
        train_size = training.train_size
        epoch_seconds = sum(h.get("seconds", 0.0) for h in history)
        out[m.name] = {
            "training_seconds": seconds,
            "epochs": epochs,
            "train_size": train_size,
            "command": training.command,
            "train_images_per_s": round(epochs * train_size / epoch_seconds, 1) if epoch_seconds and train_size else None,
        }
    return out


def run(models: list[ModelEntry], *, quick: bool = False, data: MNIST | None = None) -> dict[str, Any]:
    data = data or load_mnist(checksums=False)
    n = 1280 if quick else 6400
    reps = 1 if quick else 2
    images, labels = data.train_images[:n], data.train_labels[:n]
    out: dict[str, Any] = {"images": n, "batch_size": BATCH, "repetitions": reps, "models": {},
                           "shipped": shipped_training(models)}
    seen: dict[Any, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="cvae-bench-") as tmp:
        dataset = torchvision_mnist(data, Path(tmp))
        out["data_only"] = data_only(images, labels, dataset)
        for m in (m for m in models if not m.ckpt.config.background):  # the reference loop has no
            key = m.ckpt.config  # counterpart for a recogniser's generated non-digits: plain CVAEs only
            if key not in seen:  # models with the same config train at the same speed
                ours, ref = [], []
                for _ in range(reps):
                    ours.append(time_ours(m, images, labels))
                    ref.append(time_reference(m, dataset, n))
                seen[key] = {
                    "ours_images_per_s": round(n / min(ours), 1),
                    "reference_images_per_s": round(n / min(ref), 1),
                    "speedup": round(min(ref) / min(ours), 2),
                    "ours_seconds": [round(t, 3) for t in ours],
                    "reference_seconds": [round(t, 3) for t in ref],
                }
            out["models"][m.name] = seen[key]
            r = seen[key]
            print(f"  throughput {m.name}: ours {r['ours_images_per_s']:.0f} img/s, reference "
                  f"{r['reference_images_per_s']:.0f} img/s, x{r['speedup']:.2f}", flush=True)
    return out

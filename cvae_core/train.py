"""Train one CVAE on MNIST and write a self-describing checkpoint.

    python -m cvae_core.train --model conv --latent-dim 2 --epochs 40
    python -m cvae_core.train --model mlp --latent-dim 2 --epochs 1 --subset 2000   # smoke run

The data folder comes from ``--data-dir`` or ``$CVAE_DATA_DIR`` (else MNIST is downloaded).
Each epoch logs train / validation / test loss (total, reconstruction, KL; nats per image).
The weights with the best validation loss are kept; Ctrl-C (or SIGTERM) stops training and still
writes the best checkpoint so far, never a half-written file. After every epoch the whole training
state (weights, optimiser, schedule, random number generators, history, best so far) is saved
beside the checkpoint as ``OUT.resume.pt``, so an interrupted run continues where it stopped:

    python -m cvae_core.train --resume checkpoints/conv-64-recogniser   # same result as one sitting
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from cvae_core import nondigits
from cvae_core.augment import Augment, augment
from cvae_core.checkpoints import CheckpointError, checkpoint_dir, code_version, now_iso, save_checkpoint
from cvae_core.config import ModelConfig, TrainConfig
from cvae_core.data import MNIST, DataError, batches, load_mnist
from cvae_core.measures import latent_means, measure
from cvae_core.models import (
    CLASSIFIERS,
    CVAE,
    MODELS,
    DigitCNN,
    build_model,
    count_parameters,
    cvae_loss,
    to_channels_last,
)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str | None = None) -> torch.device:
    """CUDA when present (or the device asked for), else the CPU."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def lr_factor(step: int, *, total: int, warmup: int, floor: float) -> float:
    """Linear warm-up, then cosine decay to ``floor`` (a fraction of the peak rate)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


NONDIGIT_POOL = 20000  # generated non-digits per training run, each shown distorted many times


def training_batch(
    x: Tensor, y: Tensor, model: CVAE | DigitCNN, cfg: TrainConfig, generator: torch.Generator,
    nondigit_pool: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(what the model sees, what it should reconstruct, conditions) for one batch of digits.

    With ``cfg.augment`` the digits are distorted (``cvae_core.augment``); with ``cfg.denoise`` the
    target stays the clean digit, else it is the distorted one. A model with a background
    condition also gets ``cfg.background_fraction`` non-digits per digit from ``nondigit_pool``
    (distorted too), labelled "not a digit" (index ``num_classes``).
    """
    seen = augment(x, Augment(), generator) if cfg.augment else x
    target = x if cfg.denoise else seen
    if model.config.background:
        if nondigit_pool is None:
            raise ValueError("a model with a background condition trains with a pool of non-digits")
        m = max(1, round(cfg.background_fraction * len(y)))
        others = nondigit_pool[torch.randint(0, len(nondigit_pool), (m,), generator=generator)]
        if cfg.augment:
            others = augment(others, Augment(), generator)
        others = others.to(x.device)
        seen, target = torch.cat([seen, others]), torch.cat([target, others])
        y = torch.cat([y, torch.full((m,), model.config.num_classes, dtype=y.dtype, device=y.device)])
    return seen, target, y


@dataclass
class Run:
    """What one training run steps through: the model, its optimiser and schedule, the generator
    that shuffles and distorts batches, and the optimiser steps taken so far."""

    model: CVAE | DigitCNN
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    cfg: TrainConfig
    generator: torch.Generator
    steps_per_epoch: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    nondigit_pool: Tensor | None = None  # non-digits for a model with a background condition
    step: int = 0


class Observer(Protocol):
    """Watches ``fit``: told when training starts, every ``every`` optimiser steps, and after each
    epoch (``cvae_core.runs`` writes these to a run folder for the app). An observer must not draw
    from torch's global random numbers, so a watched run trains exactly as an unwatched one."""

    every: int  # optimiser steps between two ``batches`` calls (read after ``started``)

    def started(self, model: CVAE | DigitCNN, *, validation: tuple[Tensor, Tensor], epoch: int,
                steps_per_epoch: int) -> None: ...

    def batches(self, *, epoch: int, step: int, means: dict[str, float]) -> None: ...

    def epoch_done(self, model: CVAE | DigitCNN, row: dict[str, float]) -> None: ...


class Sums:
    """Per-image sums of a batch's loss parts, averaged on demand."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.images = 0

    def add(self, parts: dict[str, float], images: int) -> None:
        for k, v in parts.items():
            self.totals[k] = self.totals.get(k, 0.0) + v
        self.images += images

    def means(self) -> dict[str, float]:
        return {k: v / max(self.images, 1) for k, v in self.totals.items()}


def cvae_step(run: Run, seen: Tensor, target: Tensor, y: Tensor) -> tuple[Tensor, dict[str, float]]:
    """A CVAE's objective on one batch, and the batch's summed loss parts.

    The negative ELBO, with beta ramped up over ``kl_warmup_epochs``; with ``disc_weight``, plus the
    class-posterior cross-entropy on a share of the batch (hybrid training). The reported loss
    uses the full beta, so epochs compare."""
    cfg = run.cfg
    warm = cfg.kl_warmup_epochs * run.steps_per_epoch
    beta = cfg.beta * min(1.0, run.step / warm) if warm > 0 else cfg.beta
    logits, mean, logvar = run.model(seen, y)
    parts = cvae_loss(logits, target, mean, logvar, beta=beta)
    objective = parts["loss"].mean()
    recon, kl = parts["recon"].sum().item(), parts["kl"].sum().item()
    sums = {"loss": recon + cfg.beta * kl, "recon": recon, "kl": kl}
    if cfg.disc_weight > 0:
        m = max(1, round(cfg.disc_fraction * len(y)))
        pick = torch.randperm(len(y), generator=run.generator)[:m].to(y.device)
        ce = class_posterior_loss(run.model, seen[pick], y[pick], temperature=cfg.disc_temperature)
        objective = objective + cfg.disc_weight * ce
        sums["disc_ce"] = ce.item() * len(y)
    return objective, sums


def classifier_step(run: Run, seen: Tensor, target: Tensor, y: Tensor) -> tuple[Tensor, dict[str, float]]:
    """The CNN reference's objective on one batch: cross-entropy (it reconstructs nothing: ``target``
    is unused)."""
    objective = F.cross_entropy(run.model(seen), y)
    return objective, {"loss": objective.item() * len(y)}


def train_one_epoch(
    run: Run, images: Tensor, labels: Tensor, *, desc: str = "train", epoch: int = 1, observer: Observer | None = None
) -> dict[str, float]:
    """One pass over (images, labels) in a shuffled order; returns the mean loss parts per image."""
    run.model.train()
    step = classifier_step if isinstance(run.model, DigitCNN) else cvae_step
    epoch_sums, window = Sums(), Sums()
    bar = tqdm(total=len(labels), desc=desc, unit="img", leave=False, dynamic_ncols=True, mininterval=0.5, disable=None)
    for x, y in batches(images, labels, run.cfg.batch_size, shuffle=True, generator=run.generator, device=run.device):
        seen, target, y = training_batch(x, y, run.model, run.cfg, run.generator, run.nondigit_pool)
        objective, parts = step(run, seen, target, y)
        run.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        run.optimizer.step()
        run.scheduler.step()
        run.step += 1
        epoch_sums.add(parts, len(y))
        window.add(parts, len(y))
        if observer is not None and run.step % observer.every == 0:
            observer.batches(epoch=epoch, step=run.step, means=window.means())
            window = Sums()
        bar.update(len(x))
        bar.set_postfix(loss=f"{epoch_sums.means()['loss']:.2f}", refresh=False)
    bar.close()
    return epoch_sums.means()


def class_posterior_loss(model: CVAE, x: Tensor, y: Tensor, *, temperature: float = 1.0) -> Tensor:
    """Cross-entropy of the Bayes class posterior softmax_y'(-negELBO(x, y') / T) against the true label.

    The optional discriminative term of hybrid training (``--disc-weight``): the model stays a
    CVAE and still recognises through Bayes' rule, but its likelihoods are pushed to rank the
    true label first (hybrid generative-discriminative training, Lasserre et al., 2006). The
    posterior runs over every condition, "not a digit" included when the model has a background.
    ELBOs of two labels differ by tens of nats, so at T = 1 the posterior is nearly one-hot and only
    misclassified images teach anything; a temperature T > 1 lets near misses pull too (a margin).
    """
    conditions = model.config.num_conditions
    mean, logvar = model.encode_all(x)  # (m, C, D)
    mean, logvar = mean.flatten(0, 1), logvar.flatten(0, 1)  # (m*C, D)
    xs = x.repeat_interleave(conditions, 0)  # (m*C, 1, H, W)
    ys = torch.arange(conditions, device=x.device).repeat(len(y))  # (m*C,)
    logits = model.decode_logits(model.reparameterize(mean, logvar), ys)
    neg_elbo = cvae_loss(logits, xs, mean, logvar)["loss"].view(len(y), conditions)
    return F.cross_entropy(-neg_elbo / temperature, y)


@torch.no_grad()
def validation_ce(
    model: CVAE, images: Tensor, labels: Tensor, *, device: torch.device, seed: int = 0, temperature: float = 1.0
) -> float:
    """Mean ``class_posterior_loss`` over a split, seeded (for model selection in hybrid training)."""
    model.eval()
    torch.manual_seed(seed)
    total = sum(class_posterior_loss(model, x, y, temperature=temperature).item() * len(y)
                for x, y in batches(images, labels, 500, device=device))
    return total / max(len(labels), 1)


def make_optimizer(model: CVAE | DigitCNN, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam with its fused kernel: one pass over all parameters per step instead of a loop of small
    ops per tensor, the same update to float rounding (about 20 % more MLP images/s, benchmarks/)."""
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


class TrainingError(RuntimeError):
    """Training cannot start or produced nothing to save."""


def fit(
    model_config: ModelConfig,
    cfg: TrainConfig,
    data: MNIST,
    out: Path,
    *,
    command: str,
    device: torch.device,
    init: str | Path | None = None,
    role: str | None = None,
    resume: bool = False,
    observer: Observer | None = None,
) -> dict[str, Any]:
    """Train (from scratch, or from the weights of checkpoint ``init``), keep the best-by-validation
    weights, write the checkpoint; returns its metadata. A ``KeyboardInterrupt`` (Ctrl-C, or
    SIGTERM as ``main`` arranges it) ends training early and still writes the best weights so far.

    After each epoch the training state goes to ``resume_path(out)``; with ``resume`` training
    continues from it after its last completed epoch, with the same result as an uninterrupted
    run. The state file is removed when the run completes. An ``observer`` is told of the run's
    progress (``Observer``) and changes nothing in it."""
    set_seed(cfg.seed)
    (train_x, train_y), (val_x, val_y) = data.split(cfg.val_size, seed=cfg.seed)
    if cfg.subset:
        train_x, train_y = train_x[: cfg.subset], train_y[: cfg.subset]
    test_x, test_y = data.test_images[: cfg.eval_size], data.test_labels[: cfg.eval_size]
    model = build_model(model_config)
    init_meta = None
    if init is not None:
        from cvae_core.checkpoints import load_checkpoint

        start_from = load_checkpoint(init)
        if start_from.config != model_config:
            raise TrainingError(f"--init {init}: its model config {start_from.config} differs from {model_config}")
        model.load_state_dict(start_from.model.state_dict())
        init_meta = {"path": start_from.path.name, "weights_sha256": start_from.info.weights_sha256,
                     "command": start_from.info.training.command}
    model = to_channels_last(model.to(device))
    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(train_y) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: lr_factor(s, total=total, warmup=int(cfg.warmup_epochs * steps_per_epoch), floor=cfg.min_lr / cfg.lr),
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    pool = nondigits.training_pool(NONDIGIT_POOL, gen, letters=cfg.letters) if model_config.background else None
    run = Run(model, optimizer, scheduler, cfg, gen, steps_per_epoch, device=device, nondigit_pool=pool)
    meta: dict[str, Any] = {
        "command": command,
        "train_config": cfg.to_dict(),
        "data_sha256": data.checksums,
        "code_version": code_version(),
        "torch_version": torch.__version__,
        "device": str(device),
        "num_params": count_parameters(model),
        "train_size": len(train_y),
        "val_size": len(val_y),
        "history": [],
        "init": init_meta,
        **({"role": role} if role else {}),
    }
    best_val, best_state, first_epoch = math.inf, None, 1
    start = time.perf_counter()
    state_file = resume_path(out)
    if resume:
        saved = load_training_state(state_file)
        if saved["command_args"] != meta["train_config"] or saved["model_config"] != model_config.to_dict():
            raise TrainingError(f"{state_file} was made by another configuration; run its own command with --resume")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        gen.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        np.random.set_state(saved["numpy_rng"])
        random.setstate(saved["python_rng"])
        best_val, best_state, run.step = saved["best_val"], saved["best_state"], saved["step"]
        first_epoch = saved["epoch"] + 1
        meta.update(saved["meta"], command=command)
        meta.pop("interrupted", None)
        meta["resumed"] = meta.get("resumed", 0) + 1
        start -= saved["meta"].get("training_seconds", 0.0)
        print(f"resuming {out.name} after epoch {saved['epoch']}", file=sys.stderr)
    print(f"{out.name}: {model_config.arch}, latent {model_config.latent_dim}, {meta['num_params']:,} parameters, "
          f"{len(train_y):,} training images, device {device}", file=sys.stderr)
    if observer is not None:
        observer.started(model, validation=(val_x, val_y), epoch=first_epoch - 1, steps_per_epoch=steps_per_epoch)
    try:
        for epoch in range(first_epoch, cfg.epochs + 1):
            t0 = time.perf_counter()
            train_m = train_one_epoch(run, train_x, train_y, desc=f"epoch {epoch}/{cfg.epochs}", epoch=epoch,
                                      observer=observer)
            epoch_seconds = time.perf_counter() - t0
            val_m = measure(model, val_x, val_y, beta=cfg.beta, device=device)
            if cfg.disc_weight > 0 and not isinstance(model, DigitCNN):
                val_m["disc_ce"] = validation_ce(model, val_x, val_y, device=device, temperature=cfg.disc_temperature)
            test_m = measure(model, test_x, test_y, beta=cfg.beta, device=device)
            row = {
                "epoch": epoch, "seconds": round(epoch_seconds, 2), "lr": scheduler.get_last_lr()[0],
                **{f"train_{k}": v for k, v in train_m.items()},
                **{f"val_{k}": v for k, v in val_m.items()},
                **{f"test_{k}": v for k, v in test_m.items()},
            }
            meta["history"].append(row)
            score = val_m["loss"] + cfg.disc_weight * val_m.get("disc_ce", 0.0)  # what training minimises
            improved = score < best_val
            if improved:
                best_val, meta["best_epoch"] = score, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                write(model, best_state, meta, data, out, start=start, device=device)
            meta["training_seconds"] = round(time.perf_counter() - start, 1)
            save_training_state(state_file, {
                "epoch": epoch, "step": run.step, "best_val": best_val, "best_state": best_state,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
                "python_rng": random.getstate(), "meta": meta, "command_args": meta["train_config"],
                "model_config": model_config.to_dict(),
            })
            parts = "".join(f"  {k} {v:.4g}" for k, v in test_m.items() if k != "loss")
            print(f"epoch {epoch:3d}  train {train_m['loss']:.3f}  val {val_m['loss']:.3f}  test {test_m['loss']:.3f}"
                  f"{parts}  {epoch_seconds:.1f}s{'  *' if improved else ''}", file=sys.stderr, flush=True)
            if observer is not None:
                observer.epoch_done(model, row)
    except KeyboardInterrupt:
        meta["interrupted"] = True
        print(f"interrupted: writing the best checkpoint so far; continue with --resume {out}", file=sys.stderr)
    if best_state is None:
        raise TrainingError("no epoch finished; nothing to save")
    write(model, best_state, meta, data, out, start=start, device=device)
    if not meta.get("interrupted"):
        state_file.unlink(missing_ok=True)
    return meta


def resume_path(out: Path) -> Path:
    """Where the training state of the run writing checkpoint ``out`` is kept between epochs."""
    return out.with_name(out.name + ".resume.pt")


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    """Write the state whole under a temporary name, then rename: a crash leaves the previous one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_training_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise TrainingError(f"nothing to resume: {path} does not exist (the run finished, or never completed an epoch)")
    try:
        # Our own file: optimiser and RNG states hold numpy arrays and tuples, so not weights_only.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file: say which
        raise TrainingError(f"cannot read the training state {path}: {e}") from None


def write(
    model: CVAE | DigitCNN, state: dict[str, Tensor], meta: dict[str, Any], data: MNIST, out: Path, *, start: float,
    device: torch.device,
) -> None:
    """Save ``state`` (the best weights so far) as a complete checkpoint; ``model`` keeps training."""
    snapshot = build_model(model.config).to(device)
    snapshot.load_state_dict(state)
    snapshot.eval()
    cfg = meta["train_config"]
    test_x, test_y = data.test_images[: cfg.get("eval_size")], data.test_labels[: cfg.get("eval_size")]
    meta["training_seconds"] = round(time.perf_counter() - start, 1)
    meta["epochs_run"] = len(meta["history"])
    meta["test"] = measure(snapshot, test_x, test_y, beta=cfg["beta"], device=device)
    meta["created"] = now_iso()
    if isinstance(snapshot, DigitCNN):
        save_checkpoint(out, snapshot.cpu(), meta)
        return
    latents = latent_means(snapshot, test_x, test_y, device=device)
    save_checkpoint(out, snapshot.cpu(), meta, latents=latents, latent_labels=test_y)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cvae_core.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted({*MODELS, *CLASSIFIERS}), default="conv",
                   help="architecture (cnn: the discriminative reference, not a CVAE)")
    p.add_argument("--latent-dim", type=int, default=2)
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="MLP widths (default 512 512); cnn: dense width")
    p.add_argument("--channels", type=int, nargs=2, default=None, help="conv channels (default 16 8)")
    p.add_argument("--kernel", type=int, default=ModelConfig.kernel, help="conv kernel size (default 3)")
    p.add_argument("--dense", type=int, default=ModelConfig.dense,
                   help="conv: a dense layer of this width after the conv stack, mirrored (default 0: none)")
    p.add_argument("--background", action="store_true",
                   help='add a "not a digit" condition trained on generated non-digits (cvae_core.nondigits)')
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--min-lr", type=float, default=TrainConfig.min_lr)
    p.add_argument("--warmup-epochs", type=float, default=TrainConfig.warmup_epochs)
    p.add_argument("--kl-warmup-epochs", type=float, default=TrainConfig.kl_warmup_epochs)
    p.add_argument("--beta", type=float, default=TrainConfig.beta)
    p.add_argument("--val-size", type=int, default=TrainConfig.val_size)
    p.add_argument("--subset", type=int, default=None, help="train on the first N training images only")
    p.add_argument("--eval-size", type=int, default=None, help="evaluate on the first N test images (default all)")
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--augment", action="store_true", help="random distortions of every batch (cvae_core.augment)")
    p.add_argument("--denoise", action="store_true", help="reconstruct the clean digit from the distorted one")
    p.add_argument("--background-fraction", type=float, default=TrainConfig.background_fraction,
                   help="non-digits per digit in each batch (with --background)")
    p.add_argument("--letters", action="store_true",
                   help="with --background: letters among the non-digits (training fonts and pen styles; "
                        "the evaluation's stay held out)")
    p.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (else $CVAE_DATA_DIR)")
    p.add_argument("--out", default=None, help="checkpoint path without suffix (default $CVAE_CHECKPOINT_DIR/ARCH-LATENT)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if present, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: every core)")
    p.add_argument("--init", default=None, help="start from the weights of this checkpoint (same model config)")
    p.add_argument("--resume", default=None, metavar="RUN",
                   help="continue the interrupted run that writes checkpoint RUN, with its own settings "
                        "(only --threads and --device may be given again)")
    p.add_argument("--role", choices=["paper", "recogniser", "reference", "variant"], default=None,
                   help="what the model is for, recorded in its metadata (the app groups models by it)")
    p.add_argument("--disc-weight", type=float, default=0.0,
                   help="weight of the hybrid discriminative term on the Bayes class posterior (default 0: plain ELBO)")
    p.add_argument("--disc-fraction", type=float, default=TrainConfig.disc_fraction,
                   help="share of each batch the discriminative term is computed on")
    p.add_argument("--disc-temperature", type=float, default=TrainConfig.disc_temperature,
                   help="temperature of the class posterior in the discriminative term")
    return p


@dataclass(frozen=True)
class Command:
    """A training command, parsed: what ``main`` runs, and what ``cvae_core.runs`` runs for the app."""

    model_config: ModelConfig
    cfg: TrainConfig
    out: Path
    text: str  # the command as recorded in the checkpoint: "python -m cvae_core.train ..."
    threads: int | None = None
    device: str | None = None
    data_dir: str | None = None
    init: str | None = None
    role: str | None = None
    resume: bool = False


def parse_command(argv: list[str]) -> Command:
    """The arguments of ``python -m cvae_core.train`` (without those three words), parsed.

    With ``--resume RUN`` the run's own recorded arguments are read back (only ``--threads`` and
    ``--device`` may be given again). A bad argument exits with argparse's message."""
    p = parser()
    args = p.parse_args(argv)
    given = list(argv)
    if args.resume:
        saved = load_training_state(resume_path(Path(args.resume)))
        original = shlex.split(saved["meta"]["command"])[3:]  # after "python -m cvae_core.train"
        extra = [a for a in given if a.split("=")[0] not in ("--resume", "--threads", "--device")]
        if any(a.startswith("--") for a in extra):
            p.error("--resume takes the run's own settings; only --threads and --device may be given with it")
        keep = {k: v for k, v in (("--threads", args.threads), ("--device", args.device)) if v is not None}
        run = args.resume
        args = p.parse_args(original + [str(x) for kv in keep.items() for x in kv])
        args.resume, args.out, given = True, run, original
    defaults = ModelConfig()
    hidden = tuple(args.hidden) if args.hidden else ((128,) if args.model == "cnn" else defaults.hidden)
    model_config = ModelConfig(
        arch=args.model,
        latent_dim=args.latent_dim,
        hidden=hidden,
        channels=tuple(args.channels) if args.channels else defaults.channels,
        kernel=args.kernel,
        dense=args.dense,
        background=args.background,
    )
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, min_lr=args.min_lr,
        warmup_epochs=args.warmup_epochs, kl_warmup_epochs=args.kl_warmup_epochs, beta=args.beta,
        val_size=args.val_size, subset=args.subset, seed=args.seed,
        disc_weight=args.disc_weight, disc_fraction=args.disc_fraction, disc_temperature=args.disc_temperature,
        augment=args.augment,
        denoise=args.denoise, background_fraction=args.background_fraction, letters=args.letters, eval_size=args.eval_size,
    )
    out = Path(args.out) if args.out else checkpoint_dir() / f"{args.model}-{args.latent_dim}"
    return Command(
        model_config=model_config, cfg=cfg, out=out, text=shlex.join(["python", "-m", "cvae_core.train", *given]),
        threads=args.threads, device=args.device, data_dir=args.data_dir, init=args.init, role=args.role,
        resume=bool(args.resume),
    )


@contextmanager
def stopping_cleanly() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise ``KeyboardInterrupt`` in the main thread, also in a process started
    in the background (where a shell leaves SIGINT ignored): ``fit`` then writes the best
    checkpoint so far. For commands (``main``, the app's run worker), never for library code."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def main(argv: list[str] | None = None) -> None:
    command = parse_command(list(sys.argv[1:] if argv is None else argv))
    torch.set_num_threads(command.threads or os.cpu_count() or 1)
    data = load_mnist(command.data_dir)
    with stopping_cleanly():
        meta = fit(command.model_config, command.cfg, data, command.out, command=command.text,
                   device=pick_device(command.device), init=command.init, role=command.role, resume=command.resume)
    out = command.out
    t = meta["test"]
    figures = ", ".join(f"{k} {v:.4g}" for k, v in t.items())
    print(f"wrote {out}.safetensors: test {figures}, best epoch {meta['best_epoch']}, {meta['training_seconds']:.0f}s")


if __name__ == "__main__":
    try:
        main()
    except (DataError, CheckpointError, TrainingError) as e:
        sys.exit(f"error: {e}")

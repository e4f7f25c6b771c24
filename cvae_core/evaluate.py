"""Evaluate a checkpoint on the 10k MNIST test set and record the results in its metadata.

    python -m cvae_core.evaluate --checkpoint checkpoints/mlp-2 [--json] [--k 32]
    python -m cvae_core.evaluate --checkpoint checkpoints/mlp-2 --data class.npz   # a labelled set; writes nothing
    python -m cvae_core.evaluate --data class.npz       # the same with the best shipped recogniser

Reports test loss (negative ELBO, reconstruction and KL, nats per image); recognition accuracy
and confusion matrix of the CVAE used as a Bayes classifier (``cvae_core.inference``); the same
under Gaussian noise of several sigmas (the paper's robustness experiment); and the threshold
below which an input is flagged as "unlike any digit": the 0.5 % quantile of the test images'
best log-likelihood, so 99.5 % of real test digits pass it (recorded for reference: the
not-a-digit rule is the calibration's, ``cvae_core.calibration``, set on distorted validation
digits). K is the model's calibrated one unless ``--k`` says otherwise. With ``--data`` (a
labelled set exported from the archive: IDX files, a zip of them, or .npz) it reports the same
figures for that set instead of the test set and records nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from cvae_core.calibration import DEFAULT_K, Calibration
from cvae_core.catalogue import default_recogniser, discover
from cvae_core.checkpoints import CheckpointError, code_version, load_checkpoint, now_iso, update_metadata
from cvae_core.corruptions import corrupt
from cvae_core.data import DataError, load_labelled, load_mnist, to_float
from cvae_core.inference import log_likelihoods
from cvae_core.interrupts import deferred_while_writing
from cvae_core.measures import elbo_loss
from cvae_core.models import CVAE
from cvae_core.train import pick_device

NOISE_SIGMAS = (0.0, 0.1, 0.2, 0.3, 0.5)
OOD_QUANTILE = 0.005  # the recorded ``ood_threshold``: this quantile of the test digits' best log-likelihood


def labelled_set(path: str) -> tuple[Tensor, Tensor]:
    """A labelled set exported from the archive (``cvae_core.data.load_labelled``) as tensors:
    images uint8 (N, 28, 28) and labels int64 (N,)."""
    images, labels = load_labelled(path)
    return torch.from_numpy(images), torch.from_numpy(labels)


def add_noise(images: Tensor, sigma: float, *, seed: int) -> Tensor:
    """Float images (N, H, W) in [0, 1] plus N(0, sigma^2) noise, clipped to [0, 1]; seeded."""
    return corrupt(to_float(images), "gaussian_noise", sigma, seed=seed)[:, 0]


def recognise(
    model: CVAE, images: Tensor, *, k: int, seed: int, batch_size: int = 250, desc: str = "recognise"
) -> Tensor:
    """log p(x | y) estimates (N, classes) for float or uint8 images (N, H, W)."""
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, leave=False, disable=None):
        out.append(log_likelihoods(model, to_float(images[start : start + batch_size]), k=k, generator=gen).cpu())
    return torch.cat(out)


def confusion_matrix(labels: Tensor, predicted: Tensor, classes: int) -> list[list[int]]:
    """Rows are true labels, columns predicted labels."""
    m = torch.bincount(labels * classes + predicted, minlength=classes * classes).view(classes, classes)
    return m.tolist()


def evaluate_model(
    model: CVAE, images: Tensor, labels: Tensor, *, k: int = DEFAULT_K, sigmas: tuple[float, ...] = NOISE_SIGMAS,
    seed: int = 0, beta: float = 1.0,
) -> dict[str, Any]:
    """All reported figures for one model on (images, labels)."""
    device = next(model.parameters()).device
    classes = model.config.num_classes
    results: dict[str, Any] = {"n": len(labels), "k": k, "seed": seed, "noise": []}
    for sigma in sigmas:
        x = add_noise(images, sigma, seed=seed + 1)
        loss = elbo_loss(model, x, labels, beta=beta, seed=seed, device=device)
        log_px = recognise(model, x, k=k, seed=seed, desc=f"sigma {sigma}")[:, :classes]  # the digits' conditions
        predicted = log_px.argmax(1)
        accuracy = (predicted == labels).float().mean().item()
        results["noise"].append({"sigma": sigma, **loss, "accuracy": accuracy})
        if sigma == 0:
            best = log_px.max(1).values
            results.update(
                test_loss=loss["loss"], recon=loss["recon"], kl=loss["kl"], accuracy=accuracy,
                confusion=confusion_matrix(labels, predicted, classes),
                ood_threshold=torch.quantile(best, OOD_QUANTILE).item(),
                best_loglik_quantiles={str(q): torch.quantile(best, q).item() for q in (0.001, 0.01, 0.5)},
            )
    return results


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"model {r['model']} (latent {r['latent_dim']}), {r['n']} images of {r['data']}, K = {r['k']}",
        f"test loss {r['test_loss']:.2f} nats  (reconstruction {r['recon']:.2f} + KL {r['kl']:.2f})",
        f"recognition accuracy {100 * r['accuracy']:.2f} %",
        "",
        "noise sigma   loss     accuracy",
    ]
    lines += [f"  {n['sigma']:<9.2f}{n['loss']:8.2f}   {100 * n['accuracy']:6.2f} %" for n in r["noise"]]
    lines += ["", "confusion (rows: true, columns: recognised)"]
    lines += ["   " + " ".join(f"{c:5d}" for c in range(len(r["confusion"])))]
    lines += [f"{i:2d} " + " ".join(f"{v:5d}" for v in row) for i, row in enumerate(r["confusion"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="checkpoint path (with or without suffix); with --data it "
                                                       "defaults to the best shipped recogniser")
    p.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (else $CVAE_DATA_DIR)")
    p.add_argument("--data", default=None, help="evaluate a labelled set exported from the archive instead (writes nothing)")
    p.add_argument("--k", type=int, default=None, help=f"importance samples per label (default: the model's calibrated "
                                                       f"K, else {DEFAULT_K})")
    p.add_argument("--sigmas", type=float, nargs="+", default=list(NOISE_SIGMAS))
    p.add_argument("--limit", type=int, default=None, help="only the first N test images (not recorded)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--no-write", action="store_true", help="do not record the results in the checkpoint")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if 0.0 not in args.sigmas:
        args.sigmas = [0.0, *args.sigmas]

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint is None and not args.data:
        p.error("--checkpoint is required (only a labelled set, --data, defaults to the best recogniser)")
    device = pick_device()
    ckpt = (load_checkpoint(args.checkpoint, device=device) if args.checkpoint
            else default_recogniser(discover(), device=device).ckpt)
    if not isinstance(ckpt.model, CVAE):
        raise CheckpointError(f"{ckpt.name} is not a CVAE; the CNN reference is measured by python -m cvae_core.robustness")
    k = args.k or Calibration.for_checkpoint(ckpt.info).k
    if args.data:
        images, labels = labelled_set(args.data)
        source, checksums = args.data, None
    else:
        data = load_mnist(args.data_dir)
        images, labels, source, checksums = data.test_images, data.test_labels, "the MNIST test set", data.checksums
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    start = time.perf_counter()
    results = evaluate_model(ckpt.model, images, labels, k=k, sigmas=tuple(args.sigmas), seed=args.seed)
    results = {"model": ckpt.config.arch, "latent_dim": ckpt.config.latent_dim, "data": source, **results}
    results["seconds"] = round(time.perf_counter() - start, 1)
    if not args.no_write and not args.limit and checksums is not None:
        command = shlex.join(["python", "-m", "cvae_core.evaluate", *(sys.argv[1:] if argv is None else argv)])
        update_metadata(ckpt.path, {"evaluation": {
            **results, "command": command, "created": now_iso(), "code_version": code_version(),
            "data_sha256": checksums,
        }})
    print(json.dumps(results) if args.json else format_table(results))


if __name__ == "__main__":
    try:
        with deferred_while_writing():
            main()
    except (DataError, CheckpointError) as e:
        sys.exit(f"error: {e}")

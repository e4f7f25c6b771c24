"""How well a recogniser holds up outside MNIST's clean test set, and how honest its confidence is.

    python -m cvae_core.robustness --checkpoint checkpoints/mlp-16-recogniser          # calibrate + suite
    python -m cvae_core.robustness --checkpoint checkpoints/mlp-16 --calibrate-only    # calibration only
    python -m cvae_core.robustness --checkpoint checkpoints/cnn-reference --json
    python -m cvae_core.robustness --checkpoint checkpoints/mlp-16-recogniser --data class.npz

1. **Calibration**, on the validation split the model was trained beside (never the test set):
   the importance samples K (the smallest within 0.1 % of the best accuracy on the clean
   validation digits), a temperature on the scores and the "not a digit" threshold
   (``cvae_core.calibration.fit``). The validation digits are scored clean and as distorted
   copies (the training augmentation), and for a model with a background condition beside
   non-digits from the training generator under a fresh seed. The temperature is fitted on data
   like the training data (``--temperature-on training``, the default) or on the distorted copies
   (``distorted``); the threshold lets through 99 % of the clean and 95 % of the distorted digits,
   for a model without a background condition as a threshold on the best log-likelihood. Stored
   in the checkpoint's ``recognition`` metadata; ``predict``, ``evaluate`` and the app read it
   through ``Calibration.for_checkpoint``. ``--calibrate-only`` stops here.
2. **The suite**, on the 10,000 test digits: every corruption of ``cvae_core.corruptions`` at each
   of its severities (fixed seed): accuracy, expected calibration error (15 bins) and the share
   flagged "not a digit"; the mean corruption accuracy over all, over those seen in training and
   over those held out. The two that go through the app's preprocessing image by image use the
   first ``PER_IMAGE_LIMIT`` test digits.
3. **Not a digit**: AUROC of p(not a digit) between the non-digit measurement set
   (``cvae_core.nondigits.ood_set``) and the test digits, family by family, and the share of test
   digits flagged.

Results go into the checkpoint's ``robustness`` metadata (unless ``--no-write``), with the number
of test digits they were measured on (``--limit`` measures fewer, for slow models).
With ``--data`` (a labelled set exported from the archive: IDX files, a zip of them, or .npz)
it scores that set with the model's calibration instead and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from cvae_core import calibration, nondigits
from cvae_core.augment import Augment, augment
from cvae_core.calibration import TEMPERATURE_DATA, Calibration, auroc, expected_calibration_error
from cvae_core.checkpoints import Checkpoint, CheckpointError, code_version, load_checkpoint, now_iso, update_metadata
from cvae_core.corruptions import CORRUPTIONS, corrupt
from cvae_core.data import MNIST, DataError, load_mnist, to_float
from cvae_core.evaluate import labelled_set
from cvae_core.inference import scores
from cvae_core.interrupts import deferred_while_writing
from cvae_core.models import CVAE, DigitCNN

SEED = 0
BATCH = 250
PER_IMAGE_LIMIT = 2000  # test digits for the corruptions that run the app's preprocessing per image
K_CHOICES = (1, 4, 8)
NOISE_TARGET_SIGMA = 0.3


def all_scores(model: CVAE | DigitCNN, images: Tensor, *, k: int, seed: int = SEED, desc: str = "") -> Tensor:
    """Scores (N, conditions) for float images (N, 1, H, W), in batches, seeded."""
    gen = torch.Generator().manual_seed(seed)
    chunks = [scores(model, xb, k=k, generator=gen).cpu()
              for xb in tqdm(images.split(BATCH), desc=desc, leave=False, disable=None)]
    return torch.cat(chunks) if chunks else torch.empty(0, model.config.num_conditions)


def graded(cal: Calibration, raw: Tensor, labels: Tensor, classes: int) -> dict[str, float]:
    """Accuracy, ECE and the share called "not a digit" for scores of labelled digits."""
    probs, not_digit = cal.posterior(raw, classes=classes)
    conf, predicted = probs.max(1)
    correct = predicted == labels
    flagged, _ = cal.not_a_digit(raw, not_digit)
    return {
        "n": len(labels),
        "accuracy": correct.float().mean().item(),
        "ece": expected_calibration_error(conf, correct),
        "mean_confidence": conf.mean().item(),
        "not_digit_rate": flagged.float().mean().item(),
        # What the app does: a flagged digit gets no number, so it counts as not recognised.
        "accepted_accuracy": (correct & ~flagged).float().mean().item(),
    }


# ------------------------------------------------------------------------------ calibration


def validation_split(data: MNIST, train_config: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
    """The validation images and labels the model was trained beside (its recorded seed and size)."""
    _, (val_x, val_y) = data.split(int(train_config.get("val_size", 5000)), seed=int(train_config.get("seed", 0)))
    return val_x, val_y


def calibrate(
    model: CVAE | DigitCNN, val_images: Tensor, val_labels: Tensor, *, distorted: bool,
    temperature_on: str = "training", seed: int = SEED,
) -> Calibration:
    """Fit K, the temperature and the not-a-digit threshold on validation digits (uint8 (N, H, W)).

    ``distorted``: the model was trained with ``--augment``, so "like the training data" includes
    distorted copies. ``temperature_on`` picks what the temperature is fitted on
    (``calibration.TEMPERATURE_DATA``); the thresholds always see the clean and distorted digits."""
    classes = model.config.num_classes
    clean = to_float(val_images)
    bent = augment(clean, Augment(), torch.Generator().manual_seed(seed + 7))
    ks = (1,) if isinstance(model, DigitCNN) else K_CHOICES
    by_k = {k: all_scores(model, clean, k=k, seed=seed, desc=f"calibrate K={k}") for k in ks}
    acc = {k: (raw[:, :classes].argmax(1) == val_labels).float().mean().item() for k, raw in by_k.items()}
    k = min(kk for kk in ks if acc[kk] >= max(acc.values()) - 0.001)
    others = None
    if model.config.background:
        pool = nondigits.training_pool(len(val_labels) // 2, torch.Generator().manual_seed(seed + 11))
        others = all_scores(model, pool, k=k, seed=seed, desc="calibrate non-digits")
    return calibration.fit(
        by_k[k], all_scores(model, bent, k=k, seed=seed, desc="calibrate distorted"), val_labels, classes=classes,
        k=k, likelihoods=isinstance(model, CVAE), nondigits=others, trained_distorted=distorted,
        temperature_on=temperature_on,
    )


def recalibrate(ckpt: Checkpoint, data: MNIST, *, temperature_on: str = "training", size: int | None = None) -> Calibration:
    """``calibrate`` on the checkpoint's own validation split (its first ``size`` digits when given),
    as it was trained (augmented or not)."""
    train_config = ckpt.info.training.train_config
    val_x, val_y = validation_split(data, train_config)
    return calibrate(ckpt.model, val_x[:size], val_y[:size], distorted=bool(train_config.get("augment")),
                     temperature_on=temperature_on)


# ------------------------------------------------------------------------------------ suite


def run_suite(
    model: CVAE | DigitCNN, cal: Calibration, images: Tensor, labels: Tensor, *, seed: int = SEED,
    per_image_limit: int = PER_IMAGE_LIMIT,
) -> dict[str, Any]:
    """Clean and corrupted accuracy and calibration on (uint8 images (N, H, W), labels)."""
    classes = model.config.num_classes
    x = to_float(images)
    out: dict[str, Any] = {"k": cal.k, "seed": seed, "n": len(labels)}
    out["clean"] = graded(cal, all_scores(model, x, k=cal.k, seed=seed, desc="clean"), labels, classes)
    results: dict[str, Any] = {}
    for i, (name, c) in enumerate(CORRUPTIONS.items()):
        n = min(len(labels), per_image_limit) if c.per_image else len(labels)
        rows = []
        for j, severity in enumerate(c.severities):
            xi = corrupt(x[:n], name, severity, seed=seed + 1000 * i + j)
            raw = all_scores(model, xi, k=cal.k, seed=seed, desc=f"{name} {severity}")
            rows.append({"severity": severity, **graded(cal, raw, labels[:n], classes)})
        results[name] = {
            "held_out": c.held_out, "unit": c.unit, "n": n, "severities": rows,
            "accuracy": sum(r["accuracy"] for r in rows) / len(rows),
            "ece": sum(r["ece"] for r in rows) / len(rows),
        }
    out["corruptions"] = results

    def mean(key: str, held_out: bool | None) -> float:
        vals = [r[key] for r in results.values() if held_out is None or r["held_out"] == held_out]
        return sum(vals) / len(vals)

    out["mean_accuracy"] = mean("accuracy", None)
    out["mean_accuracy_trained"] = mean("accuracy", False)
    out["mean_accuracy_held_out"] = mean("accuracy", True)
    out["mean_ece"] = mean("ece", None)
    noise = results["gaussian_noise"]["severities"]
    out["accuracy_noise_0.3"] = next(r["accuracy"] for r in noise if r["severity"] == NOISE_TARGET_SIGMA)
    return out


def not_digit_scores(model: CVAE | DigitCNN, cal: Calibration, images: Tensor, *, seed: int = SEED) -> tuple[Tensor, Tensor]:
    """(a score that is higher the less an image looks like a digit: p(not a digit) with a background
    condition, else minus the best log-likelihood (CVAE) or minus the top probability (CNN);
    the calibration's not-a-digit flags), each (N,)."""
    raw = all_scores(model, images, k=cal.k, seed=seed, desc="not a digit")
    probs, not_digit = cal.posterior(raw, classes=model.config.num_classes)
    flags, _ = cal.not_a_digit(raw, not_digit)
    if not_digit is not None:
        return not_digit, flags
    return (-raw.max(1).values if isinstance(model, CVAE) else -probs.max(1).values), flags


def run_ood(model: CVAE | DigitCNN, cal: Calibration, test_images: Tensor, *, seed: int = SEED) -> dict[str, Any]:
    """AUROC of the not-a-digit score, non-digits (``nondigits.ood_set``) against test digits, and
    the shares the calibration's rule flags (None for a model that cannot tell)."""
    digits, digit_flags = not_digit_scores(model, cal, to_float(test_images), seed=seed)
    share = lambda flags: flags.float().mean().item() if cal.can_tell else None  # noqa: E731
    out: dict[str, Any] = {"digits_flagged": share(digit_flags), "families": {}}
    pooled = []
    for family, item in nondigits.ood_set().items():
        s, flags = not_digit_scores(model, cal, item["images"], seed=seed)
        out["families"][family] = {
            "n": len(s), "refused_by_preprocessing": item["refused"], "held_out": item["held_out"],
            "auroc": auroc(s, digits), "detected": share(flags),
        }
        if family != "digit-like letters":
            pooled.append(s)
    out["auroc_not_digit_like"] = auroc(torch.cat(pooled), digits)
    return out


def format_calibration(cal: Calibration) -> str:
    rule = (f"p(not a digit) above {cal.not_digit_threshold:.3f}" if cal.background else
            f"best log-likelihood below {cal.loglik_threshold:.1f} nats" if cal.loglik_threshold is not None else
            "none (cannot tell)")
    flagged = "" if cal.distorted_flagged is None else (
        f"; flags {100 * cal.clean_flagged:.2f} % of clean, {100 * cal.distorted_flagged:.2f} % of distorted validation digits")
    return f"K {cal.k}, temperature {cal.temperature:.3g}; not a digit: {rule}{flagged}\n(fitted: {cal.fitted_on})"


def format_report(r: dict[str, Any]) -> str:
    lines = [f"clean: accuracy {100 * r['clean']['accuracy']:.2f} %, ECE {100 * r['clean']['ece']:.2f} %"]
    lines.append(f"{'corruption':16s} {'held out':8s} " + "  ".join(["accuracy per severity"]))
    for name, c in r["corruptions"].items():
        sev = "  ".join(f"{s['severity']:g}: {100 * s['accuracy']:5.1f}" for s in c["severities"])
        lines.append(f"{name:16s} {'yes' if c['held_out'] else '':8s} {100 * c['accuracy']:5.1f} %  ECE "
                     f"{100 * c['ece']:4.1f} %   ({sev})")
    lines.append(f"mean corruption accuracy {100 * r['mean_accuracy']:.2f} % (trained {100 * r['mean_accuracy_trained']:.2f} %, "
                 f"held out {100 * r['mean_accuracy_held_out']:.2f} %), mean ECE {100 * r['mean_ece']:.2f} %")
    if "ood" in r:
        o = r["ood"]
        flagged = "n/a" if o["digits_flagged"] is None else f"{100 * o['digits_flagged']:.2f} %"
        lines.append(f"not a digit: AUROC {o['auroc_not_digit_like']:.4f} (all but digit-like letters), test digits flagged {flagged}")
        for fam, f in o["families"].items():
            det = "" if f["detected"] is None else f", detected {100 * f['detected']:.1f} %"
            lines.append(f"  {fam:24s} AUROC {f['auroc']:.4f}{det} (n {f['n']}, refused by preprocessing {f['refused_by_preprocessing']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="checkpoint path (with or without suffix)")
    p.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (else $CVAE_DATA_DIR)")
    p.add_argument("--data", default=None, help="score a labelled set exported from the archive instead (writes nothing)")
    p.add_argument("--limit", type=int, default=None,
                   help="only the first N test images (recorded with its n; the report shows it)")
    p.add_argument("--recalibrate", action="store_true", help="fit the calibration again even if the checkpoint has one")
    p.add_argument("--calibrate-only", action="store_true", help="fit (if needed) and record the calibration, no suite")
    p.add_argument("--temperature-on", choices=TEMPERATURE_DATA, default="training",
                   help="what the temperature is fitted on when calibrating: validation digits like the training "
                        "data (default) or their distorted copies")
    p.add_argument("--calibration-size", type=int, default=None,
                   help="calibrate on the first N validation digits only (a quick check; the count is recorded)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--no-write", action="store_true", help="do not record the results in the checkpoint")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model
    start = time.perf_counter()
    command = shlex.join(["python", "-m", "cvae_core.robustness", *(sys.argv[1:] if argv is None else argv)])
    if args.data:
        images, labels = labelled_set(args.data)
        cal = Calibration.for_checkpoint(ckpt.info)
        raw = all_scores(model, to_float(images), k=cal.k)
        result = graded(cal, raw, labels, model.config.num_classes)
        print(json.dumps(result) if args.json else
              f"{args.data}: {result['n']} digits, accuracy {100 * result['accuracy']:.2f} %, ECE {100 * result['ece']:.2f} %, "
              f"flagged not a digit {100 * result['not_digit_rate']:.1f} %")
        return
    write = not args.no_write
    data = load_mnist(args.data_dir)
    if args.recalibrate or ckpt.info.recognition is None:
        cal = recalibrate(ckpt, data, temperature_on=args.temperature_on, size=args.calibration_size)
        if write:
            update_metadata(ckpt.path, {"recognition": {**cal.to_dict(), "command": command, "created": now_iso()}})
    else:
        cal = Calibration.for_checkpoint(ckpt.info)
    if args.calibrate_only:
        print(json.dumps(cal.to_dict()) if args.json else format_calibration(cal))
        return
    images, labels = data.test_images[: args.limit], data.test_labels[: args.limit]
    result = run_suite(model, cal, images, labels)
    result["ood"] = run_ood(model, cal, images)
    result.update(seconds=round(time.perf_counter() - start, 1), calibration=cal.to_dict())
    if write:
        update_metadata(ckpt.path, {"robustness": {**result, "command": command, "created": now_iso(),
                                                   "code_version": code_version(), "data_sha256": data.checksums}})
    print(json.dumps(result) if args.json else format_report(result))


if __name__ == "__main__":
    try:
        with deferred_while_writing():
            main()
    except (DataError, CheckpointError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted")

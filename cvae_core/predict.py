"""Recognise handwritten digits in image files with a trained CVAE.

    python -m cvae_core.predict photo.jpg scan.png [--checkpoint checkpoints/mlp-16] [--json]

Each image (PNG or JPEG, any size, dark ink on light paper or light on dark) goes through the
same MNIST-style preprocessing as the app (``cvae_core.images.preprocess``). Prints the recognised
digit and the calibrated probability of each label (``cvae_core.calibration``), or says that
the image does not look like a digit; with ``--json``, one object per line:
{"file", "label", "probs", "digit", "not_digit_score"} or {"file", "error"}, the error a
sentence for a person. ``digit`` is false when the model judges the input not to be a digit
(then ``label`` is only its best guess) and null when the model cannot tell (no background
condition and no likelihood threshold fitted on distorted validation digits; a note on stderr
says so); ``not_digit_score`` is p(not a digit) for models with a background condition, the best
log-likelihood in nats for the others, null when there is none.
With ``--number`` each file holds a number written by hand (``cvae_core.numbers``): one object
per file {"file", "number", "digits": [{"label", "probs", "digit", "box": [x0, y0, x1, y1]}, ...]},
``number`` the digits read left to right with ``?`` where one is unsure or not a digit.
A bad file (missing, a folder, too large, not an image, damaged, no digit) never stops the
others. Exit code: 0 all recognised, 1 some failed, 2 bad usage or no usable model.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from pathlib import Path

import torch

from cvae_core.calibration import MAX_K, Calibration
from cvae_core.catalogue import default_recogniser, discover
from cvae_core.checkpoints import Checkpoint, CheckpointError, load_checkpoint
from cvae_core.images.preprocess import MAX_BYTES, InputError, prepare_bytes
from cvae_core.inference import classify
from cvae_core.numbers import Recogniser, read_number


def best_checkpoint() -> Checkpoint:
    """The shipped checkpoint that recognises best and loads (``cvae_core.catalogue.default_recogniser``)."""
    return default_recogniser(discover()).ckpt


def read_limited(path: Path) -> bytes:
    """The file's bytes, refusing folders, missing or special files and files over the size limit."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError("No such file.") from None
    except OSError as e:
        raise InputError(f"The file cannot be read ({e.strerror}).") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError("This is a folder, not an image file.")
    if not stat.S_ISREG(info.st_mode):
        raise InputError("This is not a regular file (a device, pipe or socket).")
    if info.st_size > MAX_BYTES:
        raise InputError(f"The file is {info.st_size / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:g} MB ({MAX_BYTES:,} bytes).")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)  # the file may have grown since stat()
    except OSError as e:
        raise InputError(f"The file cannot be read ({e.strerror}).") from None
    if len(data) > MAX_BYTES:
        raise InputError(f"The file is larger than the {MAX_BYTES / 1e6:g} MB limit ({MAX_BYTES:,} bytes).")
    return data


def recognise_file(ckpt: Checkpoint, path: Path, *, k: int | None, seed: int) -> dict:
    prepared = prepare_bytes(read_limited(path))
    gen = torch.Generator().manual_seed(seed)
    cal = Calibration.for_checkpoint(ckpt.info)
    probs, raw, not_digit = classify(ckpt.model, prepared.tensor, k=k, generator=gen, calibration=cal)
    p = probs[0].tolist()
    if not all(0.0 <= v <= 1.0 for v in p):  # NaN fails both comparisons
        raise InputError("The model produced invalid probabilities for this image.")
    flags, score = cal.not_a_digit(raw, not_digit)
    return {
        "file": _shown(path), "label": int(max(range(len(p)), key=p.__getitem__)), "probs": [round(v, 6) for v in p],
        "digit": not bool(flags[0]) if cal.can_tell else None,
        "not_digit_score": None if score is None else round(float(score[0]), 6),
    }


def read_number_file(ckpt: Checkpoint, path: Path, *, k: int | None, seed: int) -> dict:
    reading = read_number(read_limited(path), recogniser=Recogniser(ckpt, k=k, seed=seed))
    return {"file": _shown(path), "number": reading.text, "digits": [d.to_dict() for d in reading.digits]}


def _shown(path: Path) -> str:
    """The path as printable text, even when its bytes are not valid UTF-8."""
    return os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m cvae_core.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("images", nargs="+", type=Path, help="PNG or JPEG files, one digit each (one number with --number)")
    p.add_argument("--number", action="store_true", help="each file is a number of several digits")
    p.add_argument("--checkpoint", default=None, help="default: the shipped model that recognises best")
    p.add_argument("--k", type=int, default=None, help="importance samples per label (default: the model's calibrated K)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage (0 for --help); return it instead
        return int(e.code) if isinstance(e.code, int) else 2
    if args.k is not None and not 1 <= args.k <= MAX_K:
        print(f"error: --k must be between 1 and {MAX_K}", file=sys.stderr)
        return 2
    try:
        ckpt = load_checkpoint(args.checkpoint) if args.checkpoint else best_checkpoint()
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not Calibration.for_checkpoint(ckpt.info).can_tell:
        print(f"note: {ckpt.name} cannot tell whether an image is a digit at all (no \"not a digit\" condition and "
              "no likelihood threshold fitted on distorted validation digits): it always names a digit", file=sys.stderr)
    failed = 0
    for path in args.images:
        try:
            read = read_number_file if args.number else recognise_file
            result = read(ckpt, path, k=args.k, seed=args.seed)
        except InputError as e:
            result = {"file": _shown(path), "error": str(e)}
        except Exception as e:  # one file must never stop the others; say what happened
            result = {"file": _shown(path), "error": f"Could not process this file ({type(e).__name__}: {e})."}
        if "error" in result:
            failed += 1
        if args.json:
            print(json.dumps(result), flush=True)
        elif "error" in result:
            print(f"{result['file']}: error: {result['error']}", flush=True)
        elif args.number:
            n = len(result["digits"])
            print(f"{result['file']}: {result['number']}  ({n} digit{'s' * (n != 1)})", flush=True)
        else:
            probs = "  ".join(f"{d}:{q:.3f}" for d, q in enumerate(result["probs"]))
            answer = result["label"] if result["digit"] is not False else f"not a digit (best guess {result['label']})"
            print(f"{result['file']}: {answer}  ({probs})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

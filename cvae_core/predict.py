"""Recognise handwritten digits in image files with a trained CVAE.

    python -m cvae_core.predict photo.jpg scan.png [--checkpoint checkpoints/mlp-16] [--json]

Each image (PNG or JPEG, any size, dark ink on light paper or light on dark) goes through the
same MNIST-style preprocessing as the app. Prints the recognised digit and the probability of
each label; with ``--json``, one object per line: {"file", "label", "probs"} or {"file", "error"}.
A bad file never stops the others. Exit code: 0 all recognised, 1 some failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from cvae_core.checkpoints import Checkpoint, CheckpointError, list_checkpoints, load_checkpoint, read_metadata
from cvae_core.inference import DEFAULT_K, classify
from cvae_core.preprocess import MAX_BYTES, InputError, prepare_bytes


def best_checkpoint_path() -> Path:
    """The shipped checkpoint with the highest recorded recognition accuracy."""
    scored = []
    for path in list_checkpoints():
        try:
            accuracy = read_metadata(path).get("evaluation", {}).get("accuracy")
        except CheckpointError:
            continue
        if accuracy is not None:
            scored.append((accuracy, path))
    if not scored:
        raise CheckpointError("no evaluated checkpoint found; train one with python -m cvae_core.train")
    return max(scored)[1]


def read_limited(path: Path) -> bytes:
    """The file's bytes, refusing folders, missing files and files over the size limit."""
    if not path.exists():
        raise InputError("No such file.")
    if not path.is_file():
        raise InputError("Not a regular file.")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise InputError(f"The file is {size / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB.")
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"The file cannot be read ({e.strerror}).") from None


def recognise_file(ckpt: Checkpoint, path: Path, *, k: int, seed: int) -> dict:
    prepared = prepare_bytes(read_limited(path))
    gen = torch.Generator().manual_seed(seed)
    probs, _ = classify(ckpt.model, prepared.tensor, k=k, generator=gen)
    p = probs[0].tolist()
    return {"file": str(path), "label": int(max(range(len(p)), key=p.__getitem__)), "probs": [round(v, 6) for v in p]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", type=Path, help="PNG or JPEG files, one digit each")
    p.add_argument("--checkpoint", default=None, help="default: the shipped model that recognises best")
    p.add_argument("--k", type=int, default=DEFAULT_K, help=f"importance samples per label (default {DEFAULT_K})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    args = p.parse_args(argv)
    if args.k < 1:
        p.error("--k must be at least 1")
    try:
        ckpt = load_checkpoint(args.checkpoint or best_checkpoint_path())
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.images:
        try:
            result = recognise_file(ckpt, path, k=args.k, seed=args.seed)
        except InputError as e:
            failed += 1
            result = {"file": str(path), "error": str(e)}
        if args.json:
            print(json.dumps(result), flush=True)
        elif "error" in result:
            print(f"{path}: error: {result['error']}", flush=True)
        else:
            probs = "  ".join(f"{d}:{q:.3f}" for d, q in enumerate(result["probs"]))
            print(f"{path}: {result['label']}  ({probs})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

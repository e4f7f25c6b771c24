"""A child process for the archive's crash and multi-process tests: saves items until stopped.

    python tests/archive_writer.py SQLALCHEMY_URL [--count N] [--seed S] [--hang-before-commit]

After each save has committed it prints ``<id> <fingerprint>`` and flushes, so whoever kills it
knows exactly which rows it was told are safe. Failed saves print ``failed <message>``. With
``--hang-before-commit`` its first save prints ``committing <fingerprint>`` with the row written
but not yet committed, and then waits there to be killed.

``cvae_core.archive`` is imported without running ``cvae_core/__init__.py``, which imports torch
(its models) and would make every child slow to start; the archive itself never needs torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import types
from pathlib import Path

import numpy as np
from sqlalchemy import event

CORE = Path(__file__).resolve().parent.parent / "cvae_core"


def load_store() -> types.ModuleType:
    """``cvae_core.archive``, with a bare ``cvae_core`` package standing in for the real one."""
    if "cvae_core" not in sys.modules:
        package = types.ModuleType("cvae_core")
        package.__path__ = [str(CORE)]
        sys.modules["cvae_core"] = package
    return importlib.import_module("cvae_core.archive")


def record(rng: np.random.Generator, i: int) -> dict:
    return {
        "model": f"writer-{i % 3}", "source": "canvas" if i % 2 else "upload", "label": i % 10,
        "confidence": float(rng.random()), "sigma": round(float(rng.random()) * 0.5, 3),
        "input_image": rng.random((28, 28)), "recon_image": rng.random((28, 28)), "original": None,
        "filename": f"writer {i}.png", "true_label": (i + 1) % 10 if i % 4 else None,
    }


def hang_here(key: str):
    """A "commit" listener: the row is written, its transaction not yet committed; wait to be killed."""

    def hang(_conn) -> None:
        print(f"committing {key}", flush=True)
        time.sleep(3600)

    return hang


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=0, help="saves to make (0: until killed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang-before-commit", action="store_true", help="stop inside the first save's commit")
    args = parser.parse_args(argv)
    store = load_store()
    archive = store.Archive.from_url(args.url)
    rng = np.random.default_rng(args.seed)
    i = 0
    while args.count == 0 or i < args.count:
        item = record(rng, i)
        if args.hang_before_commit:
            event.listen(archive.engine, "commit", hang_here(store.fingerprint(item)))
        try:
            item_id = archive.save(item)
        except store.ArchiveError as e:
            print(f"failed {e}", flush=True)
        else:
            print(f"{item_id} {store.fingerprint(item)}", flush=True)
        i += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A child process for the archive's crash and multi-process tests: saves items until stopped.

    python tests/archive_writer.py SQLALCHEMY_URL [--count N] [--seed S]

After each save has committed it prints ``<id> <fingerprint>`` and flushes, so whoever kills it
knows exactly which rows it was told are safe. Failed saves print ``failed <message>``.

The store module is loaded from its file alone: importing the ``cvae_core`` package would also
import torch (its ``__init__`` re-exports the models), which would make every child slow to start.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

STORE = Path(__file__).resolve().parent.parent / "cvae_core" / "archive.py"


def load_store():
    spec = importlib.util.spec_from_file_location("archive_store", STORE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


def record(rng: np.random.Generator, i: int) -> dict:
    return {
        "model": f"writer-{i % 3}", "source": "canvas" if i % 2 else "upload", "label": i % 10,
        "confidence": float(rng.random()), "sigma": round(float(rng.random()) * 0.5, 3),
        "input_image": rng.random((28, 28)), "recon_image": rng.random((28, 28)), "original": None,
        "filename": f"writer {i}.png",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=0, help="saves to make (0: until killed)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    store = load_store()
    archive = store.Archive.from_url(args.url)
    rng = np.random.default_rng(args.seed)
    i = 0
    while args.count == 0 or i < args.count:
        item = record(rng, i)
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

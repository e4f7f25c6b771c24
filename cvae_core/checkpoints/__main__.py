"""Check or bless the checkpoints of a folder.

    python -m cvae_core.checkpoints manifest [FOLDER]     # write FOLDER/MANIFEST.sha256
    python -m cvae_core.checkpoints verify [FOLDER]       # load every checkpoint, report each

FOLDER defaults to ``$CVAE_CHECKPOINT_DIR``, else the committed ``checkpoints/``. ``verify``
exits 0 when every checkpoint loads, 1 otherwise (or when there is none).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cvae_core.catalogue import discover
from cvae_core.checkpoints import CheckpointError, checkpoint_dir, write_manifest
from cvae_core.interrupts import deferred_while_writing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m cvae_core.checkpoints", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("manifest", "write FOLDER/MANIFEST.sha256"), ("verify", "load every checkpoint, report each")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("folder", nargs="?", default=None, help=f"default: {checkpoint_dir()}")
    args = p.parse_args(argv)
    folder = Path(args.folder) if args.folder else checkpoint_dir()
    if args.command == "manifest":
        try:
            path = write_manifest(folder)
        except (CheckpointError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        count = sum(1 for line in path.read_bytes().splitlines() if line.strip())
        print(f"wrote {path} ({count} files)")
        return 0
    entries = [entry.load() for entry in discover(folder)]
    for entry in entries:
        print(f"{entry.name}: {'ok' if entry.ok else 'UNAVAILABLE: ' + str(entry.error)}")
    if not entries:
        print(f"no checkpoints in {folder}")
    return 0 if entries and all(e.ok for e in entries) else 1


if __name__ == "__main__":
    with deferred_while_writing():
        code = main()
    sys.exit(code)

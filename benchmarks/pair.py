"""The conv and MLP recognisers reading together (a product of experts, ``cvae_core.ensemble``) against
each of them alone, on the same test digits, corruptions and held-out letters.

    python -m benchmarks.pair conv-16-recogniser mlp-16-recogniser            # 2,000 test digits
    python -m benchmarks.pair conv-16-recogniser mlp-16-recogniser --limit 500 --no-write

Prints clean accuracy and ECE, mean corruption accuracy and the share of letters flagged for each
and for the pair, and writes them into ``benchmarks/results.json`` under ``pair``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

import torch

from benchmarks.paths import RESULTS_JSON
from cvae_core.checkpoints import CheckpointError, checkpoint_dir, code_version, load_checkpoint, now_iso
from cvae_core.data import DataError, load_mnist
from cvae_core.ensemble import measure_pair


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs=2, help="two recognisers (paths without suffix, or names in checkpoints/)")
    p.add_argument("--limit", type=int, default=2000, help="test digits measured (default 2000)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (else $CVAE_DATA_DIR)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: every core)")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        ckpts = [load_checkpoint(c if "/" in c else checkpoint_dir() / c) for c in args.checkpoints]
        data = load_mnist(args.data_dir)
    except (CheckpointError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if ckpts[0].config.num_conditions != ckpts[1].config.num_conditions:
        print("error: the two recognisers must both have a 'not a digit' condition, or neither", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    r = measure_pair(ckpts, data.test_images[: args.limit], data.test_labels[: args.limit])
    r.update(seconds=round(time.perf_counter() - t0, 1), command=shlex.join(["python", "-m", "benchmarks.pair", *(argv or sys.argv[1:])]),
             created=now_iso(), code_version=code_version())
    for m in [*r["members"], "pair"]:
        print(f"{m:>22}: clean {100 * r['clean'][m]['accuracy']:.2f} % (ECE {100 * r['clean'][m]['ece']:.2f}), "
              f"mean corruption {100 * r['mean_corruption_accuracy'][m]:.2f} %, "
              f"letters flagged {100 * (r['letters_flagged'][m] or 0):.1f} %")
    if not args.no_write:
        results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
        results.setdefault("sections", {})["pair"] = r
        RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run the benchmarks and write ``benchmarks/results.json`` and ``benchmarks/results.md``.

    python -m benchmarks                      # everything, a few minutes
    python -m benchmarks --quick              # few repetitions, to check that it all runs
    python -m benchmarks --only browser       # one section; the others are kept from results.json
    python -m benchmarks --only browser --server-python OTHER/bin/python --tag cpu-torch
                                              # the app under another environment, kept beside
    python -m benchmarks --only memory        # resident memory per part: imports, each model, each session
    python -m benchmarks --only load          # N concurrent sessions on one server core (benchmarks/load.py;
                                              # python -m benchmarks.load for its own flags)
    python -m benchmarks --only numbers       # reading written numbers (benchmarks/numbers.py)
    python -m benchmarks --only training      # the Train page: first curve point, the quick preset (benchmarks/training.py)

Models come from the checkpoint folder (``$CVAE_CHECKPOINT_DIR`` or ``checkpoints/``), MNIST from
``$CVAE_DATA_DIR``. Timings are only as good as the machine is quiet: the load average is recorded
before and after every section, so a noisy run shows in the results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from benchmarks import browser, latency, limit, load, memory, numbers, scaling, tables, throughput, training
from benchmarks.machine import load_average, machine, use_all_cores
from benchmarks.paths import RESULTS_JSON, RESULTS_MD
from benchmarks.shipped import NoModels, shipped_models
from cvae_core.checkpoints import checkpoint_dir, now_iso
from cvae_core.data import DataError, load_mnist

SECTIONS = ("latency", "throughput", "limit", "scaling", "browser", "load", "memory", "training", "numbers")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few repetitions: checks that everything runs")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=None, help="run these sections only")
    p.add_argument("--skip", nargs="+", choices=SECTIONS, default=(), help="leave these sections out")
    p.add_argument("--trials", type=int, default=None, help="browser interaction trials per app (default 16)")
    p.add_argument("--cold-trials", type=int, default=None, help="cold starts per app (default 5)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: every core, as the app)")
    p.add_argument("--server-python", default=None,
                   help="Python interpreter for the Streamlit servers (default: this one)")
    p.add_argument("--tag", default=None,
                   help="store the sections under NAME@TAG, beside the main results (e.g. another torch build)")
    args = p.parse_args(argv)

    chosen = [s for s in (args.only or SECTIONS) if s not in args.skip]
    threads = use_all_cores(args.threads)
    try:
        models = shipped_models()
    except NoModels as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        data = load_mnist(checksums=False) if {"throughput", "limit", "scaling", "numbers"} & set(chosen) else None
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}
    if args.only and RESULTS_JSON.exists():  # a partial run updates the sections it ran
        results = json.loads(RESULTS_JSON.read_text())
    results.update(generated=now_iso(), quick=args.quick, machine=machine(), checkpoint_dir=str(checkpoint_dir()),
                   models=[m.name for m in models])
    results["machine"]["torch_threads"] = threads
    sections = results.setdefault("sections", {})
    print(f"benchmarking {', '.join(m.name for m in models)} on {results['machine']['cpu']} "
          f"({threads} threads), load average {load_average()}", flush=True)
    for name in chosen:
        before, t0 = load_average()[0], time.perf_counter()
        print(f"{name} ...", flush=True)
        if name == "latency":
            out = latency.run(models, quick=args.quick)
        elif name == "throughput":
            out = throughput.run(models, quick=args.quick, data=data)
        elif name == "limit":
            out = limit.run(models, quick=args.quick, throughput=sections.get("throughput"), data=data)
        elif name == "scaling":
            out = scaling.run(models, quick=args.quick, data=data)
        elif name == "training":
            out = training.run(quick=args.quick)
        elif name == "numbers":
            out = numbers.run(quick=args.quick, data=data)
        elif name == "memory":
            out = memory.run(quick=args.quick)
        elif name == "load":
            try:
                out = load.run(quick=args.quick)
                for kept in ("validation", "reruns"):  # measured by their own flags of benchmarks.load
                    if kept in sections.get("load", {}):
                        out[kept] = sections["load"][kept]
            except Exception as e:  # as for the browser section: the others are kept
                print(f"  load benchmark failed: {type(e).__name__}: {e}", file=sys.stderr)
                out = {"skipped": f"failed: {type(e).__name__}: {str(e).splitlines()[0]}"}
        else:
            try:
                out = browser.run(quick=args.quick, trials=args.trials, cold_trials=args.cold_trials,
                                  python=args.server_python)
            except Exception as e:  # Chromium or a server failing must not lose the other sections
                print(f"  browser benchmark failed: {type(e).__name__}: {e}", file=sys.stderr)
                out = {"skipped": f"failed: {type(e).__name__}: {str(e).splitlines()[0]}"}
        out["load_average"] = [before, load_average()[0]]
        out["seconds"] = round(time.perf_counter() - t0, 1)
        out["quick"] = args.quick
        out["generated"] = now_iso()  # sections of a partial run keep their own dates
        sections[f"{name}@{args.tag}" if args.tag else name] = out
        RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")  # keep what is done if a later part fails
    RESULTS_MD.write_text(tables.markdown(results, heading="#"))
    print(tables.targets_table(results))
    print(f"wrote {RESULTS_JSON} and {RESULTS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

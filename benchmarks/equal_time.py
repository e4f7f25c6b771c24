"""The conv and MLP recognisers at equal training time: is the conv CVAE better per minute of training,
or only because it trained six times longer?

    python -m benchmarks.equal_time                   # ~30 min on 2 quiet cores
    python -m benchmarks.equal_time --limit 500 --no-write
    python -m benchmarks.equal_time --quick --limit 30 --no-write      # a few hundred digits: checks that it runs

1. **The exchange rate.** Both recognisers' recipe commands (``checkpoints/recipe.toml``) train two
   epochs on the same ``PROBE_DIGITS`` training digits, one after the other in this run; the second
   epoch's training seconds of each give how many MLP epochs one conv epoch costs. The ratio of two
   timings taken minutes apart holds on a noisy machine where an absolute time would not.
2. **The conv at the MLP's budget.** The conv recogniser's own recipe command, with ``--epochs``
   cut to the MLP's epochs divided by that ratio (its learning-rate schedule planned for the
   shorter run), then calibrated and measured as the recipe does the shipped one.
3. **The same test digits for all three**: the first ``--limit`` test digits, every corruption and
   the held-out letters (``cvae_core.robustness``), for the MLP recogniser, the conv at equal time
   and the shipped conv (20 epochs). A shipped model's committed suite is reused when it was
   measured on exactly these digits.

The figures go to ``benchmarks/results.json`` under ``equal_time``; the README's Results and the
Compare page show them. The short conv run is kept in ``--out`` (a temporary folder by default); run again with the same
``--out``, an interrupted benchmark reuses its probes and resumes the short run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import results_file
from benchmarks.machine import load_average, machine
from cvae_core.checkpoints import checkpoint_dir, code_version, load_checkpoint, now_iso
from cvae_core.recipe import Step, read_recipe

MLP, CONV = "mlp-16-recogniser", "conv-16-recogniser"
PROBE_DIGITS = 4000  # training digits of each timing run: ~1 min for the conv on 2 cores
QUICK = ["--subset", "300", "--val-size", "200", "--eval-size", "100"]  # --quick: every training this small
LETTER_FAMILIES = ("letters (fonts)", "letters (pen strokes)")


def recipe_step(name: str) -> Step:
    step = next((s for s in read_recipe() if s.name == name), None)
    if step is None:
        raise SystemExit(f"error: {name} is not in checkpoints/recipe.toml")
    return step


def with_option(words: list[str], option: str, value: str) -> list[str]:
    """``words`` with ``option``'s value replaced (or the option added)."""
    if option in words:
        i = words.index(option)
        return [*words[: i + 1], value, *words[i + 2:]]
    return [*words, option, value]


def run(words: list[str], *, threads: int | None, data_dir: str | None) -> str:
    """Run one ``python -m ...`` command of the project; its standard output."""
    extra = (["--threads", str(threads)] if threads else []) + (["--data-dir", data_dir] if data_dir else [])
    argv = [sys.executable, *words[1:], *extra]
    print("$", shlex.join(["python", *words[1:]]), flush=True)
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout


def epoch_seconds(step: Step, folder: Path, *, digits: int, **how: Any) -> float:
    """Training seconds of the second epoch of ``step``'s command on ``digits`` training digits."""
    words = shlex.split(step.train)
    for option, value in (("--epochs", "2"), ("--subset", str(digits)), ("--val-size", "200"),
                          ("--eval-size", "100"), ("--out", str(folder / f"probe-{step.name}"))):
        words = with_option(words, option, value)
    done = folder / f"probe-{step.name}.json"
    if not done.exists():  # a probe of an earlier, interrupted run in the same --out is reused
        run(words, **how)
    history = json.loads(done.read_text())["history"]
    return float(history[-1]["seconds"])


def suite(path: Path, *, limit: int, write: bool, **how: Any) -> dict[str, Any]:
    """The robustness suite of ``path`` on the first ``limit`` test digits (its committed one when that
    was measured on exactly these digits)."""
    committed = load_checkpoint(path).info.robustness
    if committed is not None and committed.n == limit and not write:
        print(f"{path.name}: the committed suite (first {limit:,} test digits)", flush=True)
        return json.loads(path.with_suffix(".json").read_text())["robustness"]
    words = ["python", "-m", "cvae_core.robustness", "--checkpoint", str(path), "--limit", str(limit), "--json"]
    return json.loads(run(words if write else [*words, "--no-write"], **how).splitlines()[-1])


def row(name: str, path: Path, measured: dict[str, Any], *, epochs: int) -> dict[str, Any]:
    families = measured["ood"]["families"]
    letters = [families[f] for f in LETTER_FAMILIES if f in families]
    info = load_checkpoint(path).info
    return {
        "name": name, "epochs": epochs, "training_minutes": round((info.training.seconds or 0) / 60, 1),
        "clean_accuracy": measured["clean"]["accuracy"], "clean_ece": measured["clean"]["ece"],
        "mean_accuracy": measured["mean_accuracy"], "mean_accuracy_held_out": measured["mean_accuracy_held_out"],
        "mean_ece": measured["mean_ece"],
        "letters_flagged": sum(f["detected"] * f["n"] for f in letters) / max(1, sum(f["n"] for f in letters)),
        "digits_flagged": measured["ood"]["digits_flagged"],
    }


def recorded_command(argv: list[str]) -> str:
    """The command as recorded with the figures: ``--out`` (where the scratch model was kept, a path
    of that machine) changes no figure and is left out."""
    words = list(argv)
    if "--out" in words:
        del words[words.index("--out"): words.index("--out") + 2]
    return shlex.join(["python", "-m", "benchmarks.equal_time", *(w for w in words if not w.startswith("--out="))])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=2000, help="test digits measured (default 2000)")
    p.add_argument("--out", default=None, help="folder for the short conv run (default: a temporary one)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of each command (default: every core)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (else $CVAE_DATA_DIR)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--quick", action="store_true", help="a few hundred digits for every training: checks that it runs")
    args = p.parse_args(argv)
    how = {"threads": args.threads, "data_dir": args.data_dir}
    mlp, conv = recipe_step(MLP), recipe_step(CONV)
    mlp_epochs = int(shlex.split(mlp.train)[shlex.split(mlp.train).index("--epochs") + 1])
    conv_epochs = int(shlex.split(conv.train)[shlex.split(conv.train).index("--epochs") + 1])
    start, before = time.perf_counter(), load_average()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        digits = 300 if args.quick else PROBE_DIGITS
        seconds = {s.name: epoch_seconds(s, folder, digits=digits, **how) for s in (mlp, conv)}
        ratio = seconds[CONV] / seconds[MLP]
        epochs = max(1, round(mlp_epochs / ratio))
        print(f"one conv epoch costs {ratio:.2f} MLP epochs: the conv trains {epochs} epochs", flush=True)
        short = folder / f"{CONV}-{epochs}-epochs"
        words = with_option(with_option(shlex.split(conv.train), "--epochs", str(epochs)), "--out", str(short))
        words += QUICK if args.quick else []
        if not short.with_suffix(".json").exists() or short.with_suffix(".resume.pt").exists():
            if short.with_suffix(".resume.pt").exists():  # its own recorded arguments, --data-dir among them
                run(["python", "-m", "cvae_core.train", "--resume", str(short)], threads=args.threads, data_dir=None)
            else:
                run(words, **how)
            run(["python", "-m", "cvae_core.robustness", "--checkpoint", str(short), "--calibrate-only",
                 *(["--calibration-size", "200"] if args.quick else [])], **how)
        shipped = checkpoint_dir()
        rows = [row(MLP, shipped / MLP, suite(shipped / MLP, limit=args.limit, write=False, **how), epochs=mlp_epochs),
                row(f"{CONV}, {epochs} epochs", short, suite(short, limit=args.limit, write=True, **how), epochs=epochs),
                row(CONV, shipped / CONV, suite(shipped / CONV, limit=args.limit, write=False, **how), epochs=conv_epochs)]
    out = {
        "n": args.limit, "ratio": round(ratio, 3), "probe_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "probe_digits": PROBE_DIGITS, "conv_epochs": epochs, "mlp_epochs": mlp_epochs, "rows": rows,
        "seconds": round(time.perf_counter() - start, 1), "load_before": before, "load_after": load_average(),
        "command": recorded_command(sys.argv[1:] if argv is None else argv),
        "generated": now_iso(), "code_version": code_version(), "machine": machine(),
    }
    for r in rows:
        print(f"{r['name']:34s} {r['epochs']:3d} epochs {r['training_minutes']:6.1f} min  clean {100 * r['clean_accuracy']:.2f} %"
              f"  corruptions {100 * r['mean_accuracy']:.2f} %  held out {100 * r['mean_accuracy_held_out']:.2f} %"
              f"  letters flagged {100 * r['letters_flagged']:.1f} %")
    if not args.no_write:
        results_file.write_section("equal_time", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

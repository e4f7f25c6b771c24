"""How well handwritten numbers are read: generated numbers of MNIST test digits and pen strokes.

    python -m benchmarks.numbers                  # 1,200 numbers; writes the "numbers" section of results.json
    python -m benchmarks.numbers --count 200      # fewer, to check that it runs
    python -m benchmarks --only numbers           # the same, as part of ``make bench``
    python -m benchmarks.numbers --readme README.md   # no measuring: the table from results.json into the README
    python -m benchmarks.numbers --dev            # the development set: never written, never the test digits

The numbers come from ``cvae_core.numbers.synth`` (seeded: every run reads the same ones),
written out as PNG files and read by ``cvae_core.numbers.read_number`` with the default
recogniser, end to end, as ``python -m cvae_core.predict --number`` reads a file. A digit is "in
place" when a box the reader found covers it (horizontal intersection over union at least
``MATCH``) and reads as its label; ``?`` is never right (the "best guess" figure counts the
label behind a ``?`` too). Reported: the count of digits right, the
digits right in place, the exact strings by length, the touching pairs (both digits found apart,
and both read right), numbers per second, and a 10-digit number end to end on one core (torch on
one thread). Timings are only as good as the machine is quiet: the load average is recorded.

``--dev`` reads numbers made the same way from the MNIST *training* digits that the recogniser
held out for validation (its recorded split, so it never trained on them), with a seed of their
own. The segmentation's settings are chosen there; the test digits only ever measure them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.machine import load_average
from benchmarks.paths import RESULTS_JSON
from benchmarks.timing import summarise
from cvae_core.checkpoints import now_iso
from cvae_core.data import DataError, load_mnist
from cvae_core.images.preprocess import InputError
from cvae_core.numbers import NumberReading, Recogniser, read_number, synth

COUNT = 1200  # numbers read for the figures (150 of each length, a quarter of them pen strokes)
QUICK_COUNT = 160
SEED = 2026
MATCH = 0.5  # horizontal IoU for a found box to stand for a written digit
TEN_DIGIT_RUNS = 40
DEV_COUNT, DEV_SEED = 600, 777  # --dev: numbers of validation digits
README_START, README_END = "<!-- numbers:start -->", "<!-- numbers:end -->"
# Issue 17's targets: name -> (comparison, bound, unit).
TARGETS: dict[str, tuple[str, float, str]] = {
    "digit count right": (">=", 98.0, "%"),
    "digits right in place": (">=", 97.0, "%"),
    "exact string, 5 digits": (">=", 88.0, "%"),
    "touching pairs split right": (">=", 85.0, "%"),
    "10-digit number, one core, p50": ("<=", 300.0, "ms"),
}


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def _iou_x(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    inter = min(a[2], b[2]) - max(a[0], b[0])
    union = max(a[2], b[2]) - min(a[0], b[0])
    return max(inter, 0) / max(union, 1)


def match(truth: tuple[tuple[int, ...], ...], found: list[tuple[int, ...]]) -> list[int | None]:
    """For each written digit, the index of the found box that stands for it (or None): pairs by
    horizontal IoU, best first, each box used once."""
    pairs = sorted(((_iou_x(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)), reverse=True)
    out: list[int | None] = [None] * len(truth)
    used: set[int] = set()
    for iou, i, j in pairs:
        if iou < MATCH:
            break
        if out[i] is None and j not in used:
            out[i] = j
            used.add(j)
    return out


def score(truth: synth.Synth, reading: NumberReading | None) -> dict[str, Any]:
    """One number's tallies: count right, digits right in place, exact, touching pairs apart / right."""
    n = len(truth.text)
    if reading is None:
        return {"length": n, "style": truth.style, "count_right": False, "in_place": 0, "guessed": 0, "exact": False,
                "touching": sum(truth.touching), "touching_apart": 0, "touching_right": 0}
    found = [d.box for d in reading.digits]
    matched = match(truth.boxes, found)
    right = [j is not None and reading.digits[j].shown == truth.text[i] for i, j in enumerate(matched)]
    guessed = [j is not None and str(reading.digits[j].label) == truth.text[i] for i, j in enumerate(matched)]
    touching = [i for i, t in enumerate(truth.touching) if t]
    return {
        "length": n, "style": truth.style, "count_right": len(found) == n, "in_place": int(sum(right)),
        "guessed": int(sum(guessed)),
        "exact": reading.text == truth.text, "touching": len(touching),
        "touching_apart": sum(matched[i] is not None and matched[i + 1] is not None for i in touching),
        "touching_right": sum(right[i] and right[i + 1] for i in touching),
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Percentages over the tallies of ``score``."""
    def pct(a: float, b: float) -> float | None:
        return None if b == 0 else round(100 * a / b, 2)

    digits = sum(r["length"] for r in rows)
    touching = sum(r["touching"] for r in rows)
    by_length = {}
    for n in sorted({r["length"] for r in rows}):
        of = [r for r in rows if r["length"] == n]
        by_length[str(n)] = {"numbers": len(of), "exact_percent": pct(sum(r["exact"] for r in of), len(of))}
    return {
        "numbers": len(rows), "digits": digits, "touching_pairs": touching,
        "count_right_percent": pct(sum(r["count_right"] for r in rows), len(rows)),
        "in_place_percent": pct(sum(r["in_place"] for r in rows), digits),
        "guessed_percent": pct(sum(r["guessed"] for r in rows), digits),
        "exact_percent": pct(sum(r["exact"] for r in rows), len(rows)),
        "touching_apart_percent": pct(sum(r["touching_apart"] for r in rows), touching),
        "touching_right_percent": pct(sum(r["touching_right"] for r in rows), touching),
        "by_length": by_length,
    }


def read_all(numbers: list[synth.Synth], recogniser: Recogniser) -> tuple[list[dict[str, Any]], float]:
    """Every number read from its PNG bytes: (tallies, seconds in all)."""
    files = [png(s.image) for s in numbers]
    rows = []
    t0 = time.perf_counter()
    for s, data in zip(numbers, files, strict=True):
        try:
            reading = read_number(data, recogniser=recogniser)
        except InputError:
            reading = None
        rows.append(score(s, reading))
    return rows, time.perf_counter() - t0


def ten_digit_ms(pool: tuple[np.ndarray, np.ndarray], recogniser: Recogniser, *, runs: int) -> dict[str, float]:
    """End to end, PNG bytes to the reading, of 10-digit numbers (each a different one) with torch on one thread."""
    numbers = [png(s.image) for s in synth.numbers(*pool, count=runs, seed=SEED + 1, lengths=(10,))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        read_number(numbers[0], recogniser=recogniser)  # warm-up
        samples = []
        for data in numbers:
            t0 = time.perf_counter()
            with contextlib.suppress(InputError):
                read_number(data, recogniser=recogniser)
            samples.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return summarise(samples)


def run(*, quick: bool = False, data: Any = None, count: int | None = None) -> dict[str, Any]:
    """The "numbers" section of ``benchmarks/results.json``."""
    data = data if data is not None else load_mnist(checksums=False)
    pool = (data.test_images.numpy(), data.test_labels.numpy())
    count = count or (QUICK_COUNT if quick else COUNT)
    recogniser = Recogniser.default()
    numbers = list(synth.numbers(*pool, count=count, seed=SEED))
    rows, seconds = read_all(numbers, recogniser)
    out = {
        "model": recogniser.ckpt.name, "seed": SEED, "torch_threads": torch.get_num_threads(),
        "all": summary(rows),
        "mnist": summary([r for r in rows if r["style"] == "mnist"]),
        "pen": summary([r for r in rows if r["style"] == "pen"]),
        "numbers_per_s": round(len(rows) / seconds, 2),
        "ten_digit_one_core_ms": ten_digit_ms(pool, recogniser, runs=10 if quick else TEN_DIGIT_RUNS),
    }
    out["targets"] = target_rows(out)
    return out


def dev(data: Any, *, count: int = DEV_COUNT) -> dict[str, Any]:
    """The development set's figures (``--dev``): numbers of the recogniser's validation digits."""
    from cvae_core.robustness import validation_split

    recogniser = Recogniser.default()
    val_x, val_y = validation_split(data, recogniser.ckpt.info.training.train_config)
    numbers = list(synth.numbers(val_x.numpy(), val_y.numpy(), count=count, seed=DEV_SEED))
    rows, seconds = read_all(numbers, recogniser)
    return {"model": recogniser.ckpt.name, "seed": DEV_SEED, "all": summary(rows),
            "mnist": summary([r for r in rows if r["style"] == "mnist"]),
            "pen": summary([r for r in rows if r["style"] == "pen"]), "numbers_per_s": round(len(rows) / seconds, 2)}


def target_rows(section: dict[str, Any]) -> list[dict[str, Any]]:
    a = section["all"]
    values = {
        "digit count right": a["count_right_percent"],
        "digits right in place": a["in_place_percent"],
        "exact string, 5 digits": (a["by_length"].get("5") or {}).get("exact_percent"),
        "touching pairs split right": a["touching_right_percent"],
        "10-digit number, one core, p50": section["ten_digit_one_core_ms"]["p50"],
    }
    rows = []
    for name, (op, bound, unit) in TARGETS.items():
        v = values[name]
        met = None if v is None else (v <= bound if op == "<=" else v >= bound)
        rows.append({"target": name, "value": v, "bound": f"{op} {bound:g} {unit}", "met": met})
    return rows


def markdown(section: dict[str, Any]) -> str:
    """The section as the README's tables."""
    lines = ["| measure | target | measured | met |", "|---|---|---|---|"]
    for r in section["targets"]:
        shown = "—" if r["value"] is None else f"{r['value']:g}"
        lines.append(f"| {r['target']} | {r['bound']} | {shown} | {'—' if r['met'] is None else 'yes' if r['met'] else '**no**'} |")
    lines += ["", *sets_table(section)]
    by = section["all"]["by_length"]
    lines += ["", "| digits | " + " | ".join(by) + " |", "|---|" + "---|" * len(by),
              "| exact strings | " + " | ".join(f"{v['exact_percent']} %" for v in by.values()) + " |"]
    t = section["ten_digit_one_core_ms"]
    lines += ["", f"{section['model']}, {section['numbers_per_s']} numbers/s ({section['torch_threads']} torch threads); "
              f"a 10-digit number end to end on one core: p50 {t['p50']:.0f} ms, p95 {t['p95']:.0f} ms."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=COUNT, help=f"numbers to read (default {COUNT})")
    p.add_argument("--no-write", action="store_true", help="print only; leave results.json as it is")
    p.add_argument("--readme", type=Path, default=None,
                   help=f"measure nothing: write the table of results.json between {README_START} and "
                        f"{README_END} in this file")
    p.add_argument("--dev", action="store_true",
                   help=f"the development set instead ({DEV_COUNT} numbers of the recogniser's validation digits, "
                        "unless --count): printed, never written")
    args = p.parse_args(argv)
    if args.readme is not None:
        return write_readme(args.readme)
    try:
        data = load_mnist(checksums=False)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dev:
        section = dev(data, count=args.count if args.count != COUNT else DEV_COUNT)
        print(json.dumps({k: section[k] for k in ("model", "seed", "numbers_per_s")}))
        print("\n".join(sets_table(section)))
        return 0
    before, t0 = load_average()[0], time.perf_counter()
    out = run(data=data, count=args.count)
    out.update(load_average=[before, load_average()[0]], seconds=round(time.perf_counter() - t0, 1),
               quick=args.count < COUNT, generated=now_iso())
    print(markdown(out))
    if not args.no_write:
        results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
        results.setdefault("sections", {})["numbers"] = out
        RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote the numbers section of {RESULTS_JSON}")
    return 0


def sets_table(section: dict[str, Any]) -> list[str]:
    """One row per set (all, MNIST digits, pen strokes): the counts, the places and the touching pairs."""
    head = ["set", "numbers", "count right", "digits in place", "best guess in place", "exact", "touching pairs",
            "apart", "both right"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in ("all", "mnist", "pen"):
        s = section[name]
        lines.append(f"| {name} | {s['numbers']} | {s['count_right_percent']} % | {s['in_place_percent']} % | "
                     f"{s['guessed_percent']} % | {s['exact_percent']} % | {s['touching_pairs']} | "
                     f"{s['touching_apart_percent']} % | {s['touching_right_percent']} % |")
    return lines


def write_readme(readme: Path) -> int:
    """The table of the numbers section of results.json, between the README's markers."""
    section = (json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}).get("sections", {}).get("numbers")
    if section is None:
        print(f"error: {RESULTS_JSON} has no numbers section: run python -m benchmarks --only numbers", file=sys.stderr)
        return 1
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        print(f"error: {readme} has no {README_START} ... {README_END} markers", file=sys.stderr)
        return 1
    note = (f"Measured {section.get('generated', '')}, 1-minute load average {section.get('load_average')}"
            f"{' (a quick run)' if section.get('quick') else ''}:\n\n")
    readme.write_text(text[:start] + f"{README_START}\n{note}{markdown(section)}\n{README_END}" + text[end + len(README_END):])
    print(f"wrote the table into {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

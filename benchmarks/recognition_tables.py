"""The README's "Recognition outside the test set" tables, from the ``robustness`` block that
``python -m cvae_core.robustness`` writes into each checkpoint's metadata.

Used by ``benchmarks.report``; every figure is read from the checkpoints, none is typed here.
"""

from __future__ import annotations

from typing import Any

from cvae_core.checkpoints import Checkpoint
from cvae_core.corruptions import CORRUPTIONS

# Issue targets, for the best CVAE recogniser (the CNN reference is reported beside it, never judged).
TARGETS = (
    ("clean test accuracy", "clean_accuracy", ">=", 0.99),
    ("mean corruption accuracy", "mean_accuracy", ">=", 0.93),
    ("Gaussian noise σ = 0.3", "accuracy_noise_0.3", ">=", 0.95),
    ("ECE, clean", "clean_ece", "<=", 0.01),
    ("ECE, mean over corruptions", "mean_ece", "<=", 0.03),
    ("not a digit: AUROC, letters (not digit-like), shapes, scribbles, textures", "auroc", ">=", 0.97),
    ("test digits flagged as not a digit", "digits_flagged", "<=", 0.02),
)


def measured(c: Checkpoint) -> dict[str, Any] | None:
    r = c.meta.get("robustness")
    if not r:
        return None
    ood = r.get("ood") or {}
    return {
        "clean_accuracy": r["clean"]["accuracy"], "clean_ece": r["clean"]["ece"],
        "mean_accuracy": r["mean_accuracy"], "mean_accuracy_trained": r["mean_accuracy_trained"],
        "mean_accuracy_held_out": r["mean_accuracy_held_out"], "mean_ece": r["mean_ece"],
        "accuracy_noise_0.3": r["accuracy_noise_0.3"], "auroc": ood.get("auroc_not_digit_like"),
        "digits_flagged": ood.get("digits_flagged"), "k": r.get("k"),
    }


def _pct(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{100 * v:.{digits}f} %"


def _role(c: Checkpoint) -> str:
    role = c.meta.get("role")
    return {"recogniser": "CVAE recogniser", "reference": "CNN reference (not a CVAE)"}.get(role or "", "paper's model" if c.name in ("conv-2", "mlp-2") else "variant")


def measured_models(ckpts: list[Checkpoint]) -> list[Checkpoint]:
    order = {"recogniser": 0, "reference": 1}
    return sorted((c for c in ckpts if measured(c)), key=lambda c: (order.get(c.meta.get("role") or "", 2), c.name))


def summary_table(ckpts: list[Checkpoint]) -> str:
    head = ["model", "what", "test digits", "clean", "ECE clean", "mean corruption", "seen in training", "held out", "σ = 0.3",
            "mean ECE", "not a digit AUROC", "digits flagged"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in measured_models(ckpts):
        m = measured(c)
        lines.append("| " + " | ".join([
            f"`{c.name}`", _role(c), f"{c.meta['robustness']['n']:,}", _pct(m["clean_accuracy"], 2), _pct(m["clean_ece"], 2), _pct(m["mean_accuracy"]),
            _pct(m["mean_accuracy_trained"]), _pct(m["mean_accuracy_held_out"]), _pct(m["accuracy_noise_0.3"]),
            _pct(m["mean_ece"]), "—" if m["auroc"] is None else f"{m['auroc']:.3f}", _pct(m["digits_flagged"], 2),
        ]) + " |")
    return "\n".join(lines)


def corruption_table(ckpts: list[Checkpoint]) -> str:
    models = measured_models(ckpts)
    head = ["corruption", "severities", "held out", *[f"`{c.name}`" for c in models]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, corruption in CORRUPTIONS.items():
        row = [name.replace("_", " "), ", ".join(f"{s:g}" for s in corruption.severities) + f" ({corruption.unit})",
               "yes" if corruption.held_out else ""]
        for c in models:
            r = c.meta["robustness"]["corruptions"].get(name)
            row.append("—" if r is None else f"{100 * r['accuracy']:.1f} % (ECE {100 * r['ece']:.1f})")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def ood_table(ckpts: list[Checkpoint]) -> str:
    models = [c for c in measured_models(ckpts) if (c.meta["robustness"].get("ood") or {}).get("families")]
    if not models:
        return ""
    families = list(models[0].meta["robustness"]["ood"]["families"])
    head = ["non-digits", "held out of training", "n", *[f"`{c.name}` AUROC / flagged" for c in models]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fam in families:
        first = models[0].meta["robustness"]["ood"]["families"][fam]
        row = [fam, "yes" if first["held_out"] else "no (another seed)", str(first["n"])]
        for c in models:
            f = c.meta["robustness"]["ood"]["families"][fam]
            row.append(f"{f['auroc']:.3f} / {_pct(f['detected'])}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def targets_table(ckpts: list[Checkpoint]) -> str:
    """The issue's targets against the best CVAE recogniser (by mean corruption accuracy, then clean)."""
    cvaes = [c for c in measured_models(ckpts) if c.meta.get("role") == "recogniser"]
    if not cvaes:
        return "No CVAE recogniser has been measured yet: run `python -m cvae_core.robustness`."
    best = max(cvaes, key=lambda c: (measured(c)["mean_accuracy"], measured(c)["clean_accuracy"]))
    ref = next((c for c in measured_models(ckpts) if c.meta.get("role") == "reference"), None)
    m, r = measured(best), measured(ref) if ref else None
    lines = [f"Against the targets, for `{best.name}`" + (f" (CNN reference `{ref.name}` beside it)" if ref else "") + ":", "",
             "| measure | target | measured | met | CNN reference |", "|---|---|---|---|---|"]
    for label, key, op, bar in TARGETS:
        v = m.get(key)
        ok = v is not None and (v >= bar if op == ">=" else v <= bar)
        shown = "—" if v is None else (f"{v:.3f}" if key == "auroc" else _pct(v, 2))
        want = (f"{op} {bar:.2f}" if key == "auroc" else f"{op} {100 * bar:g} %").replace(">=", "≥").replace("<=", "≤")
        rv = None if r is None else r.get(key)
        ref_shown = "—" if rv is None else (f"{rv:.3f}" if key == "auroc" else _pct(rv, 2))
        lines.append(f"| {label} | {want} | {shown} | {'yes' if ok else '**no**'} | {ref_shown} |")
    if r is not None:
        ahead = m["mean_accuracy"] > r["mean_accuracy"]
        held = m["mean_accuracy_held_out"] > r["mean_accuracy_held_out"]
        lines.append(f"| mean corruption accuracy ahead of the CNN reference | ahead | "
                     f"{_pct(m['mean_accuracy'])} vs {_pct(r['mean_accuracy'])} | {'yes' if ahead else '**no**'} | |")
        lines.append(f"| held-out corruptions ahead of the CNN reference | ahead | "
                     f"{_pct(m['mean_accuracy_held_out'])} vs {_pct(r['mean_accuracy_held_out'])} | {'yes' if held else '**no**'} | |")
    return "\n".join(lines)


def section(ckpts: list[Checkpoint]) -> list[str]:
    """The Markdown lines of the recognition part of the Results."""
    return [
        "### Recognition outside the test set",
        "",
        "From `python -m cvae_core.robustness` (recorded in each checkpoint): every corruption of "
        "`cvae_core.corruptions` at each severity on the 10,000 test digits (the two that go through the app's "
        "preprocessing image by image on the first 2,000), accuracy and expected calibration error (ECE, 15 bins) of "
        "the calibrated probabilities; \"held out\" corruptions were never used in training. Calibration (K, a "
        "temperature, the not-a-digit threshold) is fitted on the validation split only. \"Not a digit\": AUROC of "
        "p(not a digit) between generated non-digits (`cvae_core.nondigits.ood_set`; the letters are families "
        "training never saw) and the test digits.",
        "",
        targets_table(ckpts),
        "",
        summary_table(ckpts),
        "",
        "Per corruption (mean over its severities):",
        "",
        corruption_table(ckpts),
        "",
        "Non-digits, family by family (letters typeset in the DejaVu fonts or drawn as pen strokes go through the "
        "app's preprocessing, as an upload would; digit-like letters O, o, l, I, S, s, Z, z, B, g, q are reported "
        "apart and left out of the headline AUROC):",
        "",
        ood_table(ckpts),
        "",
    ]

"""The README's "Recognition outside the test set" tables, from the ``robustness`` block that
``python -m cvae_core.robustness`` writes into each checkpoint's metadata.

Used by ``benchmarks.report``; every figure is read from the checkpoints, none is typed here.
"""

from __future__ import annotations

from typing import Any

from cvae_core.checkpoints import Checkpoint
from cvae_core.checkpoints.metadata import NotDigitResult
from cvae_core.corruptions import CORRUPTIONS

# The targets for the best CVAE recogniser, each judged against a fixed bar or against the CNN reference
# ("ref-1": at least the reference's figure less one point; "below ref": lower than the reference's).
TARGETS = (
    ("clean test accuracy, all 10,000", "full_clean_accuracy", ">=", 0.99),
    ("mean corruption accuracy", "mean_accuracy", ">=", "ref-1"),
    ("held-out corruptions", "mean_accuracy_held_out", ">=", "ref-1"),
    ("ECE, clean", "clean_ece", "<=", 0.01),
    ("ECE, mean over corruptions", "mean_ece", "<=", 0.03),
    ("ECE, mean over corruptions, below the CNN's", "mean_ece", "<=", "ref"),
    ("held-out letters (not digit-like) flagged", "letters_flagged", ">=", 0.90),
    ("test digits flagged as not a digit", "digits_flagged", "<=", 0.02),
    ("distorted validation digits flagged", "distorted_flagged", "<=", 0.05),
)
LETTER_FAMILIES = ("letters (fonts)", "letters (pen strokes)")


def measured(c: Checkpoint) -> dict[str, Any] | None:
    r = c.info.robustness
    if r is None or r.clean is None:
        return None
    ood = r.ood or NotDigitResult()
    letters = [ood.families[f] for f in LETTER_FAMILIES if f in ood.families]
    n = sum(f.n or 0 for f in letters)
    return {
        "clean_accuracy": r.clean.accuracy, "clean_ece": r.clean.ece,
        "mean_accuracy": r.mean_accuracy, "mean_accuracy_trained": r.mean_accuracy_trained,
        "mean_accuracy_held_out": r.mean_accuracy_held_out, "mean_ece": r.mean_ece,
        "accuracy_noise_0.3": r.accuracy_noise_03, "auroc": ood.auroc_not_digit_like,
        "digits_flagged": ood.digits_flagged, "k": r.k,
        "letters_flagged": sum((f.detected or 0) * (f.n or 0) for f in letters) / n if n else None,
        "distorted_flagged": None if c.info.recognition is None else c.info.recognition.distorted_flagged,
        "full_clean_accuracy": _full_clean(c),
    }


def _full_clean(c: Checkpoint) -> float | None:
    """Clean accuracy on the whole test set: ``evaluate``'s, else the suite's when it measured all of it."""
    ev, r = c.info.evaluation, c.info.robustness
    if ev is not None and ev.n == 10000 and ev.accuracy is not None:
        return ev.accuracy
    return r.clean.accuracy if r is not None and r.clean is not None and r.n == 10000 else None


def _pct(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{100 * v:.{digits}f} %"


def _role(c: Checkpoint) -> str:
    role = c.info.role
    return {"recogniser": "CVAE recogniser", "reference": "CNN reference (not a CVAE)"}.get(role or "", "paper's model" if c.name in ("conv-2", "mlp-2") else "variant")


def measured_models(ckpts: list[Checkpoint]) -> list[Checkpoint]:
    order = {"recogniser": 0, "reference": 1}
    return sorted((c for c in ckpts if measured(c)), key=lambda c: (order.get(c.info.role or "", 2), c.name))


def summary_table(ckpts: list[Checkpoint]) -> str:
    head = ["model", "what", "test digits", "clean", "ECE clean", "mean corruption", "seen in training", "held out", "σ = 0.3",
            "mean ECE", "not a digit AUROC", "digits flagged"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in measured_models(ckpts):
        m = measured(c)
        lines.append("| " + " | ".join([
            f"`{c.name}`", _role(c), f"{c.info.robustness.n:,}", _pct(m["clean_accuracy"], 2), _pct(m["clean_ece"], 2), _pct(m["mean_accuracy"]),
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
            r = c.info.robustness.corruptions.get(name)
            row.append("—" if r is None else f"{100 * r.accuracy:.1f} % (ECE {100 * r.ece:.1f})")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def ood_table(ckpts: list[Checkpoint]) -> str:
    models = [c for c in measured_models(ckpts) if c.info.robustness.ood is not None and c.info.robustness.ood.families]
    if not models:
        return ""
    families = list(models[0].info.robustness.ood.families)
    head = ["non-digits", "held out of training", "n", *[f"`{c.name}` AUROC / flagged" for c in models]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fam in families:
        first = models[0].info.robustness.ood.families[fam]
        row = [fam, "yes" if first.held_out else "no (another seed)", str(first.n)]
        for c in models:
            f = c.info.robustness.ood.families[fam]
            row.append(f"{f.auroc:.3f} / {_pct(f.detected)}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _bar(bar: float | str, ref: dict[str, Any] | None, key: str) -> float | None:
    """The number a target is judged against: fixed, or from the CNN reference's figure."""
    if isinstance(bar, float):
        return bar
    if ref is None or ref.get(key) is None:
        return None
    return ref[key] - 0.01 if bar == "ref-1" else ref[key]


def targets_table(ckpts: list[Checkpoint]) -> str:
    """The targets against every CVAE recogniser, the best (by mean corruption accuracy, then clean) judged,
    the CNN reference beside them."""
    cvaes = [c for c in measured_models(ckpts) if c.info.role == "recogniser"]
    if not cvaes:
        return "No CVAE recogniser has been measured yet: run `python -m cvae_core.robustness`."
    cvaes.sort(key=lambda c: (measured(c)["mean_accuracy"], measured(c)["clean_accuracy"]), reverse=True)
    best = cvaes[0]
    ref = next((c for c in measured_models(ckpts) if c.info.role == "reference"), None)
    r = measured(ref) if ref else None
    head = ["measure", "target", *[f"`{c.name}`" for c in cvaes], f"met by `{best.name}`",
            f"CNN reference `{ref.name}`" if ref else "CNN reference"]
    lines = [f"Against the targets: every CVAE recogniser, the best (`{best.name}`, by mean corruption accuracy) "
             "judged, the discriminative CNN trained on the same data beside them:", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, key, op, bar in TARGETS:
        limit = _bar(bar, r, key)
        v = measured(best).get(key)
        ok = v is not None and limit is not None and (v >= limit if op == ">=" else v <= limit)
        sign = op.replace(">=", "≥").replace("<=", "≤")
        want = (f"{sign} {100 * limit:.2f} %" if isinstance(bar, float) else
                f"{sign} CNN{' − 1 point' if bar == 'ref-1' else ''}" + ("" if limit is None else f" ({100 * limit:.2f} %)"))
        cells = [_pct(measured(c).get(key), 2) for c in cvaes]
        lines.append(f"| {label} | {want} | " + " | ".join(cells) + f" | {'yes' if ok else '**no**'} | "
                     f"{_pct(None if r is None else r.get(key), 2)} |")
    return "\n".join(lines)


def shipped_table(ckpts: list[Checkpoint]) -> str:
    """Every shipped CVAE: clean accuracy (``evaluate``), and how its "not a digit" rule treats real digits
    (``robustness``'s calibration on the validation split): the 16-D and the flagging targets."""
    head = ["model", "latent", "clean accuracy", "not-a-digit evidence", "distorted validation digits flagged",
            "clean validation digits flagged"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = []
    for c in ckpts:
        if c.info.role == "reference":
            continue
        rec, acc = c.info.recognition, c.info.accuracy
        if c.config.background:
            evidence = "a \"not a digit\" condition"
        elif rec is not None and rec.loglik_threshold is not None:
            evidence = "a likelihood threshold"
        else:
            evidence = "none: cannot tell"
        rows.append((c.config.latent_dim, c.name, [f"`{c.name}`", str(c.config.latent_dim), _pct(acc, 2), evidence,
                                                   _pct(rec and rec.distorted_flagged, 2), _pct(rec and rec.clean_flagged, 2)]))
    lines += ["| " + " | ".join(r) + " |" for *_, r in sorted(rows)]
    best16 = max((c for c in ckpts if c.config.latent_dim == 16 and c.info.accuracy),
                 key=lambda c: c.info.accuracy, default=None)
    if best16 is not None:
        acc = best16.info.accuracy
        lines += ["", f"Best shipped 16-D model, clean: `{best16.name}` {_pct(acc, 2)} (target ≥ 98.5 %: "
                      f"{'met' if acc >= 0.985 else '**missed**'})."]
    return "\n".join(lines)


def recognisers_table(ckpts: list[Checkpoint]) -> str:
    """Conv against MLP recogniser (and the CNN), with what each cost to train: the paper's question
    asked of the recognisers. Training times are as recorded (one machine, 2 cores)."""
    models = [c for c in measured_models(ckpts) if c.info.role in ("recogniser", "reference")]
    head = ["model", "architecture", "parameters", "epochs", "training time", "clean", "mean corruption",
            "held-out corruptions", "letters flagged", "test digits measured"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in models:
        m = measured(c)
        arch = {"conv": "conv CVAE", "mlp": "MLP CVAE", "cnn": "CNN (not a CVAE)"}.get(c.config.arch, c.config.arch)
        training = c.info.training
        minutes = (training.seconds or 0) / 60
        lines.append("| " + " | ".join([
            f"`{c.name}`", arch, f"{training.num_params or 0:,}", str(training.epochs_run or "—"), f"{minutes:.0f} min",
            _pct(m["clean_accuracy"], 2), _pct(m["mean_accuracy"]), _pct(m["mean_accuracy_held_out"]),
            _pct(m["letters_flagged"]), f"{c.info.robustness.n:,}"]) + " |")
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
        "Conv against MLP recogniser, with what each cost to train (the CNN reference beside them):",
        "",
        recognisers_table(ckpts),
        "",
        "Every shipped model (clean accuracy by Bayes' rule from `python -m cvae_core.evaluate`; digits flagged "
        "by the model's own not-a-digit rule, fitted on the validation split by `python -m cvae_core.robustness`):",
        "",
        shipped_table(ckpts),
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


def pair_section(pair: dict[str, Any] | None) -> list[str]:
    """The two recognisers reading together (``python -m benchmarks.pair``) against each alone."""
    if not pair:
        return []
    names = [*pair["members"], "pair"]
    head = ["", *[f"`{n}`" if n != "pair" else "product of both" for n in names]]
    rows = [("clean accuracy", [pair["clean"][n]["accuracy"] for n in names]),
            ("ECE, clean", [pair["clean"][n]["ece"] for n in names]),
            ("mean corruption accuracy", [pair["mean_corruption_accuracy"][n] for n in names]),
            ("held-out letters flagged", [pair["letters_flagged"][n] for n in names])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([label, *[_pct(v, 2) for v in values]]) + " |" for label, values in rows]
    lower_better = {"ECE, clean"}
    worse = [label for label, v in rows if v[-1] is not None and any(
        m is not None and (v[-1] > m if label in lower_better else v[-1] < m) for m in v[:-1])]
    lines += ["", "The product beats both members on every measure, so the app can offer it." if not worse else
              f"The product is not shipped as a recogniser: it is behind a member on {', '.join(worse)}."]
    return [
        "The two recognisers reading together: the product of their calibrated posteriors "
        f"(`cvae_core.ensemble`), on the same first {pair['n']:,} test digits, corruptions and letters "
        f"(`{pair['command']}`):", "", *lines, "",
    ]


def equal_time_section(found: dict[str, Any] | None) -> list[str]:
    """The conv and MLP recognisers at equal training time (``python -m benchmarks.equal_time``)."""
    if not found:
        return []
    rows = found["rows"]
    head = ["", *[f"`{r['name']}`" for r in rows]]
    measures = (("epochs", lambda r: str(r["epochs"])), ("training time, as recorded", lambda r: f"{r['training_minutes']:.0f} min"),
                ("clean accuracy", lambda r: _pct(r["clean_accuracy"], 2)), ("ECE, clean", lambda r: _pct(r["clean_ece"], 2)),
                ("mean corruption accuracy", lambda r: _pct(r["mean_accuracy"])),
                ("held-out corruptions", lambda r: _pct(r["mean_accuracy_held_out"])),
                ("ECE, mean over corruptions", lambda r: _pct(r["mean_ece"])),
                ("held-out letters flagged", lambda r: _pct(r["letters_flagged"])),
                ("test digits flagged", lambda r: _pct(r["digits_flagged"], 2)))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([label, *[show(r) for r in rows]]) + " |" for label, show in measures]
    mlp, short = rows[0], rows[1]
    ahead = [label for label, key in (("clean", "clean_accuracy"), ("corruptions", "mean_accuracy"),
                                      ("held-out corruptions", "mean_accuracy_held_out")) if short[key] > mlp[key]]
    return [
        f"Conv vs MLP recogniser at equal training time: one conv epoch cost {found['ratio']:.2f} MLP epochs "
        f"(timed in the same run), so in the MLP's {found['mlp_epochs']} epochs the conv's own recipe trains "
        f"{found['conv_epochs']}; all three on the first {found['n']:,} test digits (`{found['command']}`). "
        + (f"At equal time the conv is ahead on {', '.join(ahead)}." if ahead else
           "At equal time the conv is behind on every accuracy: its lead comes from training longer."),
        "", *lines, "",
    ]

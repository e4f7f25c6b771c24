"""Figures the benchmarks measured that the pages show: read from ``benchmarks/results.json``.

Only what a page needs, checked as it is read: a missing or malformed section is None and the page
leaves its part out (the README's Results are generated from the same file).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import streamlit as st

BENCHMARK_RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results.json"
# `python -m benchmarks.equal_time`: the measures shown, by key, with their names on the page.
EQUAL_TIME_MEASURES = {"clean_accuracy": "clean digits", "mean_accuracy": "mean over the corruptions",
                       "mean_accuracy_held_out": "held-out corruptions", "letters_flagged": "letters flagged"}


@st.cache_data(show_spinner=False, max_entries=4)
def _equal_time(path: str, stamp: float) -> dict[str, Any] | None:
    """The ``equal_time`` section of ``path`` (``stamp``, the file's time, keys the cache)."""
    try:
        found = json.loads(Path(path).read_text())["sections"]["equal_time"]
        rows = [{"label": str(r["name"]), "epochs": int(r["epochs"]), "minutes": float(r["training_minutes"]),
                 **{k: float(r[k]) for k in EQUAL_TIME_MEASURES}} for r in found["rows"]]
        ok = len(rows) == 3 and all(math.isfinite(r[k]) and 0 <= r[k] <= 1 for r in rows for k in EQUAL_TIME_MEASURES)
        return {"rows": rows, "n": int(found["n"]), "ratio": float(found["ratio"]), "command": str(found["command"]),
                "generated": str(found["generated"])[:10]} if ok else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def equal_time() -> dict[str, Any] | None:
    """The conv and MLP recognisers at equal training time: rows (the MLP, the conv at the MLP's time,
    the shipped conv) with their epochs, minutes and measures, or None when not measured."""
    try:
        return _equal_time(str(BENCHMARK_RESULTS), BENCHMARK_RESULTS.stat().st_mtime)
    except OSError:
        return None

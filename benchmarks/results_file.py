"""``benchmarks/results.json``, which every benchmark writes one section of and the report reads."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.paths import RESULTS_JSON


def read() -> dict[str, Any]:
    """The results so far ({} before the first run)."""
    return json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}


def write_section(name: str, section: dict[str, Any]) -> None:
    """Put ``section`` under ``sections.name``, keeping every other section as it is."""
    results = read()
    results.setdefault("sections", {})[name] = section
    RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")

"""Where the benchmarks find the project and write their results."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APP = ROOT / "app" / "streamlit_app.py"
FLOOR = HERE / "floor_app.py"  # the same widgets with no model: Streamlit's floor
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "results.md"

"""The README's Results describe what ships.

Every model the generated Results section names is a checkpoint in ``checkpoints/``, and its
"Speed and memory" part is exactly what ``python -m benchmarks.report`` makes now of
``benchmarks/results.json`` for the shipped checkpoints (so a model that ships or stops shipping
fails this test until the section is regenerated). ``shipped_only`` leaves out models measured once
but no longer shipped, and names shipped models that no benchmark run has measured yet.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks import report
from cvae_core.checkpoints import Checkpoint, list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CHECKPOINTS = ROOT / "checkpoints"
# A model's name as the training command writes it (arch-latent[-variant]), or the CNN reference's.
MODEL_NAME = re.compile(r"\b(?:conv|mlp|cnn)-[0-9a-z]+(?:-[0-9a-z]+)*\b")
SPEED = "### Speed and memory"


def results_section() -> str:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(report.START), text.index(report.END)
    return text[start : end + len(report.END)]


def shipped() -> list[Checkpoint]:
    return [load_checkpoint(path) for path in list_checkpoints(CHECKPOINTS)]


def test_the_results_name_only_shipped_models():
    named = set(MODEL_NAME.findall(results_section()))
    assert named, "the Results section names no model"
    missing = sorted(n for n in named if not (CHECKPOINTS / f"{n}.safetensors").exists())
    assert not missing, f"the README's Results name models that are not in checkpoints/: {missing}"


def test_the_speed_part_is_regenerated_from_what_ships():
    results = json.loads(report.RESULTS_JSON.read_text())
    generated = report.section(shipped(), results, [])
    now = generated[generated.index(SPEED) :]
    shown = results_section()
    assert shown[shown.index(SPEED) :] == now, "rerun `python -m benchmarks.report`"


def test_models_no_longer_shipped_are_left_out_and_new_ones_named():
    ckpts = shipped()
    names = {c.name for c in ckpts}
    cvae = sorted(c.name for c in ckpts if report.is_cvae(c))
    measured = {"gone-2": {"decode": 1}, cvae[0]: {"decode": 1}}
    results = {"sections": {"latency": {"models": dict(measured)}, "scaling": {"inference": dict(measured)}}}
    kept, unmeasured = report.shipped_only(results, ckpts)
    assert set(kept["sections"]["latency"]["models"]) == {cvae[0]} <= names
    assert set(kept["sections"]["scaling"]["inference"]) == {cvae[0]}
    assert "gone-2" in results["sections"]["latency"]["models"]  # the caller's results are not changed
    assert unmeasured == cvae[1:]

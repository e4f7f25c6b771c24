"""The Compare page's "At equal training time" section, from the ``equal_time`` benchmark section."""

from __future__ import annotations

import json

from app import measured
from tests.test_app import app_models, start  # noqa: F401  (app_models is a fixture)

ROW = {"clean_ece": 0.01, "mean_ece": 0.03, "mean_accuracy_held_out": 0.95, "digits_flagged": 0.004}


def write_results(path, rows, **extra):
    section = {"n": 2000, "ratio": 6.6, "probe_seconds": {}, "conv_epochs": 3, "mlp_epochs": 20, "rows": rows,
               "command": "python -m benchmarks.equal_time", "generated": "2026-12-06T13:00:00+00:00", **extra}
    path.write_text(json.dumps({"sections": {"equal_time": section}}))


def rows(short_clean: float) -> list[dict]:
    return [{**ROW, "name": "mlp-16", "epochs": 20, "training_minutes": 17.3, "clean_accuracy": 0.970,
             "mean_accuracy": 0.925, "letters_flagged": 0.40},
            {**ROW, "name": "conv-16, 3 epochs", "epochs": 3, "training_minutes": 16.0, "clean_accuracy": short_clean,
             "mean_accuracy": 0.930, "letters_flagged": 0.80},
            {**ROW, "name": "conv-16", "epochs": 20, "training_minutes": 117.0, "clean_accuracy": 0.9855,
             "mean_accuracy": 0.953, "letters_flagged": 0.89}]


def equal_time_text(at) -> list[str]:
    return [m.value for m in at.markdown if "MLP epochs here" in m.value]


def test_equal_time_section_shows_for_the_measured_pair_only(monkeypatch, app_models, tmp_path):  # noqa: F811
    results = tmp_path / "results.json"
    write_results(results, rows(short_clean=0.960))
    monkeypatch.setattr(measured, "BENCHMARK_RESULTS", results)
    at = start(monkeypatch, app_models, "compare")
    assert list(at.dataframe[0].value["model"]) == ["conv-16", "mlp-16"]
    (text,) = equal_time_text(at)
    assert "costs **6.6** MLP epochs" in text and "the conv trains **3**" in text
    # Ahead on what it measured ahead on, behind on the rest, computed from the rows.
    assert "ahead on mean over the corruptions and letters flagged, and behind on clean digits;" in text
    table = at.dataframe[1].value
    assert list(table.columns) == ["mlp-16 (20 epochs)", "conv, 3 epochs (equal time)", "conv-16 (20 epochs)"]
    assert table.loc["clean digits", "conv, 3 epochs (equal time)"] == "96.0 %"
    turned = at.dataframe[2].value  # phones: one row per model
    assert turned.loc["conv, 3 epochs (equal time)", "clean digits"] == "96.0 %"
    at.button_group(key="compare_latent").set_value(2).run()  # another pair: no section, a pointer to it
    assert not equal_time_text(at)
    assert any("to compare the two recognisers" in c.value for c in at.caption)


def test_a_malformed_equal_time_section_is_left_out(monkeypatch, app_models, tmp_path):  # noqa: F811
    results = tmp_path / "results.json"
    write_results(results, rows(short_clean=float("nan")))
    monkeypatch.setattr(measured, "BENCHMARK_RESULTS", results)
    at = start(monkeypatch, app_models, "compare")
    assert not equal_time_text(at) and not at.exception
    results.write_text("{not json")
    at.run()
    assert not equal_time_text(at) and not at.exception

"""The app's figures that are built on every reading (``app.figures``)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from app import figures


@pytest.mark.parametrize(("not_digit", "calibrated"), [(None, True), (0.07, True), (None, False)])
def test_probability_bar_is_the_figure_plotly_validates(not_digit, calibrated):
    """The chart made from the once-validated frame equals the same chart built and validated whole."""
    probs = np.random.default_rng(0).dirichlet(np.ones(10)).astype(np.float32) * (1 - (not_digit or 0))
    fast = figures.probability_bar(probs, 3, not_digit=not_digit, calibrated=calibrated)
    whole = go.Figure(fast.to_dict())  # validated by plotly
    assert fast.to_dict() == whole.to_dict()
    bar = fast.data[0]
    expected = [float(p) for p in probs] + ([not_digit] if not_digit is not None else [])
    assert list(bar.x) == pytest.approx(expected)
    assert list(bar.y) == [str(d) for d in range(10)] + (["not a digit"] if not_digit is not None else [])
    colours = list(bar.marker.color)
    assert colours[3] == figures.PICKED_COLOUR
    assert colours.count(figures.PICKED_COLOUR) == 1
    assert (colours[-1] == figures.NOT_DIGIT_COLOUR) == (not_digit is not None)
    title = fast.layout.xaxis.title.text
    assert title == ("probability" if calibrated else "probability (not calibrated)")


def test_probability_bar_frames_are_not_shared():
    """Two readings' charts never share their numbers (the frame is copied, never filled in place)."""
    a = figures.probability_bar(np.eye(10, dtype=np.float32)[1], 1)
    b = figures.probability_bar(np.eye(10, dtype=np.float32)[8], 8)
    assert list(a.data[0].x)[1] == 1.0 and list(a.data[0].x)[8] == 0.0
    assert list(b.data[0].x)[8] == 1.0 and list(a.data[0].marker.color)[8] == figures.BAR_COLOUR

"""The browserless load client (``benchmarks.load`` over ``benchmarks.streamlit_client``) against the
real app: what it sends is what the Draw page reads, at N = 1.

One session opens the Draw page of a ``streamlit run`` server (committed checkpoints, an archive of
its own) and, for ten MNIST test digits, presses Clear, sends the canvas value a browser sends and
saves the digit, as every session of the load benchmark does. The answers must be the digits'
labels (the shipped recogniser reads the test set 97 % right: at most one miss in ten), every
answer must have arrived, and every confirmed save must be in the archive.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import numpy as np
import pytest

from benchmarks import load
from benchmarks.servers import server_env, start_server, stop_server, wait_healthy
from benchmarks.strokes import canvas_value

DIGITS = 10


def test_canvas_value_is_what_the_canvas_sends():
    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[4:24, 13:15] = 255  # a "1"
    value = json.loads(canvas_value(digit))
    drawing = value["drawing"]
    assert drawing["data"].startswith("data:image/png;base64,")
    (stroke,) = drawing["raw"]["objects"]
    assert stroke["type"] == "Path" and stroke["path"][0][0] == "M"
    assert 130 <= stroke["left"] <= 150 and stroke["height"] == pytest.approx(190)


@pytest.fixture(scope="module")
def app_server(data_dir, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """``streamlit run`` on the committed checkpoints with an archive of its own: (URL, archive URL)."""
    tmp = tmp_path_factory.mktemp("load_client")
    env = {**server_env(tmp), "CVAE_DATA_DIR": str(data_dir)}
    env.pop("CVAE_CHECKPOINT_DIR", None)
    server = start_server("app", load.APP, env, tmp, watch_files=False)
    try:
        wait_healthy(server, timeout=load.SETUP_TIMEOUT_S)
        yield server.url, env["CVAE_ARCHIVE_URL"]
    finally:
        stop_server(server)


def test_one_session_draws_reads_and_saves(app_server, data_dir, monkeypatch):
    monkeypatch.setenv("CVAE_DATA_DIR", str(data_dir))
    tally, saved = asyncio.run(session_of_digits(*app_server))
    assert tally.errors == []
    assert tally.missed == 0 and len(tally.latencies_s) == DIGITS
    assert tally.right >= DIGITS - 1, f"{tally.right} of {DIGITS} read right"
    assert tally.saves_confirmed == DIGITS and saved == DIGITS


async def session_of_digits(url: str, archive_url: str) -> tuple[load.Tally, int]:
    digits = load.Digits(DIGITS, seed=1)
    session = await load.Session.open(url, timeout=load.SETUP_TIMEOUT_S)
    tally = load.Tally()
    try:
        for _ in range(DIGITS):
            await load.one_digit(session, digits, tally, clear=True, save=True, timeout=load.SETUP_TIMEOUT_S)
    finally:
        await session.close()
    return tally, load.archive_count(archive_url)


def text_of(element: load.Element) -> str:
    if element.kind == "imgs":
        return " ".join(image.caption for image in element.proto.imgs)
    return getattr(element.proto, "body", "")


def test_the_answer_comes_before_the_partner_models_reading(app_server, data_dir, monkeypatch):
    """The answer never waits on the second model: the server sends it before anything the partner
    model read (its agreement line, its reconstruction's caption)."""
    monkeypatch.setenv("CVAE_DATA_DIR", str(data_dir))

    async def one_stroke() -> list[load.Element]:
        value, _ = load.Digits(1, seed=2).take()
        session = await load.Session.open(app_server[0], timeout=load.SETUP_TIMEOUT_S)
        try:
            seconds, answer, run = await load.draw(session, value, timeout=load.SETUP_TIMEOUT_S)
            assert seconds is not None and answer
            await load.finished(run, load.SETUP_TIMEOUT_S)
            return run.elements
        finally:
            await session.close()

    elements = asyncio.run(one_stroke())
    answer = next(i for i, e in enumerate(elements) if load.is_answer(e))
    partner = [i for i, e in enumerate(elements) if re.search(r"\bagrees\b|\breads\b", text_of(e))]
    assert partner, [text_of(e) for e in elements]
    assert answer < min(partner)


def test_the_knee_counts_missed_digits_as_never_answered():
    quick = [0.1] * 99
    assert load.p95_with_missed(quick, 0) == pytest.approx(0.1)
    assert load.p95_with_missed(quick, 10) == float("inf")  # 10 % missed: the p95 is never
    levels = {"1": {"p95_with_missed_s": 0.1}, "20": {"p95_with_missed_s": 1.2}, "40": {"p95_with_missed_s": None}}
    assert load.knee(levels) == 20
    assert load.knee({"1": {"p95_with_missed_s": 2.0}}) is None


def test_rerun_costs_are_measured_for_the_app_and_the_floor(data_dir, monkeypatch):
    """``--reruns``: every kind of rerun gets a CPU figure per digit, in the report too."""
    monkeypatch.setenv("CVAE_DATA_DIR", str(data_dir))
    r = asyncio.run(load.rerun_costs(digits=2, pinning=load.Pinning(None, None), seed=0))
    assert set(r["app"]) == {"clear", "draw", "save", "idle_ms_per_s"} and set(r["floor"]) == {"draw", "idle_ms_per_s"}
    for costs in (r["app"]["clear"], r["app"]["draw"], r["app"]["save"], r["floor"]["draw"]):
        assert costs["n"] == 2 and costs["min"] > -50  # ms; the idle correction may take a little too much
    # Reading a digit with two models costs more CPU than the floor app's one st.metric (a ratio, not a timing).
    assert r["app"]["draw"]["mean"] > r["floor"]["draw"]["mean"]
    r["generated"] = "2026-12-06T00:00:00+00:00"
    section = {"client": "websocket", "levels": {}, "interval_s": 5, "duration_s": 60, "reruns": r}
    (line,) = [x for x in load.report_lines(section) if "--reruns" in x]
    assert f"drawing {r['app']['draw']['mean']:.0f} ms" in line

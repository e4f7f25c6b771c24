"""What the browser tests share: ``streamlit run`` on a free port, Chromium's settings, the app's
selectors and the gestures that draw on its canvas (``tests/test_browser*.py``, the tiny-run test
of ``tests/test_runs.py`` and ``python -m tests.screenshots``). The fixtures over these are in
``tests/conftest.py``.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.servers import stop, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app" / "streamlit_app.py"
COMMITTED = ROOT / "checkpoints"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 900}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
TIMEOUT_MS = 120_000  # generous: a busy machine, and the first run loads every model
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
METRIC = '[data-testid="stMetric"]:has-text("Recognised digit") [data-testid="stMetricValue"]'
CANVAS = "canvas.upper-canvas"
SLIDER = 'input[type="range"][aria-label="z0"]'
DECODED = 'canvas[role="img"][aria-label^="A decoded"]'  # drawn in the browser by app/scrub.py
MODEL_PICKER = '[data-testid="stSidebar"] [data-testid="stSelectbox"]:has-text("Model")'
MAP_POINTS = '[data-testid="stPlotlyChart"] .scatterlayer .trace path.point'
ONE = [(140, 40), (138, 140), (136, 240)]
BAR = [(60, 150), (140, 150), (220, 150)]
IDLE = """() => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')
          && !document.querySelector('[data-stale="true"]')"""
MAIN_HEIGHT = "document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight"
READY = """(charts) => {
  const plots = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
  return plots.length >= charts && plots.every((p) => p.querySelector('.main-svg'))
    && [...document.images].every((i) => i.complete && i.naturalWidth > 0);
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, with nothing of its own on the network."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def new_tab(browser: Any, **context: Any) -> Any:
    """A page in a fresh browser context (its own Streamlit session), with the suite's timeout."""
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


@contextmanager
def running_app(checkpoints: Path, work: Path) -> Iterator[str]:
    """The app under ``streamlit run`` (headless, its own archive database); yields its URL."""
    port = free_port()
    env = {**os.environ, "CVAE_CHECKPOINT_DIR": str(checkpoints),
           "CVAE_ARCHIVE_URL": f"sqlite:///{work / 'archive.db'}"}
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless=true",
               f"--server.port={port}", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false",
               "--server.fileWatcherType=none"]
    log_path = work / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/_stcore/health", process, log_path, name="streamlit", timeout_s=TIMEOUT_MS / 1000)
        yield url
    finally:
        stop(process, timeout_s=10)


def stroke(page, points: list[tuple[float, float]]) -> None:
    """One mouse stroke through ``points`` given in canvas pixels (280x280)."""
    canvas = page.locator(CANVAS)
    canvas.wait_for(state="visible")  # after Clear, a fresh canvas is mounted
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
    page.mouse.up()


def app_button(page, name: str):
    """One of the page's own buttons (the canvas's hover toolbar has an "Undo" of its own)."""
    return page.locator('[data-testid="stButton"]').get_by_role("button", name=name, exact=True)


def recognised(page) -> str:
    page.wait_for_selector(METRIC)
    return page.locator(METRIC).inner_text().strip()


def assert_no_error(page) -> None:
    page.wait_for_timeout(500)  # let a rerun that is still streaming finish its elements
    found = page.locator(ERRORS)
    assert found.count() == 0, found.all_inner_texts()


def open_page(page, server: str, path: str, heading: str) -> None:
    page.goto(f"{server}/{path}")
    page.get_by_role("heading", name=heading).wait_for()


def ring() -> list[tuple[float, float]]:
    return [(140 + 65 * math.sin(t / 24 * 2 * math.pi), 140 - 95 * math.cos(t / 24 * 2 * math.pi)) for t in range(26)]

"""In-browser timings: Playwright + Chromium against ``streamlit run``, beside the floor app.

    python -m benchmarks --only browser [--quick] [--trials 20]

Servers run side by side: the app (``app/streamlit_app.py``) and the trivial floor app
(``benchmarks/floor_app.py``, the same widgets with no model); trials alternate between them in
the same run, so both see the same machine load. Each latency is timed inside the page: the
input event's own ``timeStamp`` (the stroke's pointerup, the slider's keydown) and a
``MutationObserver`` that takes ``performance.now()`` when the result is in the DOM; no polling
from Python enters the number.

* stroke -> digit: the canvas is cleared, one single-stroke digit is drawn with the mouse, and the
  clock runs from the pointer's release to the ``st.metric`` labelled "Recognised digit" showing a
  value (the canvas's own 200 ms send debounce included);
* slider -> image: the first latent slider (``z0``) gets one ArrowRight press; the clock runs to the
  new image's ``src`` in the DOM (``changed``) and to that image decoded and ready to paint
  (``shown``, ``img.decode()``), which is the reported number; the app draws the picture in
  the browser for every model (``app/scrub.py``), and the clock stops at its new frame;
* cold start: ``streamlit run`` spawned -> the canvas visible in a fresh browser context, and ->
  the first digit drawn there recognised;
* memory: resident set (``VmRSS``, and its peak ``VmHWM``) of the server's process tree after
  every page has been opened, when all shipped models are loaded.

To measure a change against the code before it in the same run, export the old tree (e.g.
``git archive HEAD app cvae_core .streamlit | tar -x -C /tmp/before``) and set
``CVAE_BENCH_BASELINE=/tmp/before``: its app then runs as a fourth server, ``baseline``, with the
same checkpoints, alternated with the others in every measure.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.machine import resident_mb
from benchmarks.paths import APP, FLOOR, ROOT
from benchmarks.servers import Server, server_env, start_server, stop_server, wait_healthy
from benchmarks.strokes import STROKES, stroke_points
from benchmarks.timing import summarise

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
METRIC_LABEL = "Recognised digit"
SLIDER = 'input[type="range"][aria-label="z0"]'  # the first latent slider (its thumb's input)
LATENT_PATH = "latent"  # the app's pages by URL path; the Draw page is the default one
OTHER_PATHS = ("compare", "archive")
BASELINE_ENV = "CVAE_BENCH_BASELINE"  # a folder holding an older app/ and cvae_core/, run beside the app
TIMEOUT_MS = 30_000  # one trial
SETUP_TIMEOUT_MS = 180_000  # a page's first load (a busy machine can take long to serve the first run)

# Wrap the page's websocket so that window.__lastSend holds the time of its last send (a rerun
# request): ARM_DRAW then also knows when the canvas's drawing left for the server.
TRACK_SENDS = """() => {
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) { window.__lastSend = performance.now(); return send.call(this, data); };
}"""

# Arm a trial. window.__bench collects the input event's timeStamp and the result's arrival (and,
# with TRACK_SENDS installed, the last websocket send before it).
ARM_DRAW = """(label) => {
  const read = () => {
    for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
      if (m.innerText.includes(label)) {
        const v = m.querySelector('[data-testid="stMetricValue"]');
        return v ? v.innerText : null;
      }
    }
    return null;
  };
  const b = window.__bench = {before: read(), input: null, done: null, text: null};
  window.addEventListener('pointerup', (e) => { if (b.input === null) b.input = e.timeStamp; },
                          {capture: true, once: true});
  const obs = new MutationObserver(() => {
    const now = performance.now();
    if (b.input === null) return;
    const t = read();
    if (t !== null && t !== b.before) {
      b.done = now; b.text = t; b.sent = window.__lastSend ?? null; obs.disconnect();
    }
  });
  obs.observe(document.body, {subtree: true, childList: true, characterData: true});
}"""

ARM_SLIDER = """() => {
  const b = window.__bench = {input: null, changed: null, done: null, src: null};
  window.addEventListener('keydown', (e) => { if (b.input === null) b.input = e.timeStamp; },
                          {capture: true, once: true});
  const obs = new MutationObserver((records) => {
    const now = performance.now();
    if (b.input === null || b.changed !== null) return;
    for (const r of records) {
      if (r.attributeName === 'data-frame') {  // a picture drawn in the browser (app/scrub.py)
        b.changed = b.done = now; obs.disconnect(); return;
      }
      const nodes = r.type === 'attributes' ? [r.target] : Array.from(r.addedNodes);
      for (const n of nodes) {
        if (n.nodeType !== 1) continue;
        const img = n.tagName === 'IMG' ? n : n.querySelector('img');
        if (!img || !img.closest('[data-testid="stImage"]')) continue;
        b.changed = now; b.src = img.src; obs.disconnect();
        const shown = () => { b.done = performance.now(); };
        img.decode().then(shown, shown);
        return;
      }
    }
  });
  obs.observe(document.body, {subtree: true, childList: true, attributes: true,
                              attributeFilter: ['src', 'data-frame']});
}"""

# The app is idle when no script run is under way (the status widget's running icon) and no
# element is still marked stale by an unfinished rerun.
IDLE = """() => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"]')
          && !document.querySelector('[data-stale="true"]')"""


def start(name: str, script: Path, env: dict[str, str], logs: Path, *, python: str | None = None) -> Server:
    """One of the compared servers; the baseline runs from its own tree with our checkpoints."""
    if name != "baseline":
        return start_server(name, script, env, logs, python=python)
    env = {**env, "CVAE_CHECKPOINT_DIR": env.get("CVAE_CHECKPOINT_DIR") or str(ROOT / "checkpoints")}
    return start_server(name, script, env, logs, python=python, root=script.parent.parent)


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        path = os.environ.get("CHROMIUM", CHROMIUM)
        b = p.chromium.launch(executable_path=path if Path(path).exists() else None, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def open_page(b: Any, url: str) -> Any:
    page = b.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url, timeout=SETUP_TIMEOUT_MS, wait_until="domcontentloaded")
    return page


def wait_idle(page: Any, *, settle: float = 0.3, timeout: float = TIMEOUT_MS) -> None:
    page.wait_for_function(IDLE, timeout=timeout)
    time.sleep(settle)


def canvas_box(page: Any, *, timeout: float = TIMEOUT_MS) -> dict[str, float]:
    upper = page.locator("canvas.upper-canvas").first
    upper.wait_for(state="visible", timeout=timeout)
    return upper.bounding_box()


def clear_canvas(page: Any) -> None:
    """Empty the canvas: the app's own Clear button (disabled while there is nothing to clear; the
    canvas's hover toolbar is hidden in the app), else the toolbar's reset (the floor app's only one)."""
    own = page.locator('[data-testid="stButton"]').get_by_role("button", name="Clear", exact=True)
    if own.count():
        if own.is_enabled():
            own.click()
    else:
        page.get_by_role("button", name="Reset canvas & history").first.click()
    page.wait_for_function(
        """(label) => !Array.from(document.querySelectorAll('[data-testid="stMetric"]'))
                         .some((m) => m.innerText.includes(label))""", arg=METRIC_LABEL)
    wait_idle(page)


def draw_trial(page: Any, digit: str, rng: random.Random) -> float:
    """ms from the stroke's release to the recognised digit in the DOM."""
    clear_canvas(page)
    pts = stroke_points(canvas_box(page), digit, rng)
    page.evaluate(ARM_DRAW, METRIC_LABEL)
    page.mouse.move(*pts[0])
    page.mouse.down()
    for a, b in itertools.pairwise(pts):
        page.mouse.move(*b, steps=max(1, int(math.dist(a, b) // 12)))  # a move event every ~12 px
    page.mouse.up()
    page.wait_for_function("() => window.__bench.done !== null")
    r = page.evaluate("() => window.__bench")
    return r["done"] - r["input"]


def select_every_model(page: Any) -> None:
    """Pick each model of the sidebar's picker in turn, waiting for the page to settle each time."""
    picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    picker.wait_for(timeout=SETUP_TIMEOUT_MS)
    picker.click()
    count = page.get_by_role("option").count()
    page.keyboard.press("Escape")
    for i in range(count):
        picker.click()
        page.get_by_role("option").nth(i).click()
        wait_idle(page, settle=1.0, timeout=SETUP_TIMEOUT_MS)


def slider_trial(page: Any) -> tuple[float, float]:
    """(ms to the new image in the DOM, ms to it decoded and ready to paint) after one ArrowRight."""
    wait_idle(page)
    thumb = page.locator(SLIDER).first
    thumb.focus()
    page.evaluate(ARM_SLIDER)
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => window.__bench.done !== null")
    r = page.evaluate("() => window.__bench")
    return r["changed"] - r["input"], r["done"] - r["input"]


def interaction_trials(b: Any, servers: dict[str, Server], *, trials: int, warmup: int, seed: int = 0,
                       memory_steps: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stroke -> digit and slider -> image for the app and the floor (and the baseline), one trial
    of each in turn, the order rotating every round."""
    pages: dict[str, dict[str, Any]] = {
        "app": {"draw": open_page(b, servers["app"].url),
                "slider": open_page(b, f"{servers['app'].url}/{LATENT_PATH}")},
        "floor": {"draw": open_page(b, servers["floor"].url), "slider": open_page(b, servers["floor"].url)},
    }
    if "baseline" in servers:
        pages["baseline"] = {"draw": open_page(b, servers["baseline"].url),
                             "slider": open_page(b, f"{servers['baseline'].url}/{LATENT_PATH}")}
    memory_steps = dict(memory_steps or {})
    for p in pages.values():
        if "draw" in p:
            canvas_box(p["draw"], timeout=SETUP_TIMEOUT_MS)
        p["slider"].locator(SLIDER).first.wait_for(state="attached", timeout=SETUP_TIMEOUT_MS)
    memory_steps["draw and latent pages open"] = resident_mb(servers["app"].proc.pid)
    rng = random.Random(seed)
    digits = list(STROKES)
    samples: dict[str, dict[str, list[float]]] = {a: {"draw": [], "slider_dom": [], "slider": []} for a in pages}
    failures: dict[str, int] = {a: 0 for a in pages}
    names = list(pages)
    for i in range(warmup + trials):
        for who in names[i % len(names):] + names[: i % len(names)]:
            try:
                got = {}
                if "draw" in pages[who]:
                    got["draw"] = draw_trial(pages[who]["draw"], digits[i % len(digits)], rng)
                got["slider_dom"], got["slider"] = slider_trial(pages[who]["slider"])
            except Exception as e:  # a timed-out trial is counted, not fatal
                failures[who] += 1
                print(f"  browser: {who} trial {i} failed: {type(e).__name__}: {str(e).splitlines()[0]}", flush=True)
                continue
            if i >= warmup:
                for key, ms in got.items():
                    samples[who][key].append(ms / 1e3)
    out: dict[str, Any] = {"trials": trials, "warmup": warmup, "failures": failures}
    for who, s in samples.items():
        out[who] = {k: summarise(v) for k, v in s.items() if v}
    for key in ("draw", "slider"):
        if key in out["app"] and key in out["floor"]:
            out[f"{key}_p95_over_floor_ms"] = round(out["app"][key]["p95"] - out["floor"][key]["p95"], 1)
    memory_steps["after the trials"] = resident_mb(servers["app"].proc.pid)
    for who in [w for w in ("app", "baseline") if w in pages]:
        page = pages[who]["draw"]
        for path in OTHER_PATHS:  # open every page so that everything the app loads is loaded
            page.goto(f"{servers[who].url}/{path}", timeout=SETUP_TIMEOUT_MS)
            page.wait_for_load_state("networkidle", timeout=SETUP_TIMEOUT_MS)
            wait_idle(page, settle=1.0, timeout=SETUP_TIMEOUT_MS)
            if who == "app":
                memory_steps[f"{path} page open"] = resident_mb(servers["app"].proc.pid)
        # Models load on first use: pick every one in the sidebar (on the latent page, which decodes
        # with it) so that the figure is the app's memory with all shipped models loaded.
        page.goto(f"{servers[who].url}/{LATENT_PATH}", timeout=SETUP_TIMEOUT_MS)
        select_every_model(page)
        if who == "app":
            memory_steps["every model selected"] = resident_mb(servers["app"].proc.pid)
    out["memory"] = {who: resident_mb(servers[who].proc.pid) for who in servers}
    out["memory_steps"] = memory_steps
    for p in pages.values():
        for page in p.values():
            page.context.close()
    return out


def cold_starts(b: Any, env: dict[str, str], logs: Path, *, trials: int, python: str | None = None,
                baseline: Path | None = None) -> dict[str, Any]:
    """``streamlit run`` spawned -> server healthy -> canvas visible -> first digit recognised (a "1"
    drawn as soon as the canvas shows), alternating app and floor (and baseline)."""
    scripts = {"app": APP, "floor": FLOOR}
    if baseline is not None:
        scripts["baseline"] = baseline
    names = list(scripts)
    samples: dict[str, dict[str, list[float]]] = {a: {"healthy": [], "canvas": [], "first_digit": []} for a in names}
    for i in range(trials):
        for who in names[i % len(names):] + names[: i % len(names)]:
            server = start(who, scripts[who], env, logs, python=python)
            try:
                healthy = wait_healthy(server)
                page = open_page(b, server.url)
                box = canvas_box(page, timeout=SETUP_TIMEOUT_MS)
                visible = time.perf_counter() - server.started
                pts = stroke_points(box, "1", random.Random(i))
                page.mouse.move(*pts[0])
                page.mouse.down()
                for x, y in pts[1:]:
                    page.mouse.move(x, y, steps=8)
                page.mouse.up()
                page.locator(f'[data-testid="stMetric"]:has-text("{METRIC_LABEL}")').first.wait_for(
                    timeout=SETUP_TIMEOUT_MS)
                first_digit = time.perf_counter() - server.started
                page.context.close()
                samples[who]["healthy"].append(healthy)
                samples[who]["canvas"].append(visible)
                samples[who]["first_digit"].append(first_digit)
            finally:
                stop_server(server)
    return {who: {k: summarise(v, scale=1.0) for k, v in s.items()} for who, s in samples.items()}


def run(*, quick: bool = False, trials: int | None = None, cold_trials: int | None = None,
        python: str | None = None) -> dict[str, Any]:
    """All browser measures; ``python`` runs the servers under another interpreter (e.g. a venv
    with the CPU-only torch wheel, to compare memory and start-up)."""
    if not APP.exists():
        return {"skipped": f"{APP.relative_to(ROOT)} does not exist yet"}
    trials = trials or (3 if quick else 16)
    cold_trials = cold_trials or (1 if quick else 5)
    baseline = os.environ.get(BASELINE_ENV)
    baseline_app = Path(baseline).resolve() / "app" / "streamlit_app.py" if baseline else None
    with tempfile.TemporaryDirectory(prefix="cvae-bench-browser-") as tmp, browser() as b:
        logs = Path(tmp)
        env = server_env(logs)
        servers = {"app": start("app", APP, env, logs, python=python),
                   "floor": start("floor", FLOOR, env, logs, python=python)}
        if baseline_app is not None:
            servers["baseline"] = start("baseline", baseline_app, env, logs, python=python)
        try:
            for s in servers.values():
                wait_healthy(s)
            idle = {"server up, no page open": resident_mb(servers["app"].proc.pid)}
            out = interaction_trials(b, servers, trials=trials, warmup=1 if quick else 2, memory_steps=idle)
        finally:
            for s in servers.values():
                stop_server(s)
        out["cold_start"] = cold_starts(b, env, logs, trials=cold_trials, python=python, baseline=baseline_app)
        out["cold_start_trials"] = cold_trials
        out["server_python"] = python or sys.executable
    app, floor = out.get("app", {}), out.get("floor", {})
    if "draw" in app and "slider" in app:
        print(f"  browser: stroke->digit p95 {app['draw']['p95']:.0f} ms (floor {floor['draw']['p95']:.0f}), "
              f"slider->image p95 {app['slider']['p95']:.0f} ms (floor {floor['slider']['p95']:.0f}), "
              f"cold start p95 {out['cold_start']['app']['canvas']['p95']:.1f} s, "
              f"RSS {out['memory']['app']['rss_mb']:.0f} MB", flush=True)
    return out

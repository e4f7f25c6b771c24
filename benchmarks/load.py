"""Load: N students drawing at once on one server core, simulated without browsers.

    python -m benchmarks.load                                  # N = 1, 20, 40, 60, 80, 100; 60 s each
    python -m benchmarks.load --sessions 1 2 --duration 20     # a shorter run
    python -m benchmarks.load --quick                          # N = 1, 2 for 15 s: checks that it runs
    python -m benchmarks.load --validate                       # the client against Chromium, one session
    python -m benchmarks.load --reruns                         # server CPU of each rerun, app and floor app
    python -m benchmarks --only load                           # the levels, as a section of the benchmarks

One ``streamlit run app/streamlit_app.py`` serves every session. It is pinned to one core with
``taskset`` and the client (this process) to the other. Each session is a websocket that speaks
Streamlit's own protocol (``benchmarks.streamlit_client``): a real Chromium per session would
need more CPU than the server it measures, and its latencies would be the browsers'.

Each session opens the Draw page and then, every ``--interval`` seconds (the first at a random
offset), presses Clear, sends the canvas value a browser sends for a drawn digit
(``benchmarks.strokes.canvas_value``), a different MNIST test digit every stroke so that no cache
answers it, and times the send to the arrival of the "Recognised digit" element; the answer is
right when it is the digit's label ("3 or 5?" and "Not a digit" are wrong). Then it presses
"Save to archive" and waits for "Saved to the archive as item #N". A digit not answered within
``--timeout`` seconds, or whose run ended without an answer, is missed; saves confirmed to a
session but missing from the archive database afterwards are lost.

Each N gets a fresh server with an empty archive, warmed by one digit (torch and the default pair
loaded) before the sessions open. Per N: p50 / p95 / max of send -> answer, answered, right,
wrong, missed, page errors, saves confirmed / lost, the server's CPU seconds per digit
(``/proc/PID/stat`` over the drawing window), its resident memory warm, with the sessions open
and at most while they draw, and how busy each core was. The knee is the largest N whose p95
(missed digits counted as never answered) is at most ``KNEE_S``.

``--validate`` runs one session of this client and one Chromium page (Playwright, the shapes of
``benchmarks.strokes.STROKES`` drawn with the mouse) against the same server, alternating: the
client's send -> answer against Chromium's websocket send -> answer in the DOM (and its pointer
release -> answer, the canvas's send debounce included).

Results go to ``benchmarks/results.json`` under ``sections.load`` (see ``run``'s docstring).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import results_file
from benchmarks.browser import ARM_DRAW, CHROMIUM, CHROMIUM_ARGS, METRIC_LABEL, TRACK_SENDS
from benchmarks.machine import busy_percent, core_busy, cpu_seconds, load_average, resident_mb
from benchmarks.paths import APP, FLOOR, RESULTS_JSON, ROOT
from benchmarks.servers import Server, server_env, start_server, stop_server, wait_healthy
from benchmarks.streamlit_client import Element, Session
from benchmarks.strokes import STROKES, canvas_value, stroke_points
from benchmarks.targets import TARGETS
from benchmarks.timing import summarise
from cvae_core.checkpoints import now_iso

SESSIONS = (1, 20, 40, 60, 80, 100)
DURATION_S = 60.0
INTERVAL_S = 5.0
TIMEOUT_S = 30.0  # a digit slower than this is missed
KNEE_S = 1.5  # the knee: the largest N whose p95 stays at or under this
SETUP_TIMEOUT_S = 180.0
VALIDATE_TRIALS = 20
SAVE_LABEL = "Save to archive"
SAVED = "Saved to the archive as item"
CANVAS_KEY = "-draw_canvas_"  # the canvas's widget key, numbered by Clear
CLEAR_KEY = "-draw_clear"
FLOOR_CANVAS_KEY = "floor_canvas"  # benchmarks/floor_app.py's canvas
RERUN_SETTLE_S = 0.3  # after a run has finished, for its last messages to be sent
RERUN_DIGITS = 40


# -- the machine ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    """Which core the server runs on and which the client does (None: not pinned)."""

    server: int | None
    client: int | None

    @classmethod
    def choose(cls, enabled: bool) -> Pinning:
        cores = sorted(os.sched_getaffinity(0))
        if not enabled or len(cores) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls(cores[0], cores[1])

    def describe(self) -> str:
        if self.server is None:
            return "not pinned: server and client share every core (fewer than 2 cores, no taskset, or --no-pin)"
        return f"server pinned to CPU {self.server} and the client to CPU {self.client} (taskset)"

    def prefix(self) -> tuple[str, ...]:
        return () if self.server is None else ("taskset", "--cpu-list", str(self.server))


def start_app(logs: Path, pinning: Pinning) -> tuple[Server, dict[str, str]]:
    env = server_env(logs)
    server = start_server("app", APP, env, logs, prefix=pinning.prefix(), watch_files=False)
    return server, env


def archive_count(url: str) -> int:
    from cvae_core.archive import Archive

    archive = Archive.from_url(url)
    try:
        return archive.count()
    finally:
        archive.engine.dispose()


# -- the digits ----------------------------------------------------------------------------------------


class Digits:
    """MNIST test digits in a seeded random order, each handed out once, as canvas values."""

    def __init__(self, count: int, *, seed: int) -> None:
        from cvae_core.data import load_mnist

        data = load_mnist(checksums=False)
        order = np.random.default_rng(seed).permutation(len(data.test_labels))[:count]
        images, labels = data.test_images.numpy(), data.test_labels.numpy()
        self._values = [(canvas_value(images[i].reshape(28, 28)), int(labels[i])) for i in order]
        self._next = 0

    def take(self) -> tuple[str, int]:
        """(canvas value, label) of the next digit; after the last one, the first again."""
        value = self._values[self._next % len(self._values)]
        self._next += 1
        return value


# -- one session ---------------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies_s: list[float] = field(default_factory=list)
    right: int = 0
    wrong: int = 0
    missed: int = 0
    errors: list[str] = field(default_factory=list)
    saves_confirmed: int = 0
    saves_unconfirmed: int = 0


def is_answer(e: Element) -> bool:
    return e.kind == "metric" and e.proto.label == METRIC_LABEL


def is_error(e: Element) -> bool:
    return e.kind == "exception" or (e.kind == "alert" and e.proto.format == e.proto.ERROR)


def is_saved(e: Element) -> bool:
    return e.kind == "alert" and e.proto.body.startswith(SAVED)


async def draw(session: Session, value: str, *, timeout: float) -> tuple[float | None, str | None, Any]:
    """Send one drawing; (seconds from the send to the answer's arrival, the answer), or (None,
    None) when it never comes, and the run."""
    canvas = session.widget(lambda i, e: CANVAS_KEY in i)
    if canvas is None:
        raise RuntimeError("the Draw page shows no canvas")
    session.set_json(canvas.proto.id, value)
    sent = time.perf_counter()
    run = await asyncio.wait_for(session.rerun(), timeout)
    answer = await session.wait_for(run, is_answer, timeout=max(0.0, timeout - (time.perf_counter() - sent)))
    if answer is None:
        return None, None, run
    return answer.at - sent, answer.proto.body, run


async def press(session: Session, test: Any, *, timeout: float) -> Any | None:
    """Press the button ``test`` picks, as the browser does (with its fragment), and return the run."""
    button = session.widget(test)
    if button is None or button.proto.disabled:
        return None
    return await asyncio.wait_for(session.rerun(trigger=button.proto.id, fragment_id=button.fragment_id), timeout)


async def finished(run: Any, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(run.finished.wait(), timeout)


async def one_digit(session: Session, digits: Digits, tally: Tally, *, clear: bool, save: bool, timeout: float) -> None:
    """Clear, draw the next digit, check the answer, save it."""
    if clear:
        run = await press(session, lambda i, e: i.endswith(CLEAR_KEY), timeout=timeout)
        if run is not None:
            await finished(run, timeout)
    value, label = digits.take()
    seconds, answer, run = await draw(session, value, timeout=timeout)
    if seconds is None:
        tally.missed += 1
        return
    tally.latencies_s.append(seconds)
    if answer == str(label):
        tally.right += 1
    else:
        tally.wrong += 1
    await finished(run, timeout)
    tally.errors += [f"{e.kind}: {getattr(e.proto, 'body', '')[:120]}" for e in run.elements if is_error(e)]
    if not save:
        return
    saving = await press(session, lambda i, e: e.kind == "button" and e.proto.label == SAVE_LABEL, timeout=timeout)
    if saving is None:
        tally.errors.append("no Save button after an answer")
        return
    if await session.wait_for(saving, is_saved, timeout=timeout) is not None:
        tally.saves_confirmed += 1
    else:
        tally.saves_unconfirmed += 1
    await finished(saving, timeout)


async def student(session: Session, digits: Digits, tally: Tally, *, until: float, interval: float, clear: bool,
                  save: bool, timeout: float, rng: random.Random) -> None:
    """One session: a digit every ``interval`` seconds until ``until`` (perf_counter)."""
    next_at = time.perf_counter() + rng.uniform(0, interval)
    while True:
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        if time.perf_counter() >= until:
            return
        next_at = max(next_at + interval, time.perf_counter())  # a late digit is not made up for
        try:
            await one_digit(session, digits, tally, clear=clear, save=save, timeout=timeout)
        except (TimeoutError, ConnectionError, RuntimeError) as e:
            tally.missed += 1
            tally.errors.append(f"{type(e).__name__}: {str(e)[:120]}")
            if session.closed_reason:
                return


# -- N sessions ----------------------------------------------------------------------------------------


async def rss_sampler(pid: int, peak: dict[str, float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak["max"] = max(peak.get("max", 0.0), resident_mb(pid)["rss_mb"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)


async def open_sessions(url: str, n: int) -> list[Session]:
    """``n`` sessions on the Draw page, opened one after another (setup, not measured)."""
    return [await Session.open(url, timeout=SETUP_TIMEOUT_S) for _ in range(n)]


async def warm_up(url: str, digits: Digits) -> None:
    """One digit drawn and answered: torch imported and the default pair loaded."""
    session = await Session.open(url, timeout=SETUP_TIMEOUT_S)
    try:
        await one_digit(session, digits, Tally(), clear=False, save=False, timeout=SETUP_TIMEOUT_S)
    finally:
        await session.close()


async def one_level(n: int, digits: Digits, *, duration: float, interval: float, clear: bool, save: bool,
                    timeout: float, pinning: Pinning, seed: int) -> dict[str, Any]:
    """A fresh server, warmed; ``n`` sessions opened; then ``duration`` seconds of drawing."""
    with tempfile.TemporaryDirectory(prefix=f"cvae-bench-load-{n}-") as tmp:
        server, env = start_app(Path(tmp), pinning)
        try:
            await asyncio.to_thread(wait_healthy, server, timeout=SETUP_TIMEOUT_S)
            await warm_up(server.url, digits)
            pid = server.proc.pid
            rss_warm = resident_mb(pid)["rss_mb"]
            sessions = await open_sessions(server.url, n)
            rss_open = resident_mb(pid)["rss_mb"]
            saved_before = archive_count(env["CVAE_ARCHIVE_URL"])
            tallies = [Tally() for _ in sessions]
            peak: dict[str, float] = {}
            stop = asyncio.Event()
            sampler = asyncio.create_task(rss_sampler(pid, peak, stop))
            cpu0, wall0, own0 = cpu_seconds(pid), time.perf_counter(), time.process_time()
            cores0 = {c: core_busy(c) for c in (pinning.server, pinning.client) if c is not None}
            until = wall0 + duration
            await asyncio.gather(*(student(s, digits, t, until=until, interval=interval, clear=clear, save=save,
                                           timeout=timeout, rng=random.Random(seed * 1000 + i))
                                   for i, (s, t) in enumerate(zip(sessions, tallies, strict=True))))
            cpu1, wall1, own1 = cpu_seconds(pid), time.perf_counter(), time.process_time()
            busy = {c: busy_percent(before, core_busy(c)) for c, before in cores0.items()}
            stop.set()
            await sampler
            rss_end = resident_mb(pid)["rss_mb"]
            for s in sessions:
                await s.close()
            out = summarise_level(n, tallies, server_cpu=cpu1 - cpu0, client_cpu=own1 - own0, wall=wall1 - wall0,
                                  in_archive=archive_count(env["CVAE_ARCHIVE_URL"]) - saved_before)
            out["server_rss_mb"] = {"warm": rss_warm, "sessions_open": rss_open, "max": peak.get("max", rss_end),
                                    "end": rss_end, "per_session": round((rss_open - rss_warm) / n, 2)}
            if pinning.server is not None:
                out["server_core_busy_percent"] = busy[pinning.server]
                out["client_core_busy_percent"] = busy[pinning.client]
            return out
        finally:
            stop_server(server)


def p95_with_missed(latencies_s: list[float], missed: int) -> float:
    """The 95th percentile with every missed digit counted as never answered (infinite)."""
    values = np.array(latencies_s + [np.inf] * missed, dtype=np.float64)
    return float(np.percentile(values, 95, method="higher")) if len(values) else float("inf")


def summarise_level(n: int, tallies: list[Tally], *, server_cpu: float, client_cpu: float, wall: float,
                    in_archive: int) -> dict[str, Any]:
    latencies = [s for t in tallies for s in t.latencies_s]
    missed = sum(t.missed for t in tallies)
    errors = [e for t in tallies for e in t.errors]
    confirmed = sum(t.saves_confirmed for t in tallies)
    digits = len(latencies) + missed
    worst = p95_with_missed(latencies, missed)
    return {
        "sessions": n,
        "digits": digits,
        "answered": len(latencies),
        "right": sum(t.right for t in tallies),
        "wrong": sum(t.wrong for t in tallies),
        "missed": missed,
        "latency_ms": summarise(latencies) if latencies else None,
        "max_ms": round(max(latencies) * 1e3, 1) if latencies else None,
        "p95_with_missed_s": None if np.isinf(worst) else round(worst, 3),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "saves": {"confirmed": confirmed, "unconfirmed": sum(t.saves_unconfirmed for t in tallies),
                  "in_archive": in_archive, "lost": max(0, confirmed - in_archive)},
        "window_s": round(wall, 1),
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_per_digit_s": round(server_cpu / digits, 3) if digits else None,
        "client_cpu_per_digit_s": round(client_cpu / digits, 4) if digits else None,
    }


def knee(levels: dict[str, dict[str, Any]]) -> int | None:
    """The largest N whose p95 (missed digits as never answered) is at most ``KNEE_S``."""
    ok = [int(n) for n, r in levels.items() if r.get("p95_with_missed_s") is not None and r["p95_with_missed_s"] <= KNEE_S]
    return max(ok) if ok else None


# -- the client against Chromium -----------------------------------------------------------------------


async def chromium_trial(page: Any, digit: str, rng: random.Random, timeout_s: float) -> dict[str, float]:
    """Clear, draw ``digit`` with the mouse; ms from the release and from the send to the answer."""
    clear = page.locator('[data-testid="stButton"]').get_by_role("button", name="Clear", exact=True)
    if await clear.is_enabled():
        await clear.click()
        await page.wait_for_function(
            """(label) => !Array.from(document.querySelectorAll('[data-testid="stMetric"]'))
                             .some((m) => m.innerText.includes(label))""", arg=METRIC_LABEL, timeout=timeout_s * 1000)
    canvas = page.locator("canvas.upper-canvas").first
    await canvas.wait_for(state="visible", timeout=timeout_s * 1000)
    await asyncio.sleep(0.3)
    points = stroke_points(await canvas.bounding_box(), digit, rng)
    await page.evaluate(ARM_DRAW, METRIC_LABEL)
    await page.mouse.move(*points[0])
    await page.mouse.down()
    for x, y in points[1:]:
        await page.mouse.move(x, y, steps=4)
    await page.mouse.up()
    await page.wait_for_function("() => window.__bench.done !== null", timeout=timeout_s * 1000)
    b = await page.evaluate("() => window.__bench")
    return {"release_ms": b["done"] - b["input"], "send_ms": b["done"] - b["sent"], "answer": b["text"]}


async def validate(*, trials: int, pinning: Pinning, timeout: float, seed: int) -> dict[str, Any]:
    """One protocol session and one Chromium page on one server, trials alternated."""
    from playwright.async_api import async_playwright

    digits = Digits(trials + 1, seed=seed)
    rng = random.Random(seed)
    shapes = list(STROKES)
    client_s: list[float] = []
    client_right = 0
    browser: dict[str, list[float]] = {"release_ms": [], "send_ms": []}
    browser_right = 0
    with tempfile.TemporaryDirectory(prefix="cvae-bench-validate-") as tmp:
        server, _ = start_app(Path(tmp), pinning)
        try:
            await asyncio.to_thread(wait_healthy, server, timeout=SETUP_TIMEOUT_S)
            await warm_up(server.url, digits)
            async with async_playwright() as p:
                chromium = await p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else None,
                                                   args=CHROMIUM_ARGS)
                page = await (await chromium.new_context(viewport={"width": 1280, "height": 900})).new_page()
                await page.add_init_script(f"({TRACK_SENDS})()")
                await page.goto(server.url, timeout=SETUP_TIMEOUT_S * 1000)
                await page.locator("canvas.upper-canvas").first.wait_for(timeout=SETUP_TIMEOUT_S * 1000)
                session = await Session.open(server.url, timeout=SETUP_TIMEOUT_S)
                for i in range(trials + 1):  # the first of each warms up
                    shape = shapes[i % len(shapes)]
                    b = await chromium_trial(page, shape, rng, timeout)
                    tally = Tally()
                    await one_digit(session, digits, tally, clear=True, save=False, timeout=timeout)
                    if i == 0:
                        continue
                    browser["release_ms"].append(b["release_ms"] / 1e3)
                    browser["send_ms"].append(b["send_ms"] / 1e3)
                    browser_right += b["answer"] == shape
                    client_s += tally.latencies_s
                    client_right += tally.right
                await session.close()
                await chromium.close()
        finally:
            stop_server(server)
    return {
        "trials": trials,
        "client_send_to_answer_ms": summarise(client_s) if client_s else None,
        "client_right": client_right,
        "chromium_send_to_answer_ms": summarise(browser["send_ms"]),
        "chromium_release_to_answer_ms": summarise(browser["release_ms"]),
        "chromium_right": browser_right,
    }


# -- the whole benchmark -------------------------------------------------------------------------------


async def _cpu_of(pid: int, idle: float, action: Any) -> float:
    """Server CPU seconds that ``action`` (a coroutine making one run and waiting for its end)
    costs, less the server's idle rate over the same window (a short settle included)."""
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    await action
    await asyncio.sleep(RERUN_SETTLE_S)
    return cpu_seconds(pid) - c0 - idle * (time.perf_counter() - t0)


async def _idle_rate(pid: int) -> float:
    c0 = cpu_seconds(pid)
    await asyncio.sleep(3.0)
    return (cpu_seconds(pid) - c0) / 3.0


async def rerun_costs(*, digits: int, pinning: Pinning, seed: int) -> dict[str, Any]:
    """Server CPU per rerun, one session, each rerun alone: the app's Clear, drawing and Save, and
    the floor app's drawing (``benchmarks/floor_app.py``: the same canvas and an ``st.metric``)."""
    out: dict[str, Any] = {"digits": digits}
    with tempfile.TemporaryDirectory(prefix="cvae-bench-reruns-") as tmp:
        for name, script in (("app", APP), ("floor", FLOOR)):
            env = server_env(Path(tmp))
            server = start_server(name, script, env, Path(tmp), prefix=pinning.prefix(), watch_files=False)
            try:
                await asyncio.to_thread(wait_healthy, server, timeout=SETUP_TIMEOUT_S)
                session = await Session.open(server.url, timeout=SETUP_TIMEOUT_S)
                pool = Digits(digits + 2, seed=seed)  # the same digits for both apps
                costs: dict[str, list[float]] = {"clear": [], "draw": [], "save": []} if name == "app" else {"draw": []}
                if name == "app":  # warm: torch imported, the pair loaded
                    await one_digit(session, pool, Tally(), clear=False, save=True, timeout=SETUP_TIMEOUT_S)
                idle = await _idle_rate(server.proc.pid)
                for _ in range(digits):
                    costs_here = await _one_rerun_each(session, pool, server.proc.pid, idle, app=name == "app")
                    for kind, cpu in costs_here.items():
                        costs[kind].append(cpu)
                await session.close()
                out[name] = {kind: summarise(v) for kind, v in costs.items()}  # seconds in, ms out
                out[name]["idle_ms_per_s"] = round(1000 * idle, 1)
            finally:
                stop_server(server)
    return out


async def _one_rerun_each(session: Session, pool: Digits, pid: int, idle: float, *, app: bool) -> dict[str, float]:
    async def pressed(test: Any) -> None:
        run = await press(session, test, timeout=TIMEOUT_S)
        if run is not None:
            await finished(run, TIMEOUT_S)

    async def drawn() -> None:
        value, _ = pool.take()
        if app:
            _, _, run = await draw(session, value, timeout=TIMEOUT_S)
        else:
            canvas = session.widget(lambda i, e: FLOOR_CANVAS_KEY in i)
            session.set_json(canvas.proto.id, value)
            run = await asyncio.wait_for(session.rerun(), TIMEOUT_S)
        await finished(run, TIMEOUT_S)

    if not app:
        return {"draw": await _cpu_of(pid, idle, drawn())}
    clear = await _cpu_of(pid, idle, pressed(lambda i, e: i.endswith(CLEAR_KEY)))
    drawing = await _cpu_of(pid, idle, drawn())
    save = await _cpu_of(pid, idle, pressed(lambda i, e: e.kind == "button" and e.proto.label == SAVE_LABEL))
    return {"clear": clear, "draw": drawing, "save": save}


async def _run(levels: list[int], *, duration: float, interval: float, clear: bool, save: bool, timeout: float,
               pinning: Pinning, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"client": "websocket protocol (benchmarks.streamlit_client)", "pinning": pinning.describe(),
                           "server_cpu": pinning.server, "client_cpu": pinning.client, "duration_s": duration,
                           "interval_s": interval, "clear": clear, "save": save, "timeout_s": timeout, "levels": {}}
    per_session = int(duration / interval) + 2
    digits = Digits(max(levels) * per_session + 1, seed=seed)
    for n in levels:
        print(f"  load: {n} session{'s' * (n != 1)} for {duration:g} s, a digit every {interval:g} s ...", flush=True)
        r = await one_level(n, digits, duration=duration, interval=interval, clear=clear, save=save, timeout=timeout,
                            pinning=pinning, seed=seed)
        r["load_average"] = load_average()[0]
        out["levels"][str(n)] = r
        lat = r["latency_ms"] or {}
        print(f"  load: N={n}: {r['digits']} digits, send->answer p50 {lat.get('p50', float('nan')):.0f} ms "
              f"p95 {lat.get('p95', float('nan')):.0f} ms max {r['max_ms']} ms; right {r['right']}, wrong {r['wrong']}, "
              f"missed {r['missed']}, errors {r['errors']}; saves {r['saves']['confirmed']} confirmed / "
              f"{r['saves']['lost']} lost; server {r['server_cpu_per_digit_s']} CPU-s/digit, RSS max "
              f"{r['server_rss_mb']['max']:.0f} MB; cores busy: server {r.get('server_core_busy_percent', '?')} %, "
              f"client {r.get('client_core_busy_percent', '?')} %", flush=True)
    out["knee"] = knee(out["levels"])
    return out


def run(*, quick: bool = False, sessions: list[int] | None = None, duration: float | None = None,
        interval: float = INTERVAL_S, clear: bool = True, save: bool = True, timeout: float = TIMEOUT_S,
        pin: bool = True, seed: int = 0) -> dict[str, Any]:
    """The load section of ``benchmarks/results.json``::

        {"client", "pinning": str, "server_cpu": int|None, "client_cpu": int|None, "duration_s",
         "interval_s", "clear", "save", "timeout_s", "knee": int|None,
         "levels": {"N": {"sessions", "digits", "answered", "right", "wrong", "missed",
                          "latency_ms": {p50, p95, mean, min, n} | None, "max_ms", "p95_with_missed_s",
                          "errors", "error_examples", "saves": {"confirmed", "unconfirmed", "in_archive", "lost"},
                          "window_s", "server_cpu_s", "server_cpu_per_digit_s", "client_cpu_per_digit_s",
                          "server_rss_mb": {"warm", "sessions_open", "max", "end", "per_session"},
                          "server_core_busy_percent", "client_core_busy_percent", "load_average"}}}

    This process (the client) is pinned to its core for the run.
    """
    if not APP.exists():
        return {"skipped": f"{APP.relative_to(ROOT)} does not exist"}
    levels = sessions or ([1, 2] if quick else list(SESSIONS))
    duration = duration or (15.0 if quick else DURATION_S)
    pinning = Pinning.choose(pin)
    print(f"  load: {pinning.describe()}", flush=True)
    with pinned_client(pinning):
        return asyncio.run(_run(levels, duration=duration, interval=interval, clear=clear, save=save,
                                timeout=timeout, pinning=pinning, seed=seed))


@contextlib.contextmanager
def pinned_client(pinning: Pinning) -> Iterator[None]:
    """This process (and what it starts) on the client's core while the block runs."""
    own = os.sched_getaffinity(0)
    if pinning.client is not None:
        os.sched_setaffinity(0, {pinning.client})  # inherited by Playwright's driver and Chromium
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)


# -- the report ----------------------------------------------------------------------------------------


def _s(ms: float | None) -> str:
    return "—" if ms is None else f"{ms / 1000:.2f} s"


def report_lines(section: dict[str, Any]) -> list[str]:
    """The README's classroom table: one row per N, then the targets."""
    if "client" not in section:  # a run of the Chromium-per-session benchmark this one replaced
        return ["Not measured yet: run `python -m benchmarks.load` on a quiet machine. (The earlier run drove one "
                "Chromium per session; on one client core it measured the browsers, not the server.)"]
    head = ["sessions", "digits", "p50", "p95", "max", "missed", "wrong", "errors", "saves lost",
            "server CPU per digit", "server RSS (max)", "server core busy", "client core busy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    levels = section.get("levels", {})
    for n, r in levels.items():
        lat = r.get("latency_ms") or {}
        lines.append("| " + " | ".join([
            str(n), str(r["digits"]), _s(lat.get("p50")), _s(lat.get("p95")), _s(r.get("max_ms")), str(r["missed"]),
            str(r["wrong"]), str(r["errors"]), f"{r['saves']['lost']} of {r['saves']['confirmed']}",
            "—" if r.get("server_cpu_per_digit_s") is None else f"{r['server_cpu_per_digit_s']:.3f} s",
            f"{r['server_rss_mb']['max']:.0f} MB", f"{r.get('server_core_busy_percent', 0):.0f} %",
            f"{r.get('client_core_busy_percent', 0):.0f} %",
        ]) + " |")
    sixty = levels.get("60") or {}
    # The CPU a digit costs where it decides the knee: at 60 sessions. With one session, the
    # server's idle work (its event loop, the session's keep-alive) is shared by a digit every 5 s.
    rows = [
        ("stroke -> answer p95, 60 sessions", "stroke -> answer p95, 60 sessions", sixty.get("p95_with_missed_s")),
        ("the knee (largest N with p95 <= 1.5 s)", "the knee (largest N with p95 <= 1.5 s)", section.get("knee")),
        ("server CPU per digit", "server CPU per digit, 60 sessions", sixty.get("server_cpu_per_digit_s")),
        ("server RSS, 60 sessions", "server RSS, 60 sessions", (sixty.get("server_rss_mb") or {}).get("max")),
    ]
    lines += ["", "| target | measured | bound | met |", "|---|---|---|---|"]
    for key, name, value in rows:
        op, bound, unit = TARGETS[key]
        met = "—" if value is None else "yes" if (value <= bound if op == "<=" else value >= bound) else "**no**"
        lines.append(f"| {name} | {'not measured' if value is None else f'{value:g} {unit}'} | {op} {bound:g} {unit} | {met} |")
    v = section.get("validation")
    lines += ["", f"The {section.get('pinning', '')}. Each session presses Clear, sends a new MNIST test digit as the "
              f"canvas does every {section.get('interval_s'):g} s for {section.get('duration_s'):g} s, and saves it; "
              "latency is the send to the answer's arrival; a missed digit counts as never answered in the knee's p95. "
              f"1-minute load average before and after: {section.get('load_average')}."]
    if v:
        c, b = v["client_send_to_answer_ms"] or {}, v["chromium_send_to_answer_ms"]
        lines += ["", f"The client against Chromium, one session each on the same server ({v['trials']} digits each, "
                  f"alternated): send -> answer p50 / p95 {c.get('p50', 0):.0f} / {c.get('p95', 0):.0f} ms for the "
                  f"client, {b['p50']:.0f} / {b['p95']:.0f} ms for Chromium (to the answer in the DOM; from the "
                  f"stroke's release, the canvas's send debounce included: "
                  f"{v['chromium_release_to_answer_ms']['p50']:.0f} / {v['chromium_release_to_answer_ms']['p95']:.0f} ms)."]
    r = section.get("reruns")
    if r and "app" in r and "floor" in r:
        a, f = r["app"], r["floor"]
        total = sum(a[k]["mean"] for k in ("clear", "draw", "save"))
        lines += ["", f"Where a digit's CPU goes (`python -m benchmarks.load --reruns`, one session, {r['digits']} digits, "
                  f"each rerun alone, the server's idle rate taken off; {r['generated'][:10]}): the app's Clear "
                  f"{a['clear']['mean']:.0f} ms, drawing {a['draw']['mean']:.0f} ms and Save {a['save']['mean']:.0f} ms "
                  f"(means: the kernel counts CPU time in 10 ms ticks; {total:.0f} ms a digit), against "
                  f"{f['draw']['mean']:.0f} ms for the floor app's drawing (the same canvas feeding one `st.metric`)."]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, nargs="+", default=None, help=f"concurrent sessions to try (default {SESSIONS})")
    p.add_argument("--duration", type=float, default=None, help=f"seconds of drawing per N (default {DURATION_S:g})")
    p.add_argument("--interval", type=float, default=INTERVAL_S, help="seconds between a session's digits")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds after which a digit is missed")
    p.add_argument("--no-clear", action="store_true", help="draw each digit without pressing Clear first")
    p.add_argument("--no-save", action="store_true", help="do not save the digits")
    p.add_argument("--no-pin", action="store_true", help="do not pin the server and the client to separate cores")
    p.add_argument("--validate", action="store_true",
                   help=f"only the client against Chromium, one session each ({VALIDATE_TRIALS} digits)")
    p.add_argument("--trials", type=int, default=VALIDATE_TRIALS, help="digits per side for --validate")
    p.add_argument("--reruns", action="store_true",
                   help=f"only the server CPU of each rerun (Clear, drawing, Save; the floor app's drawing), one session, "
                        f"{RERUN_DIGITS} digits")
    p.add_argument("--quick", action="store_true", help="N = 1, 2 for 15 s: checks that it runs")
    p.add_argument("--no-write", action="store_true", help=f"print only; leave {RESULTS_JSON.name} alone")
    args = p.parse_args(argv)
    before, t0 = load_average()[0], time.perf_counter()
    section = results_file.read().get("sections", {}).get("load") or {}
    if args.validate:
        pinning = Pinning.choose(not args.no_pin)
        with pinned_client(pinning):
            v = asyncio.run(validate(trials=args.trials, pinning=pinning, timeout=args.timeout, seed=0))
        v["load_average"] = [before, load_average()[0]]
        v["generated"] = now_iso()
        print(json.dumps(v, indent=1))
        section["validation"] = v
    elif args.reruns:
        pinning = Pinning.choose(not args.no_pin)
        with pinned_client(pinning):
            r = asyncio.run(rerun_costs(digits=3 if args.quick else RERUN_DIGITS, pinning=pinning, seed=0))
        r.update(load_average=[before, load_average()[0]], generated=now_iso(), quick=args.quick)
        print(json.dumps(r, indent=1))
        section["reruns"] = r
    else:
        out = run(quick=args.quick, sessions=args.sessions, duration=args.duration, interval=args.interval,
                  clear=not args.no_clear, save=not args.no_save, timeout=args.timeout, pin=not args.no_pin)
        out.update(load_average=[before, load_average()[0]], seconds=round(time.perf_counter() - t0, 1), quick=args.quick,
                   generated=now_iso())
        for kept in ("validation", "reruns"):
            if kept in section:
                out[kept] = section[kept]
        section = out
        print(f"  load: the knee is N = {out.get('knee')}")
    if not args.no_write:
        results_file.write_section("load", section)
        print(f"wrote sections.load of {RESULTS_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

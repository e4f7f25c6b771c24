"""Load: N students drawing at once on one server, timed inside their pages.

    python -m benchmarks.load                                   # N = 1, 5, 10, 20, 30; 60 s each
    python -m benchmarks.load --sessions 1 5 --duration 20      # a shorter run
    python -m benchmarks.load --quick                           # N = 1, 2 for 15 s: checks that it runs
    python -m benchmarks --only load                            # the same, as a section of the benchmarks

One ``streamlit run app/streamlit_app.py`` serves every session. It is pinned to one core with
``taskset`` and the client (Playwright's driver and Chromium, one browser context per session) to
the other, so that the browsers do not take the server's CPU; the output says so, and records how
busy each core was: a client core near 100 % means the browsers, not the server, set the pace.
Every model is loaded before the sessions start (picked once each in the sidebar), so the memory
figure is the app's with all models and N sessions open.

Each session opens the Draw page and then, until the time is up, every ``--interval`` seconds
(first one at a random offset): clears the canvas, draws a digit with the mouse (the shapes of
``benchmarks.common.STROKES``, shifted a little each time) and times the stroke's release to the
"Recognised digit" value in the DOM with ``benchmarks.browser.ARM_DRAW`` (the input event's own
timestamp and a MutationObserver; the canvas's 200 ms send debounce included). Every
``--save-every``-th digit is then saved with "Save to archive" and its confirmation awaited. A digit
not shown within ``--timeout`` seconds, or an error shown by the page, is an error; saves confirmed
in the page but missing from the archive database afterwards are lost. Each N gets a fresh server
with an empty archive of its own.

Server CPU per drawn digit is measured on its own, with one session and nothing else running:
user + system time of the server process (``/proc/PID/stat``) from just before the mouse goes down
to the end of that run (the process's CPU clock has stopped moving for 0.3 s), median of
``--cpu-digits`` digits. It is the capacity figure that does not depend on the client.

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
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.browser import (
    APP,
    ARM_DRAW,
    CHROMIUM,
    CHROMIUM_ARGS,
    IDLE,
    LATENT_PATH,
    METRIC_LABEL,
    Server,
    free_port,
    resident_mb,
    server_env,
    stop_server,
    stroke_points,
    wait_healthy,
)
from benchmarks.common import RESULTS_JSON, ROOT, STROKES, load_average, summarise

SESSIONS = (1, 5, 10, 20, 30)
DURATION_S = 60.0
INTERVAL_S = 5.0
SAVE_EVERY = 3  # a student saves some digits, not all
TIMEOUT_S = 30.0  # a digit slower than this is an error
SETUP_TIMEOUT_MS = 180_000
CPU_DIGITS = 10
SETTLE_S = 0.3  # the server's CPU clock must stand still this long for a run to count as finished
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
SAVED = '[data-testid="stAlertContentSuccess"]:has-text("Saved to the archive as item")'
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the machine ---------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: fields 14 and 15 of stat(5)


def core_busy(cpu: int) -> tuple[int, int]:
    """(busy, total) jiffies of one CPU since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]  # idle + iowait
            return sum(values) - idle, sum(values)
    raise ValueError(f"no cpu{cpu} in /proc/stat")


def busy_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return round(100 * (after[0] - before[0]) / total, 1) if total else 0.0


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
            return "not pinned: server and browsers share every core (fewer than 2 cores, no taskset, or --no-pin)"
        return f"server pinned to CPU {self.server} and browsers to CPU {self.client} (taskset)"

    def server_command(self, command: list[str]) -> list[str]:
        return command if self.server is None else ["taskset", "--cpu-list", str(self.server), *command]


def start_app(env: dict[str, str], logs: Path, pinning: Pinning) -> Server:
    port = free_port()
    log = logs / f"app-{port}.log"
    command = pinning.server_command([sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
                                      "--server.port", str(port), "--server.address", "127.0.0.1",
                                      "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"])
    started = time.perf_counter()
    with open(log, "wb") as f:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    return Server("app", APP, port, proc, started, log)  # taskset execs the server: same pid


def archive_count(url: str) -> int:
    from cvae_core.archive import Archive

    archive = Archive.from_url(url)
    try:
        return archive.count()
    finally:
        archive.engine.dispose()


# -- one page ------------------------------------------------------------------------------------------


async def open_draw_page(browser: Any, url: str) -> Any:
    page = await (await browser.new_context(viewport={"width": 1400, "height": 1000})).new_page()
    page.set_default_timeout(SETUP_TIMEOUT_MS)
    await page.goto(url, wait_until="domcontentloaded")
    await page.locator("canvas.upper-canvas").first.wait_for(state="visible")
    await page.wait_for_function(IDLE)
    return page


async def clear(page: Any, timeout_ms: float) -> None:
    await page.get_by_role("button", name="Reset canvas & history").first.click(timeout=timeout_ms)
    await page.wait_for_function(
        """(label) => !Array.from(document.querySelectorAll('[data-testid="stMetric"]'))
                         .some((m) => m.innerText.includes(label))""", arg=METRIC_LABEL, timeout=timeout_ms)
    await page.wait_for_function(IDLE, timeout=timeout_ms)


async def stroke(page: Any, digit: str, rng: random.Random) -> None:
    box = await page.locator("canvas.upper-canvas").first.bounding_box()
    points = stroke_points(box, digit, rng)
    await page.mouse.move(*points[0])
    await page.mouse.down()
    for x, y in points[1:]:
        await page.mouse.move(x, y, steps=4)
    await page.mouse.up()


async def draw(page: Any, digit: str, rng: random.Random, timeout_ms: float) -> float:
    """Clear, draw ``digit``; ms from the stroke's release to the recognised digit in the DOM."""
    await clear(page, timeout_ms)
    await page.evaluate(ARM_DRAW, METRIC_LABEL)
    await stroke(page, digit, rng)
    await page.wait_for_function("() => window.__bench.done !== null", timeout=timeout_ms)
    r = await page.evaluate("() => window.__bench")
    return r["done"] - r["input"]


async def save(page: Any, timeout_ms: float) -> None:
    await page.wait_for_function(IDLE, timeout=timeout_ms)
    await page.get_by_role("button", name="Save to archive").first.click(timeout=timeout_ms)
    await page.locator(SAVED).first.wait_for(timeout=timeout_ms)


async def load_every_model(browser: Any, url: str) -> int:
    """Pick each model of the sidebar's picker once, on the Latent page (which decodes with it)."""
    page = await (await browser.new_context(viewport={"width": 1400, "height": 1000})).new_page()
    page.set_default_timeout(SETUP_TIMEOUT_MS)
    await page.goto(f"{url}/{LATENT_PATH}", wait_until="domcontentloaded")
    picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    await picker.wait_for()
    await picker.click()
    count = await page.get_by_role("option").count()
    await page.keyboard.press("Escape")
    for i in range(count):
        await picker.click()
        await page.get_by_role("option").nth(i).click()
        await page.wait_for_function(IDLE)
        await asyncio.sleep(1.0)
    await page.context.close()
    return count


# -- N sessions ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    saves_clicked: int = 0
    saves_confirmed: int = 0


async def student(page: Any, *, until: float, interval: float, save_every: int, timeout_s: float,
                  rng: random.Random, tally: Tally) -> None:
    """One session: a digit every ``interval`` seconds until ``until`` (monotonic), recovering from errors."""
    digits = list(STROKES)
    next_at = time.monotonic() + rng.uniform(0, interval)
    n = 0
    while True:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if time.monotonic() >= until:
            return
        next_at = max(next_at + interval, time.monotonic())  # late digits are not made up for
        try:
            ms = await draw(page, digits[n % len(digits)], rng, timeout_s * 1000)
            tally.latencies_s.append(ms / 1e3)
            if await page.locator(ERRORS).count():
                tally.errors.append("the page shows an error")
            if save_every and n % save_every == 0:
                tally.saves_clicked += 1
                await save(page, timeout_s * 1000)
                tally.saves_confirmed += 1
        except Exception as e:  # a timed-out digit is counted; the page is reloaded for the next
            tally.errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:160]}")
            print(f"  load: digit {n} of a session failed: {tally.errors[-1]}", flush=True)
            try:
                await page.reload(timeout=SETUP_TIMEOUT_MS)
                await page.locator("canvas.upper-canvas").first.wait_for(state="visible", timeout=SETUP_TIMEOUT_MS)
            except Exception as again:
                tally.errors.append(f"reload failed: {type(again).__name__}")
                return
        n += 1


async def rss_sampler(pid: int, peak: dict[str, float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak["max"] = max(peak.get("max", 0.0), resident_mb(pid)["rss_mb"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


async def one_level(playwright: Any, n: int, *, duration: float, interval: float, save_every: int,
                    timeout_s: float, pinning: Pinning, all_models: bool, seed: int) -> dict[str, Any]:
    """A fresh server, every model loaded, ``n`` sessions opened, then ``duration`` seconds of drawing."""
    with tempfile.TemporaryDirectory(prefix=f"cvae-bench-load-{n}-") as tmp:
        logs = Path(tmp)
        env = server_env(logs)
        server = start_app(env, logs, pinning)
        browser = await playwright.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else None,
                                                   args=CHROMIUM_ARGS)
        try:
            await asyncio.to_thread(wait_healthy, server, timeout=SETUP_TIMEOUT_MS / 1000)
            models = await load_every_model(browser, server.url) if all_models else 0
            pages = [await open_draw_page(browser, server.url) for _ in range(n)]  # one at a time: setup is not measured
            saved_before = archive_count(env["CVAE_ARCHIVE_URL"])
            tallies = [Tally() for _ in pages]
            peak: dict[str, float] = {}
            stop = asyncio.Event()
            sampler = asyncio.create_task(rss_sampler(server.proc.pid, peak, stop))
            cpu0, wall0 = cpu_seconds(server.proc.pid), time.monotonic()
            client0 = core_busy(pinning.client) if pinning.client is not None else None
            server0 = core_busy(pinning.server) if pinning.server is not None else None
            until = wall0 + duration
            await asyncio.gather(*(student(p, until=until, interval=interval, save_every=save_every,
                                           timeout_s=timeout_s, rng=random.Random(seed * 1000 + i), tally=t)
                                   for i, (p, t) in enumerate(zip(pages, tallies, strict=True))))
            await page_idle(pages)
            cpu1, wall1 = cpu_seconds(server.proc.pid), time.monotonic()
            stop.set()
            await sampler
            rss_end = resident_mb(server.proc.pid)["rss_mb"]
            out = summarise_level(n, tallies, cpu=cpu1 - cpu0, wall=wall1 - wall0, rss_max=peak.get("max", rss_end),
                                  rss_end=rss_end, in_archive=archive_count(env["CVAE_ARCHIVE_URL"]) - saved_before)
            out["models_loaded"] = models
            if client0 is not None and server0 is not None:
                out["client_core_busy_percent"] = busy_percent(client0, core_busy(pinning.client))
                out["server_core_busy_percent"] = busy_percent(server0, core_busy(pinning.server))
            for p in pages:
                await p.context.close()
            return out
        finally:
            await browser.close()
            stop_server(server)


async def page_idle(pages: list[Any]) -> None:
    """Let the last runs finish (bounded), so their CPU is counted and their saves have landed."""
    async def idle(page: Any) -> None:
        with contextlib.suppress(Exception):  # a page still busy after that is already counted as an error
            await page.wait_for_function(IDLE, timeout=TIMEOUT_S * 1000)
    await asyncio.gather(*(idle(p) for p in pages))


def summarise_level(n: int, tallies: list[Tally], *, cpu: float, wall: float, rss_max: float, rss_end: float,
                    in_archive: int) -> dict[str, Any]:
    latencies = [s for t in tallies for s in t.latencies_s]
    errors = [e for t in tallies for e in t.errors]
    confirmed = sum(t.saves_confirmed for t in tallies)
    out: dict[str, Any] = {
        "sessions": n,
        "digits": len(latencies),
        "latency_ms": summarise(latencies) if latencies else None,
        "max_ms": round(max(latencies) * 1e3, 1) if latencies else None,
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "saves": {"clicked": sum(t.saves_clicked for t in tallies), "confirmed": confirmed,
                  "in_archive": in_archive, "lost": max(0, confirmed - in_archive)},
        "window_s": round(wall, 1),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_per_digit_s": round(cpu / len(latencies), 3) if latencies else None,
        "server_rss_mb": {"max": round(rss_max, 1), "end": round(rss_end, 1)},
    }
    return out


# -- server CPU per drawn digit ------------------------------------------------------------------------


async def settled_cpu(pid: int, *, settle: float = SETTLE_S, limit: float = 10.0) -> float:
    """The server's CPU seconds once its clock has stood still for ``settle`` seconds (at most ``limit``)."""
    last, still_since, deadline = cpu_seconds(pid), time.monotonic(), time.monotonic() + limit
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        now = cpu_seconds(pid)
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= settle:
            break
    return last


async def cpu_per_digit(playwright: Any, *, digits: int, pinning: Pinning, seed: int) -> dict[str, Any]:
    """Server CPU seconds from mouse-down to the end of the run, one session alone, ``digits`` times."""
    with tempfile.TemporaryDirectory(prefix="cvae-bench-cpu-") as tmp:
        logs = Path(tmp)
        server = start_app(server_env(logs), logs, pinning)
        browser = await playwright.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else None,
                                                   args=CHROMIUM_ARGS)
        try:
            await asyncio.to_thread(wait_healthy, server, timeout=SETUP_TIMEOUT_MS / 1000)
            page = await open_draw_page(browser, server.url)
            rng, shapes = random.Random(seed), list(STROKES)
            samples, latencies = [], []
            for i in range(digits + 1):  # the first one warms up (the partner model loads on first use)
                await clear(page, SETUP_TIMEOUT_MS)
                before = await settled_cpu(server.proc.pid)
                await page.evaluate(ARM_DRAW, METRIC_LABEL)
                await stroke(page, shapes[i % len(shapes)], rng)
                await page.wait_for_function("() => window.__bench.done !== null")
                await page.wait_for_function(IDLE)
                after = await settled_cpu(server.proc.pid)
                r = await page.evaluate("() => window.__bench")
                if i:
                    samples.append(after - before)
                    latencies.append((r["done"] - r["input"]) / 1e3)
            await page.context.close()
        finally:
            await browser.close()
            stop_server(server)
    ordered = sorted(samples)
    return {"digits": len(samples), "samples_s": [round(s, 3) for s in samples],
            "median_s": round(ordered[len(ordered) // 2], 3), "max_s": round(ordered[-1], 3),
            "latency_ms": summarise(latencies), "clock_resolution_s": round(1 / CLK_TCK, 3)}


# -- the whole benchmark -------------------------------------------------------------------------------


async def _run(levels: list[int], *, duration: float, interval: float, save_every: int, timeout_s: float,
               cpu_digits: int, pinning: Pinning, all_models: bool, seed: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    out: dict[str, Any] = {"pinning": pinning.describe(), "server_cpu": pinning.server, "client_cpu": pinning.client,
                           "duration_s": duration, "interval_s": interval, "save_every": save_every,
                           "timeout_s": timeout_s, "levels": {}}
    async with async_playwright() as playwright:
        if cpu_digits:
            print(f"  load: server CPU per drawn digit, one session, {cpu_digits} digits ...", flush=True)
            out["cpu_per_digit"] = await cpu_per_digit(playwright, digits=cpu_digits, pinning=pinning, seed=seed)
            print(f"  load: server CPU per drawn digit median {out['cpu_per_digit']['median_s']:.3f} s "
                  f"(max {out['cpu_per_digit']['max_s']:.3f} s)", flush=True)
        for n in levels:
            print(f"  load: {n} session{'s' * (n != 1)} for {duration:g} s, a digit every {interval:g} s ...", flush=True)
            r = await one_level(playwright, n, duration=duration, interval=interval, save_every=save_every,
                                timeout_s=timeout_s, pinning=pinning, all_models=all_models, seed=seed)
            r["load_average"] = load_average()[0]
            out["levels"][str(n)] = r
            lat = r["latency_ms"] or {}
            print(f"  load: N={n}: {r['digits']} digits, stroke->digit p50 {lat.get('p50', float('nan')):.0f} ms "
                  f"p95 {lat.get('p95', float('nan')):.0f} ms, {r['errors']} errors, "
                  f"saves {r['saves']['confirmed']} confirmed / {r['saves']['lost']} lost, "
                  f"server RSS max {r['server_rss_mb']['max']:.0f} MB, server CPU {r['server_cpu_per_digit_s']} s/digit, "
                  f"server core {r.get('server_core_busy_percent', '?')} % / client core "
                  f"{r.get('client_core_busy_percent', '?')} % busy", flush=True)
    return out


def run(*, quick: bool = False, sessions: list[int] | None = None, duration: float | None = None,
        interval: float = INTERVAL_S, save_every: int = SAVE_EVERY, timeout_s: float = TIMEOUT_S,
        cpu_digits: int | None = None, pin: bool = True, all_models: bool = True, seed: int = 0) -> dict[str, Any]:
    """The load section of ``benchmarks/results.json``::

        {"pinning": str, "server_cpu": int|None, "client_cpu": int|None, "duration_s", "interval_s",
         "save_every", "timeout_s",
         "cpu_per_digit": {"digits", "samples_s": [...], "median_s", "max_s", "latency_ms": {p50, p95, ...},
                           "clock_resolution_s"},
         "levels": {"N": {"sessions", "digits", "latency_ms": {p50, p95, mean, min, n} | None, "max_ms",
                          "errors", "error_examples", "saves": {"clicked", "confirmed", "in_archive", "lost"},
                          "window_s", "server_cpu_s", "server_cpu_per_digit_s",
                          "server_rss_mb": {"max", "end"}, "models_loaded",
                          "server_core_busy_percent", "client_core_busy_percent", "load_average"}}}

    The client (this process, Playwright's driver and Chromium) is pinned to its core for the run.
    """
    if not APP.exists():
        return {"skipped": f"{APP.relative_to(ROOT)} does not exist"}
    levels = sessions or ([1, 2] if quick else list(SESSIONS))
    duration = duration or (15.0 if quick else DURATION_S)
    cpu_digits = (3 if quick else CPU_DIGITS) if cpu_digits is None else cpu_digits
    pinning = Pinning.choose(pin)
    print(f"  load: {pinning.describe()}", flush=True)
    own = os.sched_getaffinity(0)
    if pinning.client is not None:
        os.sched_setaffinity(0, {pinning.client})  # inherited by Playwright's driver and Chromium
    try:
        return asyncio.run(_run(levels, duration=duration, interval=interval, save_every=save_every,
                                timeout_s=timeout_s, cpu_digits=cpu_digits, pinning=pinning,
                                all_models=all_models, seed=seed))
    finally:
        os.sched_setaffinity(0, own)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, nargs="+", default=None, help=f"concurrent sessions to try (default {SESSIONS})")
    p.add_argument("--duration", type=float, default=None, help=f"seconds of drawing per N (default {DURATION_S:g})")
    p.add_argument("--interval", type=float, default=INTERVAL_S, help="seconds between a session's digits")
    p.add_argument("--save-every", type=int, default=SAVE_EVERY, help="save every k-th digit (0: never)")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds after which a digit is an error")
    p.add_argument("--cpu-digits", type=int, default=None, help=f"digits for the CPU figure (default {CPU_DIGITS}; 0: skip)")
    p.add_argument("--no-pin", action="store_true", help="do not pin the server and the browsers to separate cores")
    p.add_argument("--lazy-models", action="store_true", help="do not load every model before the sessions start")
    p.add_argument("--quick", action="store_true", help="N = 1, 2 for 15 s and 3 CPU digits: checks that it runs")
    p.add_argument("--no-write", action="store_true", help=f"print only; leave {RESULTS_JSON.name} alone")
    args = p.parse_args(argv)
    before, t0 = load_average()[0], time.perf_counter()
    out = run(quick=args.quick, sessions=args.sessions, duration=args.duration, interval=args.interval,
              save_every=args.save_every, timeout_s=args.timeout, cpu_digits=args.cpu_digits, pin=not args.no_pin,
              all_models=not args.lazy_models)
    out.update(load_average=[before, load_average()[0]], seconds=round(time.perf_counter() - t0, 1), quick=args.quick)
    if not args.no_write:
        results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
        results.setdefault("sections", {})["load"] = out
        RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote sections.load of {RESULTS_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

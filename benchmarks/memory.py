"""Memory: the server's resident set, part by part.

    python -m benchmarks.memory                 # every part; writes sections.memory of results.json
    python -m benchmarks.memory --sessions 5    # fewer sessions for the per-session figure
    python -m benchmarks.memory --quick         # no model alone, one session: checks that it runs
    python -m benchmarks --only memory          # the same, as a section of the benchmarks

Imports and models are measured in fresh Python processes (``--child``), step after step, with
the allocator setting ``make run`` uses (``MALLOC_ARENA_MAX=2``): Python with Streamlit, then
torch, then the app's modules, then every shipped checkpoint loaded as the app loads it
(``cvae_core.catalogue``), the resident set (``VmRSS``) read after each step; and each model alone
in a process of its own (in one process the allocator reuses what an earlier load freed, which
hides what a model costs). Sessions
are measured on a real server (``streamlit run``): warm (one digit drawn, the default pair loaded),
after ``--sessions`` sessions have opened the Draw page (``benchmarks.streamlit_client``), and
after each of them has drawn a digit. Memory does not depend on how busy the machine is, only
on what is loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import results_file
from benchmarks.machine import load_average, resident_mb
from benchmarks.paths import APP, RESULTS_JSON, ROOT

SESSIONS = 20
ARENAS = "2"  # MALLOC_ARENA_MAX, as `make run` starts the app


def _rss_mb() -> float:
    return resident_mb(os.getpid())["rss_mb"]


def child(model: str | None) -> list[dict[str, Any]]:
    """The steps of one fresh process (what was just loaded, resident MB, MB added): the imports,
    then ``model`` alone, or (``model`` None) every shipped model, kept as the app's cache keeps them."""
    steps: list[dict[str, Any]] = []

    def step(what: str) -> None:
        rss = _rss_mb()
        steps.append({"step": what, "rss_mb": rss, "added_mb": round(rss - (steps[-1]["rss_mb"] if steps else 0), 1)})

    step("python")
    import streamlit  # noqa: F401

    step("streamlit")
    import torch

    step(f"torch {torch.__version__}")
    from app import figures, sidebar  # noqa: F401
    from app.draw import results  # noqa: F401
    from cvae_core import catalogue
    from cvae_core.checkpoints import checkpoint_dir

    step("the app's modules (plotly, pandas, SQLAlchemy, ...)")
    entries = catalogue.discover(checkpoint_dir())
    held = [e.load() for e in entries if model in (None, e.name)]
    step(f"model {model}" if model else f"every model ({', '.join(e.name for e in held)})")
    return steps


def in_a_fresh_process(model: str | None) -> list[dict[str, Any]]:
    env = {**os.environ, "MALLOC_ARENA_MAX": ARENAS}
    command = [sys.executable, "-m", "benchmarks.memory", "--child", *(["--model", model] if model else [])]
    out = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.splitlines()[-1])


def imports_and_models(*, each: bool = True) -> dict[str, Any]:
    """The imports step by step, every model together, and (``each``) each model alone in a process of
    its own (after the imports: what loading it adds)."""
    from cvae_core import catalogue
    from cvae_core.checkpoints import checkpoint_dir

    together = in_a_fresh_process(None)
    models = catalogue.discover(checkpoint_dir()) if each else []
    alone = {e.name: in_a_fresh_process(e.name)[-1]["added_mb"] for e in models}
    return {"steps": together, "each_model_alone_mb": alone}


async def sessions(n: int) -> dict[str, float]:
    """Resident MB of a server warm, with ``n`` sessions open, and after each drew a digit."""
    from benchmarks import load
    from benchmarks.servers import server_env, start_server, stop_server, wait_healthy

    with tempfile.TemporaryDirectory(prefix="cvae-bench-memory-") as tmp:
        env = server_env(Path(tmp))
        server = start_server("app", APP, env, Path(tmp), watch_files=False)
        try:
            await asyncio.to_thread(wait_healthy, server, timeout=load.SETUP_TIMEOUT_S)
            digits = load.Digits(n + 1, seed=0)
            await load.warm_up(server.url, digits)
            pid = server.proc.pid
            warm = resident_mb(pid)["rss_mb"]
            opened = await load.open_sessions(server.url, n)
            with_sessions = resident_mb(pid)["rss_mb"]
            tally = load.Tally()
            for s in opened:
                await load.one_digit(s, digits, tally, clear=False, save=True, timeout=load.SETUP_TIMEOUT_S)
            drawn = resident_mb(pid)["rss_mb"]
            for s in opened:
                await s.close()
        finally:
            stop_server(server)
    return {"sessions": n, "warm_mb": warm, "sessions_open_mb": with_sessions, "after_a_digit_each_mb": drawn,
            "per_open_session_mb": round((with_sessions - warm) / n, 2),
            "per_session_with_a_digit_mb": round((drawn - warm) / n, 2)}


def run(*, n: int = SESSIONS, quick: bool = False) -> dict[str, Any]:
    """The memory section of ``benchmarks/results.json``: {"steps": [{"step", "rss_mb", "added_mb"}],
    "each_model_alone_mb": {name: MB}, "sessions": {"sessions", "warm_mb", "sessions_open_mb", "after_a_digit_each_mb",
    "per_open_session_mb", "per_session_with_a_digit_mb"}}."""
    return {**imports_and_models(each=not quick), "sessions": asyncio.run(sessions(1 if quick else n)), "quick": quick}


def report_lines(section: dict[str, Any]) -> list[str]:
    """The README's memory table: each part, then each model alone and the sessions."""
    lines = ["| part | resident | added |", "|---|---|---|"]
    lines += [f"| {s['step']} | {s['rss_mb']:.0f} MB | +{s['added_mb']:.0f} MB |" for s in section["steps"]]
    alone = ", ".join(f"`{name}` {mb:.0f}" for name, mb in section["each_model_alone_mb"].items())
    s = section["sessions"]
    return [*lines, "", f"Each model alone, in a process of its own (MB added after the imports): {alone}. A server "
            f"warm with the default pair: {s['warm_mb']:.0f} MB; with {s['sessions']} sessions on the Draw page "
            f"{s['sessions_open_mb']:.0f} MB, and {s['after_a_digit_each_mb']:.0f} MB once each has drawn and saved a "
            f"digit ({s['per_session_with_a_digit_mb']:+.1f} MB a session)."]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=SESSIONS, help="sessions opened for the per-session figure")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="no model alone, one session: checks that it runs")
    p.add_argument("--no-write", action="store_true", help=f"print only; leave {RESULTS_JSON.name} alone")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.model)))
        return 0
    from cvae_core.checkpoints import now_iso  # imports torch: not before a --child has measured Python alone

    before, t0 = load_average()[0], time.perf_counter()
    out = run(n=args.sessions, quick=args.quick)
    out.update(load_average=[before, load_average()[0]], seconds=round(time.perf_counter() - t0, 1), generated=now_iso())
    for s in out["steps"]:
        print(f"  {s['step']:<55} {s['rss_mb']:7.1f} MB  (+{s['added_mb']:.1f})")
    print("  each model alone: " + json.dumps(out["each_model_alone_mb"]))
    print("  " + json.dumps(out["sessions"]))
    if not args.no_write:
        results_file.write_section("memory", out)
        print(f"wrote sections.memory of {RESULTS_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

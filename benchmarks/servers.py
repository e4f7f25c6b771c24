"""Streamlit servers for the benchmarks: started on a free port with an archive of their own,
waited for, measured, stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks.paths import ROOT


@dataclass
class Server:
    name: str
    script: Path
    port: int
    proc: subprocess.Popen
    started: float  # perf_counter() just before the process was spawned
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(tmp: Path) -> dict[str, str]:
    """The environment of a benchmarked server: an archive in ``tmp``, never the user's."""
    env = dict(os.environ)
    env.setdefault("CVAE_ARCHIVE_URL", f"sqlite:///{tmp / 'archive.db'}")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MALLOC_ARENA_MAX", "2")  # as `make run` starts the app (see the Makefile)
    return env


def start_server(name: str, script: Path, env: dict[str, str], logs: Path, *, python: str | None = None,
                 root: Path = ROOT, prefix: tuple[str, ...] = (), watch_files: bool = True) -> Server:
    """``streamlit run script`` from ``root`` on a free port; ``prefix`` goes before the command
    (``taskset`` execs the server, so the pid is the server's)."""
    port = free_port()
    log = logs / f"{name}-{port}.log"
    cmd = [*prefix, python or sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    if not watch_files:
        cmd += ["--server.fileWatcherType", "none"]
    started = time.perf_counter()
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=f, stderr=subprocess.STDOUT)
    return Server(name, script, port, proc, started, log)


def wait_healthy(server: Server, *, timeout: float = 90.0) -> float:
    """Seconds from spawn to ``/_stcore/health`` answering ok."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}; see {server.log}")
        try:
            with urllib.request.urlopen(server.url + "/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - server.started
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{server.name} did not become healthy in {timeout:.0f} s; see {server.log}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=3)  # Streamlit can take long to shut down; nothing is lost by a kill
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()

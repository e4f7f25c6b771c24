"""Waiting for a server the tests started: shared by the browser and replica tests."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def wait_healthy(url: str, process: subprocess.Popen, log: Path, *, name: str, timeout_s: float,
                 poll_s: float = 0.3) -> None:
    """Poll ``url`` (a health endpoint) until it answers 200 / "ok"; fail the test with the server's
    log if the process exits or ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200 and response.read().strip() in (b"ok", b""):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{name} did not become healthy:\n{log.read_text(errors='replace')}")
        time.sleep(poll_s)


def stop(process: subprocess.Popen, *, timeout_s: float = 15) -> None:
    """End a server started for a test: terminate, then kill if it has not gone within ``timeout_s``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

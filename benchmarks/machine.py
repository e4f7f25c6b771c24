"""The machine a benchmark runs on and its processes: the CPU, the load average, torch's threads,
and what one process uses (CPU seconds, resident memory) or one core does (its busy share).

Everything is read from ``/proc`` (Linux); torch is imported only by the functions about torch, so
the load client can use the rest without it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")  # /proc's CPU time unit, per second


def use_all_cores(threads: int | None = None) -> int:
    """torch on every core (as the app and the training command run) or on ``threads``; returns the count."""
    import torch

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (runnable processes; this machine is quiet below ~1)."""
    return [round(v, 2) for v in os.getloadavg()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average_start": load_average(),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: fields 14 and 15 of stat(5)


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def resident_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of ``pid`` and its descendants, in MB (1e6 bytes)."""
    total = {"rss_mb": 0.0, "peak_rss_mb": 0.0, "processes": 0}
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        total["rss_mb"] += int(fields.get("VmRSS", "0 kB").split()[0]) * 1024 / 1e6
        total["peak_rss_mb"] += int(fields.get("VmHWM", "0 kB").split()[0]) * 1024 / 1e6
        total["processes"] += 1
        todo += _children(p)
    return {k: round(v, 1) for k, v in total.items()}


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

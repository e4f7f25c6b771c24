"""Every command the README or the app tells a user to type, executed.

The commands are collected from the text itself: every line of README.md's shell blocks, every
inline code span of README.md that starts with ``python -m``, ``.venv/bin/python -m`` or ``make``,
and the same in the strings the app shows (``app/``; docstrings are for readers of the code). So
a command added to the text is run here too, and one this file does not know how to run fails
``test_every_documented_command_has_a_way_to_run``.

Each runs as a user would type it, in a subprocess, from a scratch folder holding a copy of the
shipped checkpoints (``checkpoints/...`` and ``$CVAE_CHECKPOINT_DIR`` point there, so nothing
committed is written). Commands that train or measure for minutes or hours get smoke arguments
appended (argparse keeps the last value: one epoch on a few hundred images, ``--limit``,
``--list``); a ``make`` target is run with ``make -n`` (what it would run is itself a documented
command, run here) except ``make run``, which starts the app and waits for it to answer. Files
a command names (``my_digit.jpg``, ``class.npz``, the Archive page's ``FILE``) are made first,
the labelled sets by a real archive export.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SMOKE_TRAIN = ["--epochs", "1", "--subset", "300", "--val-size", "200", "--eval-size", "200"]
# Collected but never run here, each with the reason. A command in the text that is neither run
# below nor listed here fails the test.
NOT_RUN = {
    "benchmarks": "measures for about 20 minutes and rewrites benchmarks/results.*; timings need a quiet machine",
    "benchmarks.load": "a classroom of sessions for minutes; tests/test_load_client.py runs its client at N = 1",
    "cd": "changes folder for the Docker commands after it",
    "export": "sets environment variables for the commands after it (the tests set their own)",
    "docker": "Docker is not installed here; tests/test_replicas.py runs the same nginx.conf and PostgreSQL",
}
SHELL_BLOCK = re.compile(r"```(?:bash|sh|shell|console)\n(.*?)```", re.S)
INLINE = re.compile(r"`([^`\n]+)`")
STARTS = ("python -m ", ".venv/bin/python -m ", "make ")
# Placeholders in the text -> what a user would have there: the Archive page's download of the
# labelled set, and a model.
PLACEHOLDERS = {"FILE": "cvae-archive-idx.zip", "checkpoints/NAME": "checkpoints/mlp-2"}
NEEDS_ARGUMENTS = ("cvae_core.predict", "cvae_core.evaluate", "cvae_core.robustness")  # else a usage error
ENV_PREFIX = re.compile(r"^(?:[A-Z_]+=\S+\s+)+")  # CVAE_REPLICAS=4 CVAE_HOST=0.0.0.0 docker ...


def _without_comment(line: str) -> str:
    return re.split(r"\s#\s", line, maxsplit=1)[0].strip()


def readme_commands() -> set[str]:
    text = (ROOT / "README.md").read_text()
    found = {_without_comment(line) for block in SHELL_BLOCK.findall(text) for line in block.splitlines()}
    found |= {span.strip() for span in INLINE.findall(text) if span.startswith(STARTS)}
    return {c for c in found if c}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def app_commands() -> set[str]:
    """Commands in the text the app shows: inline code and whole lines of its help texts."""
    found = set()
    for path in sorted((ROOT / "app").rglob("*.py")):
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                found |= {span.strip() for span in INLINE.findall(node.value) if span.startswith(STARTS)}
                found |= {line.strip() for line in node.value.splitlines() if line.strip().startswith(STARTS)}
    return found


def documented() -> list[str]:
    return sorted(readme_commands() | app_commands())


def program(command: str) -> str:
    """What runs: the module of ``python -m``, ``make TARGET``, else the first word."""
    words = shlex.split(ENV_PREFIX.sub("", command))
    if words[0].endswith("python") and words[1:2] == ["-m"]:
        return words[2]
    if words[0] == "make":
        return f"make {words[1]}" if len(words) > 1 else "make"
    return words[0]


# ------------------------------------------------------------------------------- running them


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, data_dir) -> Path:
    """A working folder: a copy of the shipped checkpoints, digit pictures, labelled sets exported
    by a real archive, and a README to regenerate."""
    folder = tmp_path_factory.mktemp("commands")
    (folder / "checkpoints").mkdir()
    for name in _shipped_files():
        shutil.copy(ROOT / "checkpoints" / name, folder / "checkpoints" / name)
    from cvae_core.data import load_mnist

    mnist = load_mnist(data_dir, checksums=False)
    for name, index in (("my_digit.jpg", 0), ("another.png", 1), ("photo.jpg", 2), ("scan.png", 3)):
        Image.fromarray(255 - mnist.test_images[index].numpy()).convert("RGB").save(folder / name)
    _archive_exports(folder, mnist)
    shutil.copy(ROOT / "README.md", folder / "README.md")
    return folder


def _shipped_files() -> list[str]:
    """The files the manifest lists: the shipped checkpoints (a model being trained is not one yet)."""
    lines = (ROOT / "checkpoints" / "MANIFEST.sha256").read_text().splitlines()
    return ["MANIFEST.sha256", "recipe.toml", *(line.split(maxsplit=1)[1].lstrip("*") for line in lines if line.strip())]


def _archive_exports(folder: Path, mnist) -> None:
    """class.npz and the IDX zip, as the Archive page exports them, from real saved items."""
    from cvae_core.archive import Archive
    from cvae_core.archive.export import export_idx, export_npz
    from cvae_core.archive.store import Filters

    archive = Archive.from_url(f"sqlite:///{folder / 'archive.db'}")
    for i in range(12):
        image = mnist.test_images[i].numpy()
        archive.store(_record(image, int(mnist.test_labels[i])))
    for name, export in (("class.npz", export_npz), (PLACEHOLDERS["FILE"], export_idx)):
        data = export(archive, Filters())
        (folder / name).write_bytes(data if isinstance(data, bytes) else data.read())


def _record(image: np.ndarray, label: int):
    """An archive record of one test digit read as itself, with its true label."""
    from cvae_core.archive import Record

    probs = tuple(float(d == label) for d in range(10))
    return Record(model="mlp-2", source="upload", label=label, confidence=1.0, sigma=0.0,
                  input_image=image.astype(np.float32) / 255, recon_image=image.astype(np.float32) / 255,
                  true_label=label, probs=probs, finished=True)


def invocations(command: str, folder: Path) -> list[list[str]]:
    """The argv lists that run ``command`` here (each must exit 0); [] for one in ``NOT_RUN``."""
    name = program(command)
    if name in NOT_RUN:
        return []
    words = shlex.split(ENV_PREFIX.sub("", command))
    if name.startswith("make"):
        return [["make", "-n", "-C", str(ROOT), *words[1:]]]
    args = [PLACEHOLDERS.get(a, a) for a in words[3:]]
    if not args and name in NEEDS_ARGUMENTS:
        return []  # named in a sentence ("`python -m cvae_core.robustness` therefore fits..."), run with arguments elsewhere
    if name == "cvae_core.train" and "--resume" in args:
        return []  # needs an interrupted run: tests/test_resume.py interrupts one and runs this very command
    if name == "cvae_core.train":
        args += [*SMOKE_TRAIN, "--out", str(folder / "trained" / "model")]
    elif name == "cvae_core.evaluate" and "--data" not in args:
        args += ["--limit", "100", "--sigmas", "0.2"]
    elif name == "cvae_core.robustness" and "--data" not in args:
        args += ["--limit", "100", "--calibration-size", "300", *([] if "--calibrate-only" in args else ["--no-write"])]
    elif name == "cvae_core.recipe":
        args += ["--list", "--out", str(folder / "rebuilt")]
    elif name in ("benchmarks.capacity", "benchmarks.memory"):
        args += ["--quick", "--no-write"]
    elif name == "benchmarks.equal_time":
        args += ["--quick", "--limit", "30", "--no-write", "--threads", "1"]
    elif name == "benchmarks.numbers":
        args += ["--count", "20", *([] if "--dev" in args else ["--no-write"])]
    elif name == "benchmarks.pair":
        args += ["--limit", "20", "--no-write", "--threads", "1"]
    elif name == "benchmarks.report":
        args += ["--readme", str(folder / "README.md"), "--no-figures"]
    return [[sys.executable, "-m", name, *args]]


def environment(folder: Path) -> dict[str, str]:
    return {**os.environ, "CVAE_CHECKPOINT_DIR": str(folder / "checkpoints"), "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": "1", "CI": os.environ.get("CI", "")}


def test_every_documented_command_has_a_way_to_run():
    commands = documented()
    assert any(program(c) == "cvae_core.predict" for c in commands), "found no command: the collection is broken"
    assert "python -m cvae_core.evaluate --data FILE" in commands  # the Archive page's help text
    unknown = sorted({program(c) for c in commands} - set(NOT_RUN) - {
        "cvae_core.train", "cvae_core.evaluate", "cvae_core.robustness", "cvae_core.predict", "cvae_core.recipe",
        "cvae_core.checkpoints", "benchmarks.report", "benchmarks.capacity", "benchmarks.memory", "benchmarks.pair", "benchmarks.numbers",
        "benchmarks.equal_time", "make run", "make test", "make checkpoints",
        "make screenshots", "make bench", "make report"})
    assert not unknown, f"documented commands this test does not know how to run: {unknown}"


@pytest.mark.slow
@pytest.mark.parametrize("command", documented())
def test_documented_command_runs(command, scratch):
    if program(command) == "make run":
        return run_the_app(command)
    runs = invocations(command, scratch)
    if not runs:  # not run here for a reason, or a module named in a sentence that is documented with arguments too
        assert program(command) in NOT_RUN or any(
            program(c) == program(command) and len(shlex.split(c)) > 3 for c in documented()), command
        return
    for argv in runs:
        proc = subprocess.run(argv, cwd=scratch, env=environment(scratch), capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"{shlex.join(argv)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        if argv[:2] == ["make", "-n"]:  # what the target runs is a python command documented beside it
            assert "-m " in proc.stdout or "streamlit" in proc.stdout, proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_the_app(command: str) -> None:
    """``make run``: the app starts and answers its health check (then it is stopped)."""
    port = _free_port()
    words = shlex.split(command)[2:]  # CVAE_HOST=0.0.0.0 and the like
    words = [w for w in words if not w.startswith("CVAE_HOST=")] + ["CVAE_HOST=127.0.0.1", f"CVAE_PORT={port}"]
    proc = subprocess.Popen(["make", "-C", str(ROOT), "run", *words], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.read() == b"ok"
                    return
            except OSError:
                time.sleep(0.5)
        pytest.fail("make run did not answer within 120 s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

"""Rebuild every shipped checkpoint from scratch, in order, from ``checkpoints/recipe.toml``.

    python -m cvae_core.recipe                         # all of them into checkpoints/ (hours: see `minutes`)
    python -m cvae_core.recipe --only conv-2 --out /tmp/rebuilt --threads 2
    python -m cvae_core.recipe --list                  # print the commands, run nothing

Each model's training command runs with ``--out DIR/NAME`` (and ``--threads``, ``--data-dir``
when given), then its ``after`` commands (evaluation, calibration and the robustness suite);
``{dir}`` in a command is the folder being built. Progress: one line per step with the time so
far and the planned total; the commands' own progress bars show below it. A failed step stops
the run with its exit code; the checkpoints finished before it stay.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cvae_core.checkpoints import CHECKPOINT_DIR

RECIPE = CHECKPOINT_DIR / "recipe.toml"


@dataclass(frozen=True)
class Step:
    """One shipped model: its name, training command, follow-up commands and planned minutes."""

    name: str
    train: str
    after: tuple[str, ...] = field(default_factory=tuple)
    minutes: float = 0.0

    def commands(self, folder: Path, *, threads: int | None, data_dir: str | None) -> list[list[str]]:
        """The argv lists to run, with ``{dir}`` filled in and the runner's flags added. Each command
        is split into words first and ``{dir}`` filled in inside a word, so a folder whose name has
        spaces or quotes stays one argument."""
        fill = [[word.replace("{dir}", str(folder)) for word in shlex.split(c)] for c in (self.train, *self.after)]
        extra = (["--threads", str(threads)] if threads else []) + (["--data-dir", data_dir] if data_dir else [])
        fill[0] += ["--out", str(folder / self.name), *extra]
        fill[1:] = [c + extra for c in fill[1:]]
        return [[sys.executable if c[0] == "python" else c[0], *c[1:]] for c in fill]


def _command(value: object, where: str) -> str:
    """A command line: non-empty text that ``shlex`` can split, starting with ``python``."""
    if not isinstance(value, str):
        raise ValueError(f"{where} is not text")
    try:
        words = shlex.split(value)
    except ValueError as e:
        raise ValueError(f"{where} cannot be split into words ({e})") from None
    if not words:
        raise ValueError(f"{where} is empty")
    if words[0] != "python":
        raise ValueError(f"{where} does not start with python")
    return value


def _step(entry: object, where: str) -> Step:
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not a table")
    unknown = set(entry) - {"name", "train", "after", "minutes"}
    if unknown:
        raise ValueError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    name = entry.get("name")
    if not isinstance(name, str) or not name or name != Path(name).name or name.startswith("."):
        raise ValueError(f"{where} needs a name that is a plain file name (got {name!r})")
    where = f"{where} ({name})"
    if "train" not in entry:
        raise ValueError(f"{where} has no train command")
    after = entry.get("after", [])
    if not isinstance(after, list):
        raise ValueError(f"{where}: after is not a list of commands")
    minutes = entry.get("minutes", 0)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 <= minutes < 10_000:
        raise ValueError(f"{where}: minutes is not a number from 0 to 10000 (got {minutes!r})")
    return Step(name, _command(entry["train"], f"{where}: train"),
                tuple(_command(c, f"{where}: after[{i}]") for i, c in enumerate(after)), float(minutes))


def read_recipe(path: Path = RECIPE) -> list[Step]:
    """The recipe's steps in order; a malformed file raises ValueError naming what is wrong."""
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: cannot read the recipe ({e})") from None
    unknown = set(doc) - {"model"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys: {', '.join(sorted(unknown))}")
    models = doc.get("model", [])
    if not isinstance(models, list):
        raise ValueError(f"{path}: [model] must be an array of tables, written [[model]]")
    steps = [_step(entry, f"{path}: model {i + 1}") for i, entry in enumerate(models)]
    if not steps:
        raise ValueError(f"{path}: no [[model]] entries")
    names = [s.name for s in steps]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{path}: models named more than once: {', '.join(twice)}")
    return steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="folder to build into (default checkpoints/)")
    p.add_argument("--only", nargs="+", default=None, help="build only these models (their --init sources must exist)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (else $CVAE_DATA_DIR)")
    p.add_argument("--list", action="store_true", help="print the commands and stop")
    p.add_argument("--recipe", type=Path, default=RECIPE, help=f"the recipe to run (default {RECIPE})")
    args = p.parse_args(argv)
    try:
        steps = read_recipe(args.recipe)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.only:
        unknown = set(args.only) - {s.name for s in steps}
        if unknown:
            print(f"error: not in the recipe: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        steps = [s for s in steps if s.name in args.only]
    planned = sum(s.minutes for s in steps)
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    for i, step in enumerate(steps, 1):
        for cmd in step.commands(args.out, threads=args.threads, data_dir=args.data_dir):
            elapsed = (time.perf_counter() - start) / 60
            print(f"[{i}/{len(steps)} {step.name}] {elapsed:.0f} of ~{planned:.0f} min: {shlex.join(cmd)}", flush=True)
            if args.list:
                continue
            code = subprocess.call(cmd)
            if code:
                print(f"error: {step.name}: the command exited with {code}", file=sys.stderr)
                return code
    print(f"done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The predict command: real MNIST test digits written out as image files are recognised,
light on dark and inverted; bad files are reported one by one; exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvae_core.catalogue import discover
from cvae_core.checkpoints import CHECKPOINT_DIR
from cvae_core.images.preprocess import MAX_BYTES
from cvae_core.inference import classify
from cvae_core.predict import main

ROOT = Path(__file__).resolve().parent.parent
K = 16  # importance samples per label: plenty for confident digits, and quick


@pytest.fixture(scope="module")
def classifier() -> Path:
    """The committed model with the best recorded clean accuracy (the checkpoints are part of the
    repository, so there is no fallback path to leave untested)."""
    evaluated = [(e.info.accuracy, e.path) for e in discover(CHECKPOINT_DIR)
                 if e.load().ok and isinstance(e.info.accuracy, float)]
    assert evaluated, f"no evaluated checkpoint in {CHECKPOINT_DIR}"
    return max(evaluated)[1]


@pytest.fixture(scope="module")
def digits(classifier, mnist) -> list[tuple[np.ndarray, int]]:
    """Six test digits of different labels that the model reads confidently in MNIST's own form,
    so that what is tested here is the file handling and preprocessing, not the model."""
    from cvae_core.checkpoints import load_checkpoint

    model = load_checkpoint(classifier).model
    images, labels = mnist.test_images[:300], mnist.test_labels[:300]
    probs, _, _ = classify(model, images.float().div(255).unsqueeze(1), k=K, generator=torch.Generator().manual_seed(0))
    chosen: dict[int, np.ndarray] = {}
    for img, label, p in zip(images.numpy(), labels.tolist(), probs, strict=True):
        if label not in chosen and float(p[label]) > 0.95:
            chosen[label] = img
    assert len(chosen) >= 6, "the test model is too weak to pick confident digits"
    return [(chosen[label], label) for label in sorted(chosen)[:6]]


def write(folder: Path, name: str, img: Image.Image, fmt: str = "PNG") -> Path:
    path = folder / name
    img.save(path, fmt)
    return path


def run(capsys, *args: str | Path) -> tuple[int, list[dict], str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_recognises_real_digits_light_on_dark_and_inverted(tmp_path, capsys, classifier, digits):
    files, truth = [], []
    for i, (img, label) in enumerate(digits):
        files.append(write(tmp_path, f"light-{i}.png", Image.fromarray(img)))
        files.append(write(tmp_path, f"dark-{i}.png", Image.fromarray(255 - img)))
        big = Image.fromarray(255 - img).resize((280, 280), Image.Resampling.BICUBIC)
        files.append(write(tmp_path, f"scan-{i}.jpg", big, "JPEG"))
        truth += [label] * 3
    code, results, _ = run(capsys, *files, "--checkpoint", classifier, "--json", "--k", K)
    assert code == 0
    assert [r["file"] for r in results] == [str(f) for f in files]
    for result, label in zip(results, truth, strict=True):
        assert set(result) == {"file", "label", "probs", "digit", "not_digit_score"}
        # With a "not a digit" condition the ten digit probabilities sum to 1 - p(not a digit).
        assert len(result["probs"]) == 10 and 0.5 < sum(result["probs"]) < 1 + 1e-3
        assert result["label"] == label and result["digit"] is not False, result  # None: the model cannot tell


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, a fragment of the error the user is shown)."""
    (folder / "a-folder.png").mkdir()
    huge = folder / "huge.png"
    with open(huge, "wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: big on paper, nothing written
    (folder / "notes.png").write_text("these are my notes, not a picture")
    (folder / "empty.png").write_bytes(b"")
    good = folder / "blank.png"
    Image.new("L", (64, 64), 255).save(good)
    (folder / "cut.png").write_bytes(good.read_bytes()[:40])
    return {
        "missing": (folder / "missing.png", "No such file"),
        "folder": (folder / "a-folder.png", "folder"),
        "huge": (huge, "limit"),
        "text": (folder / "notes.png", "text"),
        "empty": (folder / "empty.png", "empty"),
        "damaged": (folder / "cut.png", "damaged"),
        "blank": (good, "No digit found"),
    }


def test_bad_files_are_reported_and_never_stop_the_others(tmp_path, capsys, classifier, digits):
    img, label = digits[0]
    good = write(tmp_path, "good.png", Image.fromarray(img))
    bad = bad_files(tmp_path)
    args = [good, *(path for path, _ in bad.values()), good]
    code, results, _ = run(capsys, *args, "--checkpoint", classifier, "--json", "--k", K)
    assert code == 1
    assert len(results) == len(args)
    assert results[0]["label"] == label and results[-1]["label"] == label
    for result, (path, fragment) in zip(results[1:-1], bad.values(), strict=True):
        assert set(result) == {"file", "error"} and result["file"] == str(path)
        assert fragment.lower() in result["error"].lower(), result
        assert "Traceback" not in result["error"]


def test_human_readable_output(tmp_path, capsys, classifier, digits):
    img, label = digits[1]
    good = write(tmp_path, "good.png", Image.fromarray(img))
    code = main([str(good), str(tmp_path / "missing.png"), "--checkpoint", str(classifier), "--k", str(K)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0].startswith(f"{good}: {label}  (0:") and "9:" in out[0]
    assert out[1] == f"{tmp_path / 'missing.png'}: error: No such file."


@pytest.mark.parametrize(
    "args",
    [[], ["x.png", "--k", "0"], ["x.png", "--k", "100000"], ["x.png", "--bogus"], ["x.png", "--k", "many"]],
    ids=["no images", "k zero", "k huge", "unknown flag", "k not a number"],
)
def test_bad_usage_exits_2(capsys, args):
    assert main(args) == 2
    assert capsys.readouterr().err


def test_unusable_checkpoint_exits_2(tmp_path, capsys, monkeypatch):
    image = write(tmp_path, "x.png", Image.new("L", (28, 28)))
    assert main([str(image), "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 64)
    (tmp_path / "broken.json").write_text("{}")
    assert main([str(image), "--checkpoint", str(tmp_path / "broken")]) == 2
    assert "broken" in capsys.readouterr().err
    monkeypatch.setenv("CVAE_CHECKPOINT_DIR", str(tmp_path / "empty"))
    assert main([str(image)]) == 2
    assert "no usable checkpoint" in capsys.readouterr().err


def test_default_checkpoint_is_the_best_usable_one(tmp_path, capsys, monkeypatch, classifier, digits):
    folder = tmp_path / "models"
    folder.mkdir()
    for suffix in (".safetensors", ".json"):
        (folder / f"good{suffix}").write_bytes(classifier.with_suffix(suffix).read_bytes())
    (folder / "broken.safetensors").write_bytes(b"junk")  # unavailable, skipped
    monkeypatch.setenv("CVAE_CHECKPOINT_DIR", str(folder))
    img, label = digits[2]
    code, results, _ = run(capsys, write(tmp_path, "d.png", Image.fromarray(img)), "--json", "--k", K)
    assert code == 0 and results[0]["label"] == label


def test_module_entry_point_exit_code(tmp_path, classifier, digits):
    img, label = digits[3]
    good = write(tmp_path, "good.png", Image.fromarray(255 - img))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "cvae_core.predict", str(good), str(tmp_path), "--checkpoint", str(classifier), "--json", "--k", str(K)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["label"] == label and "folder" in lines[1]["error"]


def test_letters_are_answered_as_not_digits(tmp_path, capsys):
    """The shipped default recogniser says "not a digit" for most capital letters that look like no
    digit (typeset dark on light, as a scan would be), and keeps its calibrated digit probabilities."""
    from PIL import ImageDraw, ImageFont

    from cvae_core.nondigits import font_dir

    font = ImageFont.truetype(str(font_dir() / "DejaVuSans-Bold.ttf"), size=180)
    files = []
    for letter in "AHKMWX":
        img = Image.new("L", (280, 280), 255)
        ImageDraw.Draw(img).text((140, 140), letter, fill=0, font=font, anchor="mm")
        files.append(write(tmp_path, f"{letter}.png", img))
    code, results, _ = run(capsys, *files, "--json")
    assert code == 0 and len(results) == len(files)
    flagged = [r["file"] for r in results if r["digit"] is False]
    assert len(flagged) >= 4, f"only {flagged} of the letters were called not a digit: {results}"
    for r in results:
        assert 0 <= r["not_digit_score"] <= 1 and sum(r["probs"]) + r["not_digit_score"] == pytest.approx(1, abs=1e-4)

"""The robustness suite's parts: corruptions, augmentation, non-digits, calibration, the recipe."""

from __future__ import annotations

import math
import shlex

import pytest
import torch

from cvae_core import corruptions as C
from cvae_core import nondigits, robustness
from cvae_core.augment import Augment, augment
from cvae_core.calibration import Calibration, auroc, expected_calibration_error, fit_temperature
from cvae_core.config import ModelConfig
from cvae_core.data import to_float
from cvae_core.models import build_model
from cvae_core.recipe import RECIPE, read_recipe


@pytest.fixture(scope="module")
def digits(mnist):
    return to_float(mnist.test_images[:48])


@pytest.mark.parametrize("name", list(C.CORRUPTIONS))
def test_each_corruption_is_the_identity_at_zero_and_grows_with_severity(name, digits):
    c = C.CORRUPTIONS[name]
    same = C.corrupt(digits, name, c.identity, seed=3)
    torch.testing.assert_close(same, digits, atol=1e-5, rtol=0)
    changes = []
    for severity in c.severities:
        out = C.corrupt(digits, name, severity, seed=3)
        assert out.shape == digits.shape and out.min() >= 0 and out.max() <= 1
        assert torch.isfinite(out).all()
        changes.append((out - digits).abs().mean().item())
    assert changes[0] > 1e-3, f"{name} at its mildest severity does not change the images"
    if name != "scale":  # scale's severities go below and above 1; each side grows away from 1
        assert changes == sorted(changes), f"{name}: change {changes} does not grow with severity"
    assert C.corrupt(digits, name, c.severities[-1], seed=3).equal(C.corrupt(digits, name, c.severities[-1], seed=3))


def test_scale_grows_away_from_one_on_each_side(digits):
    change = {s: (C.corrupt(digits, "scale", s, seed=0) - digits).abs().mean().item() for s in (0.6, 0.8, 0.9, 1.1, 1.2)}
    assert change[0.6] > change[0.8] > change[0.9] and change[1.2] > change[1.1]


def test_augmentation_never_uses_a_held_out_corruption(monkeypatch, digits):
    held_out = [c.apply.__name__ for c in C.CORRUPTIONS.values() if c.held_out]
    assert {"motion_blur", "shot_noise", "pixelate", "off_centre", "paper_scan"} <= set(held_out)
    for fn in held_out:
        monkeypatch.setattr(C, fn, lambda *a, _fn=fn, **k: pytest.fail(f"augmentation used held-out {_fn}"))
    out = augment(digits, Augment(p_affine=1.0, p_one=1.0), torch.Generator().manual_seed(0))
    assert out.shape == digits.shape and out.min() >= 0 and out.max() <= 1
    assert (out - digits).abs().mean() > 0.05


def test_nondigit_generators_give_framed_images():
    gen = torch.Generator().manual_seed(0)
    batch = nondigits.training_batch(64, gen)
    assert batch.shape == (64, 1, 28, 28) and batch.min() >= 0 and batch.max() <= 1
    assert (batch.flatten(1).amax(1) > 0.25).all(), "every non-digit has ink (faint noise textures included)"
    letters = nondigits.typeset_letters("AK", 2, gen)
    assert letters.shape[0] == 4 and letters.amax() > 0.5


def test_measurement_set_is_separate_from_training_and_fixed():
    a = nondigits.ood_set(per_letter=1, per_family=4)
    b = nondigits.ood_set(per_letter=1, per_family=4)
    assert a.keys() == b.keys() and all(a[k]["images"].equal(b[k]["images"]) for k in a)
    assert {f for f, v in a.items() if v["held_out"]} == {"letters (fonts)", "letters (pen strokes)", "digit-like letters"}
    assert not set(nondigits.DIGIT_LIKE) & set(nondigits.OTHER_LETTERS)


def test_ece_and_auroc_match_hand_computations():
    conf = torch.tensor([0.95, 0.95, 0.55, 0.55])
    correct = torch.tensor([1, 1, 1, 0])
    # bins: 0.95 -> acc 1 vs 0.95 (weight 1/2); 0.55 -> acc 0.5 vs 0.55 (weight 1/2)
    assert expected_calibration_error(conf, correct) == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    assert auroc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert auroc(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5
    pos, neg = torch.randn(50), torch.randn(70) + 0.3
    brute = ((pos[:, None] > neg[None]).float() + 0.5 * (pos[:, None] == neg[None]).float()).mean().item()
    assert auroc(pos, neg) == pytest.approx(brute)


def test_temperature_fit_recovers_a_known_temperature():
    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4000, 10, generator=gen)
    labels = torch.multinomial(torch.softmax(logits / 2.5, 1), 1, generator=gen).squeeze(1)
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)


def test_posterior_with_a_background_condition():
    cal = Calibration(temperature=2.0, not_digit_threshold=0.6)
    scores = torch.tensor([[4.0] + [0.0] * 10, [0.0] * 10 + [6.0]])
    probs, not_digit = cal.posterior(scores, classes=10)
    assert probs.shape == (2, 10) and not_digit.shape == (2,)
    torch.testing.assert_close(probs.sum(1) + not_digit, torch.ones(2))
    flags, score = cal.not_a_digit(scores, not_digit)
    assert flags.tolist() == [False, True] and score is not_digit
    legacy = Calibration.for_checkpoint({"evaluation": {"ood_threshold": -200.0}})
    flags, best = legacy.not_a_digit(torch.tensor([[-100.0, -150.0], [-300.0, -250.0]]), None)
    assert flags.tolist() == [False, True] and best.tolist() == [-100.0, -250.0]


def test_calibration_never_sees_a_test_image(monkeypatch, mnist):
    """The calibration is fitted on the validation split only: fail if any test digit reaches it."""
    test_rows = {bytes(row) for row in mnist.test_images.flatten(1).numpy()}
    seen = []

    def spy(model, images, **kwargs):
        seen.append(images)
        return real(model, images, **kwargs)

    real = robustness.all_scores
    monkeypatch.setattr(robustness, "all_scores", spy)
    model = build_model(ModelConfig(arch="mlp", latent_dim=2, hidden=(16,), background=True))
    val_x, val_y = robustness.validation_split(mnist, {"train_config": {"val_size": 300, "seed": 0}})
    cal = robustness.calibrate(model, val_x, val_y, distorted=True)
    assert math.isfinite(cal.temperature) and cal.k in robustness.K_CHOICES and 0.5 <= cal.not_digit_threshold <= 1
    clean = seen[0][: len(val_y)]
    as_bytes = (clean[:, 0] * 255).round().to(torch.uint8).flatten(1).numpy()
    assert not any(bytes(row) in test_rows for row in as_bytes), "a test image reached the calibration"


def test_suite_and_ood_report_on_a_small_model(mnist):
    model = build_model(ModelConfig(arch="mlp", latent_dim=2, hidden=(16,), background=True))
    cal = Calibration(k=1)
    images, labels = mnist.test_images[:40], mnist.test_labels[:40]
    r = robustness.run_suite(model, cal, images, labels, per_image_limit=8)
    assert set(r["corruptions"]) == set(C.CORRUPTIONS)
    assert r["corruptions"]["paper_scan"]["n"] == 8 and r["corruptions"]["rotate"]["n"] == 40
    for key in ("mean_accuracy", "mean_accuracy_trained", "mean_accuracy_held_out", "mean_ece", "accuracy_noise_0.3"):
        assert 0.0 <= r[key] <= 1.0
    assert "clean" in robustness.format_report(r)


def test_recipe_matches_the_commands_recorded_in_the_shipped_checkpoints():
    """Every shipped checkpoint is in the recipe with the command that made it, and starts from
    nothing or from another shipped checkpoint made before it."""
    import json

    steps = read_recipe()
    names = [s.name for s in steps]
    shipped = sorted(p.stem for p in RECIPE.parent.glob("*.safetensors"))
    assert sorted(names) == shipped, "the recipe and checkpoints/ list different models"

    def normalised(command: str) -> list[str]:
        args, out, skip = shlex.split(command), [], False
        for a in args:
            if skip:
                skip = False
                continue
            if a in ("--out", "--threads", "--data-dir"):
                skip = True
                continue
            out.append(a.rsplit("/", 1)[-1] if out and out[-1] == "--init" else a)
        return out

    built = set()
    for step in steps:
        meta = json.loads((RECIPE.parent / f"{step.name}.json").read_text())
        assert normalised(meta["command"]) == normalised(step.train.replace("{dir}/", "")), step.name
        if meta.get("init"):
            parent = meta["init"]["path"].removesuffix(".safetensors")
            assert parent in built, f"{step.name} starts from {parent}, which the recipe does not build before it"
            parent_meta = json.loads((RECIPE.parent / f"{parent}.json").read_text())
            assert meta["init"]["weights_sha256"] == parent_meta["weights_sha256"], f"{step.name}: not the shipped {parent}"
        built.add(step.name)

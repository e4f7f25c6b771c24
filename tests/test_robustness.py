"""The robustness suite's parts: corruptions, augmentation, non-digits, calibration, the recipe."""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvae_core import calibration, nondigits, robustness
from cvae_core import corruptions as C
from cvae_core.augment import Augment, augment
from cvae_core.calibration import DEFAULT_K, MAX_K, Calibration, auroc, expected_calibration_error, fit_temperature
from cvae_core.catalogue import discover
from cvae_core.checkpoints import CheckpointMeta
from cvae_core.checkpoints.metadata import parse_meta
from cvae_core.config import ModelConfig
from cvae_core.data import to_float
from cvae_core.models import MODELS, build_model
from cvae_core.recipe import RECIPE, Step, read_recipe
from cvae_core.recipe import main as recipe_main


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


def typed(*, background: bool = False, **raw) -> CheckpointMeta:
    """Typed metadata of a small model with the given metadata blocks, as a checkpoint would carry."""
    config = ModelConfig(arch="mlp", latent_dim=2, hidden=(16,), background=background).to_dict()
    return parse_meta({"config": config, **raw}, "test.json", name="test")


RECOGNITION = {"k": 4, "temperature": 2.0, "not_digit_threshold": 0.6, "command": "test", "created": "now"}


def test_not_a_digit_rule_of_a_background_model():
    """p(not a digit) above the recorded threshold, whatever likelihood threshold is also there."""
    cal = Calibration.for_checkpoint(typed(background=True, recognition={**RECOGNITION, "loglik_threshold": 1e9}))
    assert cal.can_tell and cal.background and (cal.k, cal.temperature) == (4, 2.0)
    scores = torch.tensor([[4.0] + [0.0] * 10, [0.0] * 10 + [6.0]])  # a clear digit, a clear non-digit
    _, not_digit = cal.posterior(scores, classes=10)
    flags, score = cal.not_a_digit(scores, not_digit)
    assert flags.tolist() == [False, True] and score is not_digit
    assert cal.flagged(scores, classes=10).tolist() == [False, True]
    uncalibrated = Calibration.for_checkpoint(typed(background=True))
    assert uncalibrated.can_tell and uncalibrated.not_digit_threshold == 0.5


def test_not_a_digit_rule_of_a_model_with_only_a_likelihood_threshold():
    """Below the threshold fitted on distorted validation digits is "not a digit"; the evaluation's
    threshold on clean test digits is never the rule (it flags most other writers' digits)."""
    scores = torch.tensor([[-100.0, -150.0], [-300.0, -250.0]])
    cal = Calibration.for_checkpoint(typed(recognition={**RECOGNITION, "loglik_threshold": -200.0}))
    assert cal.can_tell and not cal.background
    flags, best = cal.not_a_digit(scores, None)
    assert flags.tolist() == [False, True] and best.tolist() == [-100.0, -250.0]
    assert cal.flagged(scores, classes=2).tolist() == [False, True]
    old = Calibration.for_checkpoint(typed(evaluation={"ood_threshold": -120.0, "k": 16}))
    assert not old.can_tell and old.k == 16 and old.temperature == 1.0
    flags, best = old.not_a_digit(scores, None)
    assert flags.tolist() == [False, False] and best is None


def test_the_builder_picks_k_from_the_calibration_then_the_evaluation_then_the_default():
    assert Calibration.for_checkpoint(typed(recognition=RECOGNITION, evaluation={"k": 16})).k == 4
    assert Calibration.for_checkpoint(typed(evaluation={"k": 16})).k == 16
    assert Calibration.for_checkpoint(typed()).k == DEFAULT_K


@pytest.mark.parametrize(("field", "value"), [("k", 0), ("k", MAX_K + 1), ("temperature", math.inf),
                                              ("temperature", 1e-300), ("not_digit_threshold", math.nan),
                                              ("not_digit_threshold", -1.0), ("loglik_threshold", math.nan)])
def test_a_calibration_out_of_bounds_cannot_exist(field, value):
    with pytest.raises(ValueError, match=field):
        calibration.check_settings(**{"k": 8, "temperature": 1.0, "not_digit_threshold": 0.5, field: value})


@pytest.mark.parametrize(("background", "temperature_on"), [(True, "training"), (False, "distorted")])
def test_calibration_never_sees_a_test_image(monkeypatch, mnist, background, temperature_on):
    """The calibration is fitted on the validation split only: fail if any test digit reaches it."""
    test_rows = {bytes(row) for row in mnist.test_images.flatten(1).numpy()}
    seen = []

    def spy(model, images, **kwargs):
        seen.append(images)
        return real(model, images, **kwargs)

    real = robustness.all_scores
    monkeypatch.setattr(robustness, "all_scores", spy)
    model = build_model(ModelConfig(arch="mlp", latent_dim=2, hidden=(16,), background=background))
    val_x, val_y = robustness.validation_split(mnist, {"val_size": 300, "seed": 0})
    cal = robustness.calibrate(model, val_x, val_y, distorted=True, temperature_on=temperature_on)
    assert math.isfinite(cal.temperature) and cal.k in robustness.K_CHOICES and 0.5 <= cal.not_digit_threshold <= 1
    clean = seen[0][: len(val_y)]
    as_bytes = (clean[:, 0] * 255).round().to(torch.uint8).flatten(1).numpy()
    assert not any(bytes(row) in test_rows for row in as_bytes), "a test image reached the calibration"
    assert all(len(x) <= len(val_y) for x in seen), "more images than the validation split reached the calibration"


def test_a_likelihood_threshold_lets_through_95_percent_of_distorted_validation_digits(mnist):
    """A model without a background condition gets a log-likelihood threshold set on distorted
    validation digits: at most 5 % of them (and fewer clean ones) are flagged."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="mlp", latent_dim=2, hidden=(16,)))
    val_x, val_y = robustness.validation_split(mnist, {"val_size": 400, "seed": 0})
    cal = robustness.calibrate(model, val_x, val_y, distorted=False)
    assert cal.can_tell and not cal.background and cal.loglik_threshold is not None
    assert cal.distorted_flagged <= 1 - calibration.DISTORTED_KEPT + 1e-6
    assert cal.clean_flagged <= 1 - calibration.CLEAN_KEPT + 1e-6
    assert "likelihood threshold on 400 clean and distorted validation digits" in cal.fitted_on
    record = {**cal.to_dict(), "command": "test", "created": "now"}
    assert Calibration.for_checkpoint(typed(recognition=record)) == cal  # what is recorded is what is used


def test_fit_chooses_the_temperature_data_and_both_thresholds():
    """``temperature_on="distorted"`` fits the temperature on the distorted digits only (read less
    reliably but as surely: a higher temperature); a background model's threshold lets through 99 %
    of the clean and 95 % of the distorted digits."""
    gen = torch.Generator().manual_seed(0)
    clean = 3 * torch.randn(4000, 10, generator=gen)
    labels = torch.multinomial(torch.softmax(clean, 1), 1, generator=gen).squeeze(1)  # calibrated at T = 1
    bent = clean + 3 * torch.randn(4000, 10, generator=gen)
    fits = {on: calibration.fit(clean, bent, labels, classes=10, k=1, likelihoods=False, trained_distorted=True,
                                temperature_on=on) for on in calibration.TEMPERATURE_DATA}
    assert 1.0 < fits["training"].temperature < fits["distorted"].temperature
    assert "(distorted)" in fits["distorted"].fitted_on and "(clean and distorted)" in fits["training"].fitted_on
    assert not fits["training"].can_tell  # scores that are no likelihoods and no background: no rule
    column = lambda base: base + torch.randn(len(base), 1, generator=gen)  # noqa: E731  p(not a digit)'s score
    cal = calibration.fit(torch.cat([clean, column(torch.full((4000, 1), -4.0))], 1),
                          torch.cat([bent, column(torch.zeros(4000, 1))], 1), labels, classes=10, k=1,
                          likelihoods=False, nondigits=torch.cat([torch.randn(500, 10, generator=gen),
                                                                  column(torch.full((500, 1), 8.0))], 1),
                          trained_distorted=True)
    assert cal.background and cal.not_digit_threshold >= 0.5
    assert cal.clean_flagged <= 0.01 + 1e-6 and cal.distorted_flagged <= 0.05 + 1e-6
    with pytest.raises(ValueError, match="temperature_on"):
        calibration.fit(clean, bent, labels, classes=10, k=1, likelihoods=False, trained_distorted=False,
                        temperature_on="test")


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


def test_recipe_commands_are_split_before_the_folder_is_filled_in(tmp_path):
    """A folder with a space or a quote stays one argument."""
    folder = tmp_path / "it's a \"dir\""
    step = Step("m", "python -m cvae_core.train --model mlp", ("python -m cvae_core.evaluate --checkpoint {dir}/m",))
    train, evaluate = step.commands(folder, threads=2, data_dir="/data dir")
    assert train[-6:] == ["--out", str(folder / "m"), "--threads", "2", "--data-dir", "/data dir"]
    assert evaluate[1:5] == ["-m", "cvae_core.evaluate", "--checkpoint", f"{folder}/m"]


@pytest.mark.parametrize(("toml", "problem"), [
    ('[[model]]\nname = "m"\ntrain = "python -m x"\nafter = "python -m y"', "after is not a list"),
    ('[[model]]\nname = "m"\ntrain = "python -m x"\nminutes = "abc"', "minutes is not a number"),
    ('[[model]]\nname = "m"\ntrain = "python -m x"\nminutes = -3', "minutes is not a number"),
    ('[model]\nname = "m"\ntrain = "python -m x"', "array of tables"),
    ('[[model]]\nname = "m"\ntrain = ""', "train is empty"),
    ('[[model]]\nname = "m"\ntrain = "python -m \'x"', "cannot be split"),
    ('[[model]]\nname = "m"\ntrain = "rm -rf /"', "does not start with python"),
    ('[[model]]\nname = "m"\ntrain = 3', "train is not text"),
    ('[[model]]\nname = "m"\ntrain = "python -m x"\nafter = ["python -m y", 4]', "after[1] is not text"),
    ('[[model]]\nname = "../m"\ntrain = "python -m x"', "plain file name"),
    ('[[model]]\nname = "m"', "no train command"),
    ('[[model]]\nname = "m"\ntrain = "python -m x"\ntrian = "python -m y"', "unknown keys: trian"),
    ('[[model]]\nname = "m"\ntrain = "python -m x"\n[[model]]\nname = "m"\ntrain = "python -m y"', "more than once"),
    ("model = 3", "array of tables"),
    ("", "no [[model]]"),
    ("[[model]\n", "cannot read"),
])
def test_a_malformed_recipe_is_a_value_error_naming_the_problem(tmp_path, capsys, toml, problem):
    path = tmp_path / "recipe.toml"
    path.write_text(toml)
    with pytest.raises(ValueError, match=re.escape(problem)):
        read_recipe(path)
    assert recipe_main(["--recipe", str(path), "--list"]) == 2
    assert problem in capsys.readouterr().err


@pytest.mark.parametrize("background", [True, False])
def test_the_suite_flags_by_the_calibration_rule(monkeypatch, mnist, background):
    """The suite's "flagged" figures are the calibration's rule for both kinds of model: a threshold
    nothing reaches flags everything, and a model that cannot tell reports no share at all."""
    small = nondigits.ood_set(per_letter=1, per_family=4)
    monkeypatch.setattr(nondigits, "ood_set", lambda: small)
    model = build_model(ModelConfig(arch="mlp", latent_dim=2, hidden=(16,), background=background))
    recognition = {**RECOGNITION, "k": 1, **({"not_digit_threshold": 0.0} if background else {"loglik_threshold": 1e9})}
    cal = Calibration.for_checkpoint(typed(background=background, recognition=recognition))
    images, labels = mnist.test_images[:20], mnist.test_labels[:20]
    ood = robustness.run_ood(model, cal, images)
    assert ood["digits_flagged"] == 1.0 and all(f["detected"] == 1.0 for f in ood["families"].values())
    graded = robustness.graded(cal, robustness.all_scores(model, to_float(images), k=1), labels, 10)
    assert graded["not_digit_rate"] == 1.0 and graded["accepted_accuracy"] == 0.0
    if not background:
        blind = Calibration.for_checkpoint(typed(evaluation={"ood_threshold": 1e9}))
        ood = robustness.run_ood(model, blind, images)
        assert ood["digits_flagged"] is None and all(f["detected"] is None for f in ood["families"].values())
        assert 0 <= ood["auroc_not_digit_like"] <= 1


ROOT = Path(__file__).resolve().parent.parent


def test_every_caller_uses_the_one_calibration_of_every_shipped_model(monkeypatch, mnist, tmp_path, capsys):
    """predict, the app, robustness, evaluate and the benchmarks each read a model with the very
    object ``Calibration.for_checkpoint`` built (not an equal copy: one they made themselves fails)."""
    from app.draw import reading
    from benchmarks import latency
    from cvae_core import evaluate, predict

    built: list[Calibration] = []
    build = Calibration.for_checkpoint.__func__
    monkeypatch.setattr(Calibration, "for_checkpoint", classmethod(lambda cls, meta: built.append(build(cls, meta)) or built[-1]))
    used: dict[str, object] = {}
    classify, graded, evaluate_model = predict.classify, robustness.graded, evaluate.evaluate_model
    monkeypatch.setattr(predict, "classify", lambda *a, calibration, **kw: used.update(predict=calibration)
                        or classify(*a, calibration=calibration, **kw))
    monkeypatch.setattr(robustness, "graded", lambda cal, *a: used.update(robustness=cal) or graded(cal, *a))
    monkeypatch.setattr(evaluate, "evaluate_model", lambda *a, k, **kw: used.update(evaluate=k) or evaluate_model(*a, k=k, **kw))
    Image.fromarray(255 - mnist.test_images[0].numpy()).save(tmp_path / "digit.png")
    np.savez(tmp_path / "set.npz", images=mnist.test_images[:3].numpy(), labels=mnist.test_labels[:3].numpy())

    def from_builder(cal: object) -> bool:
        return any(cal is b for b in built)

    shipped = [e for e in discover(RECIPE.parent) if e.verified]
    assert len(shipped) >= 7 and all(e.ok for e in shipped)
    for entry in shipped:
        loaded = entry.load()
        predict.recognise_file(loaded.ckpt, tmp_path / "digit.png", k=None, seed=0)
        assert from_builder(used.pop("predict")), f"predict built its own calibration for {entry.name}"
        assert from_builder(reading.calibration(entry)), f"the app built its own calibration for {entry.name}"
        assert from_builder(latency._calibration(loaded)), f"the benchmarks built their own for {entry.name}"
        robustness.main(["--checkpoint", str(entry.path), "--data", str(tmp_path / "set.npz"), "--json"])
        assert from_builder(used.pop("robustness")), f"robustness built its own calibration for {entry.name}"
        if entry.arch in MODELS:  # evaluate measures CVAEs; the calibration gives it K
            built.clear()
            evaluate.main(["--checkpoint", str(entry.path), "--data", str(tmp_path / "set.npz"), "--sigmas", "0", "--json"])
            assert len(built) == 1 and used.pop("evaluate") == built[0].k
    capsys.readouterr()


def test_a_calibration_is_made_only_in_calibration_py():
    """Everything else asks ``Calibration.for_checkpoint`` (or ``calibration.fit``) for one."""
    made = re.compile(r"\bCalibration\(|\breplace\(\s*(cal|calibration)\b")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("cvae_core", "app", "benchmarks") for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ROOT / "cvae_core" / "calibration.py"
        for number, line in enumerate(path.read_text().splitlines(), 1) if made.search(line)
    ]
    assert not offenders, offenders


def test_the_font_folder_is_a_setting_with_a_lookup(monkeypatch, tmp_path):
    found = nondigits.font_dir()
    assert (found / "DejaVuSans.ttf").is_file(), "DejaVu is not installed where the lookup searches"
    monkeypatch.setenv(nondigits.FONT_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=nondigits.FONT_ENV):
        nondigits.typeset_letters("A", 1, torch.Generator().manual_seed(0))
    for name in nondigits.FONTS[:2]:
        (tmp_path / name).symlink_to(found / name)
    assert nondigits.typeset_letters("A", 2, torch.Generator().manual_seed(0)).shape[0] == 2

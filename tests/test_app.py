"""AppTest (streamlit.testing.v1) tests of every page of the app, without a browser.

The models are copies of the committed conv-2, mlp-2, conv-16 and mlp-16, or, before those exist,
small ones trained in the fixture; conv-2 and mlp-2 get an evaluation on a slice of the test set
when they have none, so the pages' accuracy, threshold and confusion paths always run. The Draw
page's states (a digit, "3 or 5?", "not a digit", the two architectures disagreeing, a true label
given) are each reached by changing a copy's recorded calibration or by a tiny background model.
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import io
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from canvas_result import CanvasResult
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import archive_ui, cached_models, latent_space
from app.draw import inputs, reading
from app.markdown import escape_markdown
from cvae_core import catalogue, inference
from cvae_core.archive import Archive, Record
from cvae_core.checkpoints import load_checkpoint, save_checkpoint, update_metadata
from cvae_core.config import ModelConfig, TrainConfig
from cvae_core.evaluate import evaluate_model
from cvae_core.images.preprocess import MAX_BYTES
from cvae_core.models import build_model
from cvae_core.train import fit

ROOT = Path(__file__).resolve().parent.parent
PAGES = {name: str(ROOT / "app" / "views" / f"{name}.py") for name in ("draw", "latent", "compare")}
TIMEOUT = 120  # seconds per run: generous, the first run imports torch and loads the models
# The router's run(), as `streamlit run app/streamlit_app.py` calls it.
ROUTER = "from app.streamlit_app import run\nrun()\n"
COMMITTED = ROOT / "checkpoints"
COMMITTED_SET = ("conv-2", "mlp-2", "conv-16", "mlp-16")


@pytest.fixture(scope="module")
def app_models(tmp_path_factory, mnist) -> Path:
    """conv-2, mlp-2, conv-16 and mlp-16: copies of the committed checkpoints when they are there, else small
    ones trained here (the MLP good enough to read clean MNIST digits). conv-2 and mlp-2 get an
    evaluation on 200 test digits when they have none, so accuracy, threshold and confusion exist.
    """
    folder = tmp_path_factory.mktemp("app_models")
    if all((COMMITTED / f"{name}.safetensors").exists() for name in COMMITTED_SET):
        copy_models(COMMITTED, folder, COMMITTED_SET)
    else:
        fast = {"val_size": 1000, "lr": 3e-3, "warmup_epochs": 0.1}
        runs = {
            "conv-2": (ModelConfig(arch="conv", latent_dim=2), TrainConfig(epochs=1, subset=2000, **fast)),
            "mlp-2": (ModelConfig(arch="mlp", latent_dim=2, hidden=(256,)),
                      TrainConfig(epochs=2, subset=5000, **fast)),
            "conv-16": (ModelConfig(arch="conv", latent_dim=16), TrainConfig(epochs=1, subset=1000, **fast)),
            "mlp-16": (ModelConfig(arch="mlp", latent_dim=16, hidden=(32,)),
                       TrainConfig(epochs=1, subset=1000, **fast)),
        }
        for name, (model_config, train_config) in runs.items():
            fit(model_config, train_config, mnist, folder / name, command="tests/test_app.py",
                device=torch.device("cpu"))
    images, labels = mnist.test_images[:200], mnist.test_labels[:200]
    for name in ("conv-2", "mlp-2"):
        ckpt = load_checkpoint(folder / name)
        if ckpt.info.evaluation is None:
            evaluation = evaluate_model(ckpt.model, images, labels, k=4, sigmas=(0.0, 0.3))
            update_metadata(ckpt.path, {"evaluation": evaluation})
    return folder


def default_model(folder: Path) -> str:
    """What the pages show first: the best recogniser."""
    return catalogue.recogniser_ranking(catalogue.discover(folder))[0].name


def copy_models(source: Path, target: Path, names: tuple[str, ...] = ("conv-2", "mlp-2")) -> Path:
    for name in names:
        for suffix in (".safetensors", ".json"):
            shutil.copy(source / f"{name}{suffix}", target / f"{name}{suffix}")
    return target


def start(monkeypatch, folder: Path, page: str | None = None, *, model: str | None = None) -> AppTest:
    monkeypatch.setenv("CVAE_CHECKPOINT_DIR", str(folder))
    at = AppTest.from_string(ROUTER, default_timeout=TIMEOUT).run()
    if model:
        at.selectbox(key=cached_models.MODEL_KEY).set_value(model).run()
    if page:
        at.switch_page(PAGES[page]).run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    if not at.file_uploader:
        at.button_group(key="draw_mode").set_value("Upload").run()
    at.file_uploader(key="draw_upload").set_value((name, data, mime)).run()
    assert_clean(at)
    return at


def image_url(at: AppTest, caption_start: str) -> str:
    found = [img.value[0] for img in at.image if img.captions and img.captions[0].startswith(caption_start)]
    assert len(found) == 1, [img.captions for img in at.image]
    return found[0]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_page_renders(monkeypatch, app_models, page):
    at = start(monkeypatch, app_models, page)
    assert at.title, "page has no title"
    assert at.selectbox(key=cached_models.MODEL_KEY).value == default_model(app_models)
    assert "test loss" in " ".join(m.value for m in at.sidebar.markdown)
    assert not at.error


def test_draw_page_starts_with_canvas_and_friendly_message(monkeypatch, app_models):
    at = start(monkeypatch, app_models)
    assert [e.type for e in at.main if e.type == "bidi_component"], "no canvas on the page"
    assert any("Draw a digit" in i.value for i in at.info)
    assert not at.metric


@pytest.mark.parametrize("index", [2, 3])  # the test set's first "1" and first "0"
def test_uploaded_mnist_digit_is_recognised(monkeypatch, app_models, mnist, index):
    label = int(mnist.test_labels[index])
    at = start(monkeypatch, app_models, model="mlp-2")
    upload(at, f"digit-{label}.png", png(mnist.test_images[index].numpy()))
    (metric,) = at.metric
    assert metric.label == "Recognised digit"
    assert metric.value == str(label)
    assert "% sure" in metric.delta and "100 %" not in metric.delta  # never "100 % sure"
    assert image_url(at, "Your upload")  # the uploaded image itself, beside the 28x28 input
    assert image_url(at, "What the model sees")
    assert image_url(at, "Reconstruction by mlp-2")
    assert image_url(at, f"by conv-2, which reads {label}")  # the other architecture on the same input
    assert any("conv\\-2 agrees" in c.value for c in at.caption)
    assert at.get("plotly_chart"), "no probability chart"


def test_photo_of_dark_ink_on_paper_is_recognised(monkeypatch, app_models, mnist):
    digit = mnist.test_images[2].numpy()  # a "1"
    paper = 255 - np.kron(digit, np.ones((8, 8), dtype=np.uint8))  # dark ink on white, 224x224
    buf = io.BytesIO()
    Image.fromarray(paper).convert("RGB").save(buf, format="JPEG", quality=90)
    at = start(monkeypatch, app_models, model="mlp-2")
    upload(at, "photo.jpg", buf.getvalue(), "image/jpeg")
    assert at.metric[0].value == "1"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a" + b"\0" * 100, "GIF"),
        (b"<html><script>alert(1)</script></html>", "not a PNG or JPEG"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "damaged"),
        (png(np.zeros((28, 28), dtype=np.uint8)), "No digit found"),
        (b"\xff\xd8\xff" + b"\0" * (MAX_BYTES + 1), "limit"),
    ],
    ids=["gif", "html", "truncated-png", "blank", "too-large"],
)
def test_bad_upload_shows_a_message_not_a_traceback(monkeypatch, app_models, data, message):
    name = "**bold** [link](http://x) <b>.png"
    at = upload(start(monkeypatch, app_models), name, data)
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert not at.metric
    assert name not in [t.value for t in at.text]  # shown once, by the uploader itself
    assert not any("bold" in m.value for m in at.markdown)  # and never as markdown


def test_noise_slider_changes_the_input_and_is_repeatable(monkeypatch, app_models, mnist):
    at = upload(start(monkeypatch, app_models, model="mlp-2"), "one.png", png(mnist.test_images[2].numpy()))
    clean = image_url(at, "What the model sees")
    at.slider(key="draw_sigma").set_value(0.3).run()
    assert_clean(at)
    noisy = image_url(at, "What the model sees")
    assert noisy != clean
    at.slider(key="draw_sigma").set_value(0.0).run()
    at.slider(key="draw_sigma").set_value(0.3).run()
    assert image_url(at, "What the model sees") == noisy  # fixed seed: same sigma, same noise


RECOGNITION = {"k": 4, "temperature": 1.0, "not_digit_threshold": 0.5, "fitted_on": "test",
               "command": "tests/test_app.py", "created": "2026-01-01T00:00:00+00:00"}


def recalibrated(app_models: Path, folder: Path, name: str, **recognition) -> Path:
    """A copy of the fixture's models with ``name``'s recorded calibration changed."""
    copy_models(app_models, folder)
    update_metadata(folder / name, {"recognition": {**RECOGNITION, **recognition}})
    return folder


@pytest.mark.parametrize(("threshold", "flagged"), [(1e9, True), (-1e9, False), (None, False)])
def test_not_a_digit_replaces_the_number(monkeypatch, app_models, mnist, tmp_path, threshold, flagged):
    """Models without a background condition: a best log-likelihood under the threshold fitted on
    distorted validation digits is "not a digit", shown instead of a number, with one line and the
    explanation behind its help icon. Without such a threshold the page says the model cannot tell,
    even when the evaluation recorded one on clean test digits."""
    folder = copy_models(app_models, tmp_path)
    meta = json.loads((folder / "mlp-2.json").read_text())
    update_metadata(folder / "mlp-2", {"evaluation": {**meta["evaluation"], "ood_threshold": 1e9}})
    # None: a model calibrated without a likelihood threshold (the shipped mlp-2 has one fitted).
    update_metadata(folder / "mlp-2", {"recognition": {**RECOGNITION, "loglik_threshold": threshold}})
    at = upload(start(monkeypatch, folder, model="mlp-2"), "one.png", png(mnist.test_images[2].numpy()))
    (metric,) = at.metric
    lines = [c for c in at.caption if "does not look like a digit" in c.value]
    cannot_tell = [c for c in at.caption if "cannot tell" in c.value]
    if flagged:
        assert (metric.value, metric.delta) == ("Not a digit", "unlike any digit")
        assert "set on distorted validation digits" in lines[0].help
    else:
        assert metric.value == "1" and not lines
    assert bool(cannot_tell) == (threshold is None)
    assert not at.warning  # no tall warning box any more
    assert any("Your style as every digit" in m.value for m in at.markdown) != flagged  # a style is a digit's
    assert bool(at.get("page_link")) == flagged  # several digits in one picture? "Read a number"


def test_probabilities_without_a_fitted_calibration_say_so(monkeypatch, app_models, mnist, tmp_path):
    """A model with no ``recognition`` record reads with temperature 1, an overconfident softmax:
    the answer, the partner's line and the chart say "not calibrated"."""
    folder = copy_models(app_models, tmp_path)
    for name in ("conv-2", "mlp-2"):
        meta = json.loads((folder / f"{name}.json").read_text())
        meta.pop("recognition", None)
        (folder / f"{name}.json").write_text(json.dumps(meta))
    at = upload(start(monkeypatch, folder, model="mlp-2"), "one.png", png(mnist.test_images[2].numpy()))
    (metric,) = at.metric
    assert metric.value == "1" and metric.delta.endswith("% sure, not calibrated")
    assert any(c.value.endswith("not calibrated).") for c in at.caption if "agrees" in c.value)
    assert "probability (not calibrated)" in at.get("plotly_chart")[0].proto.spec
    model_card = " ".join(m.value for m in at.sidebar.markdown)
    assert "**not calibrated**" in model_card


def test_unsure_shows_the_two_best_candidates(monkeypatch, app_models, mnist, tmp_path):
    folder = recalibrated(app_models, tmp_path, "mlp-2", temperature=1e3)  # the highest allowed: flattens p(y | x)
    at = upload(start(monkeypatch, folder, model="mlp-2"), "one.png", png(mnist.test_images[2].numpy()))
    (metric,) = at.metric
    best, second = metric.value.removesuffix("?").split(" or ")
    assert best == "1" and second.isdigit() and second != best
    assert " or " in metric.delta and metric.delta.count("%") == 2
    assert any(f"no digit reaches {reading.UNSURE_BELOW:.0%}" in c.value for c in at.caption)


def test_a_background_model_says_not_a_digit_by_its_own_score(monkeypatch, mnist, tmp_path):
    """A recogniser with a "not a digit" condition: its calibrated p(not a digit) above the
    recorded threshold is the flag, and the chart gets a bar for it."""
    torch.manual_seed(0)  # untrained is enough: the flag and the numbers shown follow from its calibration
    model = build_model(ModelConfig(arch="mlp", latent_dim=2, hidden=(32,), background=True))
    save_checkpoint(tmp_path / "mlp-2-bg", model, {"role": "recogniser", "command": "tests/test_app.py",
                                                   "recognition": {**RECOGNITION, "not_digit_threshold": 0.0}})
    saved = []
    monkeypatch.setattr(archive_ui, "save_button", lambda record, *, key: saved.append(record))
    at = upload(start(monkeypatch, tmp_path), "one.png", png(mnist.test_images[2].numpy()))
    (metric,) = at.metric
    assert metric.value == "Not a digit" and metric.delta.endswith("% not a digit")
    (line,) = [c for c in at.caption if "does not look like a digit" in c.value]
    assert "chance of being no digit" in line.help
    record = saved[-1]
    assert 0 < record.not_digit <= 1
    assert sum(record.probs) + record.not_digit == pytest.approx(1, abs=1e-4)
    assert len(record.log_likelihoods) == 10


def test_disagreement_between_the_architectures_is_said(monkeypatch, app_models, mnist):
    real = reading.read

    def conv_misreads(entry, signature, pixels):
        mine, more = real(entry, signature, pixels)
        if entry.arch == "conv":  # reads the next digit: a 1 becomes a 2
            mine = dataclasses.replace(mine, probs=np.roll(mine.probs, 1))
        return mine, more

    monkeypatch.setattr(reading, "read", conv_misreads)
    at = upload(start(monkeypatch, app_models, model="mlp-2"), "one.png", png(mnist.test_images[2].numpy()))
    assert at.metric[0].value == "1"
    (line,) = [m.value for m in at.markdown if "·" in m.value and "reads" in m.value]
    assert "**mlp\\-2** reads 1 · **conv\\-2** reads 2" in line


def test_true_label_is_stored_with_the_archive_item_and_tallied(monkeypatch, app_models, mnist, tmp_path):
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    monkeypatch.setenv("CVAE_ARCHIVE_URL", url)
    at = start(monkeypatch, app_models, model="mlp-2")
    at.toggle(key=archive_ui.AUTOSAVE_KEY).set_value(True).run()
    upload(at, "one.png", png(mnist.test_images[2].numpy()))
    (item,) = Archive.from_url(url).list()
    assert item.true_label is None and item.partner_model == "conv-2"
    at.button_group(key="draw_truth").set_value(1).run()
    assert_clean(at)
    assert Archive.from_url(url).get(item.id).true_label == 1
    assert any(f"item #{item.id}" in s.value for s in at.success)
    (tally,) = [c.value for c in at.caption if c.value.startswith("Your digits this session")]
    assert "**mlp\\-2** 1 of 1" in tally and "**conv\\-2** 1 of 1" in tally
    at.button_group(key="draw_truth").set_value(7).run()  # corrected: the wrong label was the visitor's
    assert Archive.from_url(url).get(item.id).true_label == 7
    (tally,) = [c.value for c in at.caption if c.value.startswith("Your digits this session")]
    assert "**mlp\\-2** 0 of 1" in tally


def scrubber_data(at: AppTest) -> dict:
    (component,) = [e for e in at.main if e.type == "bidi_component" and e.proto.component_name.endswith("scrubber")]
    return json.loads(component.proto.json)


def strip_image(data: dict, axis: int, z: float) -> np.ndarray:
    """The picture the browser shows with slider ``axis`` at ``z`` (the others at the sheet's centre):
    the cell (axis, position) of the PNG sheet."""
    sheet = np.asarray(Image.open(io.BytesIO(base64.b64decode(data["sheet"].split(",", 1)[1]))))
    assert sheet.shape == (len(data["z"]) * data["side"], data["count"] * data["side"])
    side, position = data["side"], round((z + data["span"]) / data["step"])
    return sheet[axis * side : (axis + 1) * side, position * side : (position + 1) * side]


def test_latent_scrubber_holds_the_decoded_digits_and_follows_the_sliders(monkeypatch, app_models):
    """2-D models: the sliders and the digit are scrubbed in the browser from strips decoded on the server;
    the page's slider values stay the source of truth."""
    at = start(monkeypatch, app_models, "latent", model="conv-2")
    data = scrubber_data(at)
    assert (data["z"], data["label"]) == ([0.0, 0.0], 0)
    entry = cached_models.load(next(e for e in cached_models.all_models() if e.name == "conv-2"))
    for axis, z in ((0, 2.0), (1, -1.5)):  # a slider moved in the browser shows the server's decode of that z
        point = (z, 0.0) if axis == 0 else (0.0, z)
        expected = latent_space.decode_point(entry, entry.signature, 0, point)
        assert np.abs(strip_image(data, axis, z).astype(float) - 255 * expected).max() <= 1
    assert not np.array_equal(strip_image(data, 0, 2.0), strip_image(data, 0, 0.0))
    at.session_state["latent_z0"] = 2.0  # as a released slider or a map click sets it
    at.run()
    assert_clean(at)
    moved = scrubber_data(at)
    assert moved["z"] == [2.0, 0.0] and moved["sheet"] != data["sheet"]  # recentred on the new point
    assert at.get("plotly_chart"), "no latent map for a 2-D model"
    at.button(key="latent_reset").click().run()
    assert scrubber_data(at)["z"] == [0.0, 0.0]
    at.button(key="latent_sample").click().run()
    assert scrubber_data(at)["z"] != [0.0, 0.0]  # a draw from the prior moves the browser's sliders
    at.button_group(key="latent_label").set_value(7).run()
    assert scrubber_data(at)["label"] == 7
    assert at.selectbox(key="latent_interp_from").value == 7  # "from the digit" follows the label
    at.slider(key="latent_grid_n").set_value(25).run()
    assert_clean(at)


def test_clicking_the_map_moves_the_sliders(monkeypatch, app_models):
    from app.views import latent

    clicked = types.SimpleNamespace(points=[{"x": 1.234, "y": -0.71}])
    state = {latent.MAP_KEY: types.SimpleNamespace(selection=clicked)}
    monkeypatch.setattr(latent.st, "session_state", state)
    latent.move_to_clicked_point()
    assert (state["latent_z0"], state["latent_z1"]) == (1.25, -0.7)  # on the sliders' 0.05 grid


def test_sixteen_dimensions_are_scrubbed_in_the_browser_too(monkeypatch, app_models):
    """Any latent size: one browser-side slider per dimension over a sheet of 16 x 121 decodes, no
    Streamlit slider (each of which would be a server round trip per step)."""
    at = start(monkeypatch, app_models, "latent", model="mlp-16")
    assert not [s for s in at.slider if s.key.startswith("latent_z")]
    data = scrubber_data(at)
    assert data["z"] == [0.0] * 16
    entry = cached_models.load(next(e for e in cached_models.all_models() if e.name == "mlp-16"))
    for axis, z in ((12, 1.5), (15, -3.0)):
        point = tuple(z if i == axis else 0.0 for i in range(16))
        expected = latent_space.decode_point(entry, entry.signature, 0, point)
        assert np.abs(strip_image(data, axis, z).astype(float) - 255 * expected).max() <= 1
    at.session_state["latent_z3"] = 1.5  # as a released slider sets it
    at.run()
    assert_clean(at)
    moved = scrubber_data(at)
    assert moved["z"][3] == 1.5 and moved["sheet"] != data["sheet"]  # decoded ahead around the new point
    at.button(key="latent_reset").click().run()
    assert scrubber_data(at)["z"] == [0.0] * 16
    at.button(key="latent_sample").click().run()
    assert scrubber_data(at)["z"] != [0.0] * 16
    assert [c for img in at.image for c in img.captions if "decoded 0s" in c]  # the manifold, on its principal plane


def test_compare_page_shows_both_models_and_a_computed_verdict(monkeypatch, app_models, tmp_path):
    folder = copy_models(app_models, tmp_path, COMMITTED_SET)
    corruptions = {"gaussian_noise": {"held_out": False, "accuracy": 0.61, "ece": 0.1, "severities": []},
                   "paper_scan": {"held_out": True, "accuracy": 0.42, "ece": 0.2, "severities": []}}
    update_metadata(folder / "conv-2", {"robustness": None})  # one model of the pair never measured
    update_metadata(folder / "mlp-2", {"robustness": {"clean": {"accuracy": 0.94}, "corruptions": corruptions,
                                                      "mean_accuracy": 0.515, "mean_accuracy_held_out": 0.42,
                                                      "mean_ece": 0.15, "ood": {}}})
    at = start(monkeypatch, folder, "compare")
    default = next(e for e in catalogue.discover(folder) if e.name == default_model(folder))
    assert [int(s) for s in at.dataframe[0].value["latent_dim"]] == [default.latent_dim] * 2  # the sidebar's size
    at.button_group(key="compare_latent").set_value(2).run()
    (picks,) = at.success
    table = at.dataframe[0].value
    assert list(table["model"]) == ["conv-2", "mlp-2"]  # the paper's pair at that size
    best = table.sort_values("test_loss").iloc[0]  # the verdict names the model the table ranks first
    low, high = sorted(table["test_loss"])
    assert "**To generate:** " + escape_markdown(f"{best['model']}, better at fitting the test digits (test loss "
                                                 f"{low:.2f} vs {high:.2f}") in picks.value
    assert "**To recognise:**" in picks.value and "**Small:** conv\\-2" in picks.value
    assert "training_minutes" in table
    robust, turned = at.dataframe[1].value, at.dataframe[2].value  # wide screens; phones (one row per model)
    assert list(robust.columns[:2]) == ["conv-2", "mlp-2"]
    assert set(robust["conv-2"]) == {"not measured"}
    assert robust.loc["paper scan (held out)", "mlp-2"] == "42.0 %"
    assert turned.loc["mlp-2", "paper scan (held out)"] == "42.0 %"
    assert len(at.get("plotly_chart")) >= 8  # three loss parts, two latent maps, two confusions, noise
    assert any(c.startswith("Reconstructed by mlp-2") for img in at.image for c in img.captions)
    at.button_group(key="compare_loss_view").set_value("Side by side").run()
    assert_clean(at)
    at.selectbox(key="compare_mlp_2").set_value("mlp-16").run()  # a 16-D map: drawn on its principal plane
    assert_clean(at)
    assert escape_markdown("mlp-16") in at.success[0].value


def test_compare_page_follows_the_sidebar_and_either_pair_can_be_chosen(monkeypatch, app_models):
    at = start(monkeypatch, app_models, model="conv-16")
    at.switch_page(PAGES["compare"]).run()
    assert_clean(at)
    assert list(at.dataframe[0].value["model"]) == ["conv-16", "mlp-16"]  # the sidebar's latent size
    at.button_group(key="compare_latent").set_value(2).run()  # the other pair, chosen here
    assert list(at.dataframe[0].value["model"]) == ["conv-2", "mlp-2"]
    at.selectbox(key=cached_models.MODEL_KEY).set_value("mlp-16").run()  # a new choice in the sidebar
    assert list(at.dataframe[0].value["model"]) == ["conv-16", "mlp-16"]


def test_compare_page_without_mnist_says_so(monkeypatch, app_models, tmp_path):
    monkeypatch.setenv("CVAE_DATA_DIR", str(tmp_path))
    at = start(monkeypatch, app_models, "compare")
    assert any("MNIST test images are not available" in i.value for i in at.info)


def test_no_model_explains_how_to_train(monkeypatch, tmp_path):
    for page in [None, *PAGES]:
        at = start(monkeypatch, tmp_path, page)
        assert any("python -m cvae_core.train" in i.value for i in at.info)


def test_broken_checkpoint_is_unavailable_and_others_work(monkeypatch, app_models, tmp_path):
    copy_models(app_models, tmp_path)
    weights = tmp_path / "mlp-2.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    at = start(monkeypatch, tmp_path)
    notes = " ".join(c.value for c in at.sidebar.caption)
    assert "mlp\\-2" in notes and "unavailable" in notes and "SHA" in notes
    (only,) = at.selectbox(key=cached_models.MODEL_KEY).options
    assert "conv-2" in only


def test_archive_gets_a_complete_record_and_autosaves_once(monkeypatch, app_models, mnist):
    saved, autosaved = [], []
    monkeypatch.setattr(archive_ui, "save_button", lambda record, *, key: saved.append((key, record)))
    monkeypatch.setattr(archive_ui, "autosave_toggle", lambda: None)
    monkeypatch.setattr(archive_ui, "autosave_enabled", lambda: True)
    monkeypatch.setattr(archive_ui, "autosave", autosaved.append)
    at = upload(start(monkeypatch, app_models, model="mlp-2"), "one.png", png(mnist.test_images[2].numpy()))
    key, record = saved[-1]
    assert key == "draw_save"
    assert isinstance(record, Record) and record.finished is True and record.number is None
    assert (record.model, record.source, record.label, record.filename) == ("mlp-2", "upload", 1, "one.png")
    assert record.input_image.shape == record.recon_image.shape == (28, 28)
    assert isinstance(record.original, Image.Image)
    assert record.partner_model == "conv-2" and record.true_label is None
    assert sum(record.probs) == pytest.approx(1, abs=1e-4) and record.not_digit is None
    at.slider(key="draw_sigma").set_value(0.2).run()
    assert saved[-1][1].sigma == pytest.approx(0.2)
    assert len(autosaved) == 1  # a new sigma is not a new input


def test_canvas_pixels_are_the_drawing():
    drawing = np.zeros((280, 280, 4), dtype=np.uint8)
    drawing[..., 3] = 255
    drawing[40:240, 130:150, :3] = 255  # a "1"
    url = "data:image/png;base64," + base64.b64encode(png(drawing)).decode()
    assert np.array_equal(inputs.canvas_image(CanvasResult(url))[1], drawing)
    pixels, problem = inputs.prepare_pixels(drawing)
    assert problem is None and pixels.shape == (28, 28) and pixels.max() > 0.5


def test_models_load_only_when_a_page_needs_them(monkeypatch, app_models, mnist, tmp_path):
    loaded = []
    real = catalogue.ModelEntry.load
    monkeypatch.setattr(catalogue.ModelEntry, "load", lambda entry, **kw: loaded.append(entry.name) or real(entry, **kw))
    folder = copy_models(app_models, tmp_path, COMMITTED_SET)  # new paths: nothing cached yet
    first = default_model(folder)
    partner = catalogue.partner(catalogue.discover(folder), catalogue.describe(folder / f"{first}.safetensors")).name
    at = start(monkeypatch, folder)
    assert len(at.selectbox(key=cached_models.MODEL_KEY).options) == len(COMMITTED_SET)  # listed from metadata
    assert loaded == [first]  # the selected model only
    upload(at, "one.png", png(mnist.test_images[2].numpy()))
    assert loaded == [first, partner]  # its partner, once there is an input to compare on
    at.switch_page(PAGES["latent"]).run()
    assert loaded == [first, partner]


def test_recognised_digit_is_shown_before_the_partner_is_asked(monkeypatch, app_models, mnist):
    """The metric is sent to the browser before the model decodes its reconstruction and restyle,
    and before the partner model, the reconstructions and the charts."""
    order = []
    metric, partner, restyle = st.metric, cached_models.partner_model, inference.restyle_all
    monkeypatch.setattr(st, "metric", lambda label, *a, **k: order.append(label) or metric(label, *a, **k))
    monkeypatch.setattr(cached_models, "partner_model", lambda entry: order.append("partner") or partner(entry))
    monkeypatch.setattr(inference, "restyle_all", lambda model, mean: order.append("decode") or restyle(model, mean))
    st.cache_data.clear()  # another test may have read this digit
    at = upload(start(monkeypatch, app_models, model="conv-2"), "one.png", png(mnist.test_images[2].numpy()))
    assert order == ["Recognised digit", "decode", "partner", "decode"]
    assert image_url(at, "by mlp-2")


def test_the_landing_page_sends_its_canvas_before_torch_is_imported():
    """Cold start: the router and the Draw page's widgets import nothing that pulls in torch, so
    the canvas reaches the browser while torch (seconds to import) loads afterwards."""
    code = "import sys, app.streamlit_app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
    # The page and its canvas import the canvas component, which loads only inside a running app: read their imports.
    top = set()
    for path in ("views/draw.py", "draw/__init__.py", "draw/canvas.py"):
        tree = ast.parse((ROOT / "app" / path).read_text())
        top |= {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
        top |= {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert top <= {"__future__", "typing", "streamlit", "streamlit_drawable_canvas", "app.draw"}, top

"""Checkpoints: save -> load equality, every kind of damage reported as a clear
``CheckpointError``, typed metadata, the SHA-256 manifest, the catalogue (``discover`` never
raising, the pairing rules), hostile folder contents (named pipes, devices, huge files, names
that are not UTF-8), and Ctrl-C during a save."""

from __future__ import annotations

import json
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_safetensors_bytes

from cvae_core import catalogue, checkpoints, interrupts
from cvae_core.catalogue import discover
from cvae_core.checkpoints import (
    MANIFEST_NAME,
    CheckpointError,
    _files,
    load_checkpoint,
    read_manifest,
    save_checkpoint,
    update_metadata,
    write_manifest,
)
from cvae_core.checkpoints import format as checkpoint_format
from cvae_core.checkpoints.__main__ import main as checkpoints_main
from cvae_core.config import ModelConfig
from cvae_core.models import build_model

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "mlp-2": ModelConfig(arch="mlp", latent_dim=2, hidden=(32,)),
    "conv-2": ModelConfig(arch="conv", latent_dim=2),
    "mlp-3": ModelConfig(arch="mlp", latent_dim=3, hidden=(32,)),
}


def make(folder: Path, name: str, *, seed: int = 0, latents: bool = True) -> Path:
    torch.manual_seed(seed)
    model = build_model(CONFIGS[name])
    n = 50
    z = torch.randn(n, model.config.latent_dim) if latents else None
    y = torch.randint(0, 10, (n,)) if latents else None
    return save_checkpoint(folder / name, model, {"command": "tests/test_checkpoints.py"}, latents=z, latent_labels=y)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pristine")
    for name in CONFIGS:
        make(folder, name)
    return folder


@pytest.fixture
def folder(tmp_path, pristine) -> Path:
    """A fresh copy of three small checkpoints (mlp-2, conv-2, mlp-3) for each test to damage."""
    return Path(shutil.copytree(pristine, tmp_path / "checkpoints"))


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def stored(path: Path) -> dict:
    """The metadata of checkpoint ``path`` as written, keys the typed metadata does not know included,
    once ``load_checkpoint`` has accepted the checkpoint."""
    ckpt = load_checkpoint(path)
    return json.loads(ckpt.path.with_suffix(".json").read_text())


def resync_sha(folder: Path, name: str) -> None:
    """Make the JSON's record of the weights agree with whatever the weights file now holds."""
    digest = checkpoints.sha256_bytes((folder / f"{name}.safetensors").read_bytes())
    edit_json(folder / f"{name}.json", lambda m: m.update(weights_sha256=digest))


# ---------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", ["mlp-2", "conv-2"])
def test_save_then_load_gives_identical_outputs(tmp_path, name):
    path = make(tmp_path, name)
    torch.manual_seed(0)
    model = build_model(CONFIGS[name]).eval()
    x, y = torch.rand(4, 1, 28, 28), torch.arange(4)
    ckpt = load_checkpoint(path)
    assert not ckpt.model.training and ckpt.config == CONFIGS[name]
    with torch.no_grad():
        for a, b in zip(model.encode(x, y), ckpt.model.encode(x, y), strict=True):
            assert torch.equal(a, b)
        z = torch.randn(4, CONFIGS[name].latent_dim)
        assert torch.equal(model.decode_logits(z, y), ckpt.model.decode_logits(z, y))
    assert ckpt.latents.shape == (50, CONFIGS[name].latent_dim) and ckpt.latent_labels.shape == (50,)
    assert ckpt.info.training.command == "tests/test_checkpoints.py" and ckpt.name == name
    for given in (tmp_path / name, tmp_path / f"{name}.json", str(path)):
        assert load_checkpoint(given).config == CONFIGS[name]


def test_loading_never_uses_torch_load(folder, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load must not be used to read checkpoints")

    monkeypatch.setattr(torch, "load", forbidden)
    assert load_checkpoint(folder / "mlp-2").config.arch == "mlp"


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# ------------------------------------------------------------------------------ damage, each case


def flip(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))


def swap_weights(folder: Path, src: str, dst: str) -> None:
    shutil.copy(folder / f"{src}.safetensors", folder / f"{dst}.safetensors")


def forge_tensors(folder: Path, name: str, tensors: dict) -> None:
    (folder / f"{name}.safetensors").write_bytes(save_safetensors_bytes(tensors))
    resync_sha(folder, name)


def nan_weights(folder: Path) -> None:
    state = {f"model.{k}": v.clone() for k, v in build_model(CONFIGS["mlp-2"]).state_dict().items()}
    next(iter(state.values())).view(-1)[0] = float("nan")
    forge_tensors(folder, "mlp-2", state)


def pickle_as_weights(folder: Path) -> None:
    (folder / "mlp-2.safetensors").write_bytes(pickle.dumps(_Payload(folder / "code-ran")))
    resync_sha(folder, "mlp-2")


def torch_save_as_weights(folder: Path) -> None:
    torch.save(build_model(CONFIGS["mlp-2"]).state_dict(), folder / "mlp-2.safetensors")
    resync_sha(folder, "mlp-2")


def bad_latents(folder: Path) -> None:
    state = {f"model.{k}": v for k, v in build_model(CONFIGS["mlp-2"]).state_dict().items()}
    forge_tensors(folder, "mlp-2", {**state, "latents.mean": torch.zeros(5, 7), "latents.labels": torch.zeros(5, dtype=torch.int64)})


CORRUPTIONS: dict[str, tuple[Callable[[Path], object], str]] = {
    "flipped byte in weights": (lambda f: flip(f / "mlp-2.safetensors"), "do not match their metadata"),
    "flipped byte in the safetensors header": (lambda f: flip(f / "mlp-2.safetensors", 0.001), "do not match their metadata"),
    "truncated weights": (lambda f: (f / "mlp-2.safetensors").write_bytes((f / "mlp-2.safetensors").read_bytes()[:1000]), "truncated"),
    "empty weights": (lambda f: (f / "mlp-2.safetensors").write_bytes(b""), "empty"),
    "empty json": (lambda f: (f / "mlp-2.json").write_bytes(b""), "empty"),
    "garbage json": (lambda f: (f / "mlp-2.json").write_bytes(b"{not json\x00\xff"), "not readable JSON"),
    "json is a list": (lambda f: (f / "mlp-2.json").write_text("[1, 2, 3]"), "no model config"),
    "unknown architecture": (lambda f: edit_json(f / "mlp-2.json", lambda m: m["config"].update(arch="transformer")), "invalid model config"),
    "unknown config key": (lambda f: edit_json(f / "mlp-2.json", lambda m: m["config"].update(depth=3)), "invalid model config"),
    "negative latent size": (lambda f: edit_json(f / "mlp-2.json", lambda m: m["config"].update(latent_dim=-1)), "invalid model config"),
    "conv weights, mlp config": (lambda f: (swap_weights(f, "conv-2", "mlp-2"), resync_sha(f, "mlp-2")), "do not fit a mlp model"),
    "conv weights, mlp config, sha not updated": (lambda f: swap_weights(f, "conv-2", "mlp-2"), "do not match their metadata"),
    "latent size 3 weights, size 2 config": (lambda f: (swap_weights(f, "mlp-3", "mlp-2"), resync_sha(f, "mlp-2")), "do not fit"),
    "weights missing": (lambda f: (f / "mlp-2.safetensors").unlink(), "weights file is missing"),
    "json missing": (lambda f: (f / "mlp-2.json").unlink(), "metadata file is missing"),
    "weights path is a folder": (lambda f: ((f / "mlp-2.safetensors").unlink(), (f / "mlp-2.safetensors").mkdir()), "is a folder"),
    "NaN in the weights": (nan_weights, "NaN"),
    "a pickle posing as weights": (pickle_as_weights, "not a valid safetensors file"),
    "a torch.save file posing as weights": (torch_save_as_weights, "not a valid safetensors file"),
    "no model tensors": (lambda f: forge_tensors(f, "mlp-2", {"other": torch.zeros(3)}), "holds no model weights"),
    "latents of the wrong shape": (bad_latents, "latents are damaged"),
    "history is not a list": (lambda f: edit_json(f / "mlp-2.json", lambda m: m.update(history="oops")), "malformed metadata"),
    "accuracy is text": (lambda f: edit_json(f / "mlp-2.json", lambda m: m.update(evaluation={"accuracy": "high"})),
                         "evaluation.accuracy is not a number"),
    "recognition incomplete": (lambda f: edit_json(f / "mlp-2.json", lambda m: m.update(recognition={"k": 8})),
                               "recognition lacks temperature"),
    "unknown role": (lambda f: edit_json(f / "mlp-2.json", lambda m: m.update(role="boss")), "malformed metadata"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_damage_is_a_clear_checkpoint_error(folder, case):
    damage, expected = CORRUPTIONS[case]
    damage(folder)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(folder / "mlp-2")
    message = str(info.value)
    assert expected in message and message.startswith("mlp-2") and "Traceback" not in message
    assert not (folder / "code-ran").exists()
    # the other models in the folder are unaffected
    assert load_checkpoint(folder / "conv-2").config.arch == "conv"


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere" / "mlp-2")


def test_oversized_metadata_is_refused(folder, monkeypatch):
    monkeypatch.setattr(checkpoint_format, "MAX_META_BYTES", 100)
    with pytest.raises(CheckpointError, match="too large"):
        load_checkpoint(folder / "mlp-2")


# ------------------------------------------------------------------------------------ manifest


def test_manifest_is_sha256sum_format_and_checked(folder):
    path = write_manifest(folder)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 * len(CONFIGS)
    entries = read_manifest(folder)
    assert set(entries) == {f"{n}{s}" for n in CONFIGS for s in (".safetensors", ".json")}
    assert all(len(d) == 64 for d in entries.values())
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", "--check", "--quiet", MANIFEST_NAME], cwd=folder).returncode == 0
    for name in CONFIGS:
        load_checkpoint(folder / name)


@pytest.mark.parametrize(
    "damage",
    [lambda f: flip(f / "mlp-2.safetensors"), lambda f: (f / "mlp-2.safetensors").write_bytes(b""),
     lambda f: (f / "mlp-2.json").write_text("{}"), lambda f: (swap_weights(f, "conv-2", "mlp-2"), resync_sha(f, "mlp-2"))],
    ids=["flipped byte", "emptied", "json replaced", "weights and sha replaced together"],
)
def test_manifest_catches_a_changed_file(folder, damage):
    write_manifest(folder)
    damage(folder)
    with pytest.raises(CheckpointError, match=f"does not match {MANIFEST_NAME}|only the manifest"):
        load_checkpoint(folder / "mlp-2")


def test_stale_manifest_says_how_to_regenerate(folder):
    write_manifest(folder)
    edit_json(folder / "mlp-2.json", lambda m: m.update(note="edited by hand"))  # files still agree
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(folder / "mlp-2")
    assert "python -m cvae_core.checkpoints manifest" in str(info.value) and "out of date" in str(info.value)
    assert checkpoints_main(["manifest", str(folder)]) == 0
    assert stored(folder / "mlp-2")["note"] == "edited by hand"


def test_garbage_manifest_is_reported(folder):
    (folder / MANIFEST_NAME).write_text("this is not a manifest\n")
    with pytest.raises(CheckpointError, match=r"line 1.*regenerate"):
        load_checkpoint(folder / "mlp-2")


def test_update_metadata_keeps_a_valid_manifest_in_step(folder):
    write_manifest(folder)
    update_metadata(folder / "mlp-2", {"evaluation": {"accuracy": 0.5}})  # what evaluate does
    assert stored(folder / "mlp-2")["evaluation"] == {"accuracy": 0.5}
    # ...but never blesses a file that had already changed behind the manifest's back
    edit_json(folder / "conv-2.json", lambda m: m.update(note="tampered"))
    update_metadata(folder / "conv-2", {"evaluation": {"accuracy": 0.9}})
    with pytest.raises(CheckpointError, match="manifest"):
        load_checkpoint(folder / "conv-2")


def test_save_updates_listed_files_and_leaves_others_unlisted(folder):
    write_manifest(folder)
    make(folder, "mlp-2", seed=5)  # retrained in place: its manifest entries follow
    assert load_checkpoint(folder / "mlp-2").config.arch == "mlp"
    torch.manual_seed(1)
    save_checkpoint(folder / "new", build_model(CONFIGS["conv-2"]), {})
    assert "new.json" not in read_manifest(folder)  # a new model is not blessed by saving it
    assert load_checkpoint(folder / "new").config.arch == "conv"  # unlisted: its own checksum guards it


def test_a_garbage_manifest_never_fails_a_save(folder):
    (folder / MANIFEST_NAME).write_text("garbage\n")
    make(folder, "mlp-2", seed=3)
    update_metadata(folder / "mlp-2", {"evaluation": {"accuracy": 0.1}})
    assert (folder / MANIFEST_NAME).read_text() == "garbage\n"  # left for a person to look at


def test_concurrent_saves_keep_every_manifest_entry(tmp_path):
    """Trainings saving side by side into one folder: no manifest update is lost."""
    names = [f"model-{i}" for i in range(8)]
    for name in names:
        save_checkpoint(tmp_path / name, build_model(CONFIGS["mlp-2"]), {})
    write_manifest(tmp_path)

    def retrain(name: str) -> None:
        for _ in range(3):
            save_checkpoint(tmp_path / name, build_model(CONFIGS["mlp-2"]), {"retrained": True})
            update_metadata(tmp_path / name, {"evaluation": {"accuracy": 0.5}})

    threads = [threading.Thread(target=retrain, args=(name,)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in names:
        assert stored(tmp_path / name)["evaluation"] == {"accuracy": 0.5}


def test_manifest_and_verify_commands(folder, capsys):
    assert checkpoints_main(["manifest", str(folder)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert checkpoints_main(["verify", str(folder)]) == 0
    flip(folder / "mlp-3.safetensors")
    assert checkpoints_main(["verify", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "mlp-3: UNAVAILABLE" in out and "conv-2: ok" in out
    assert checkpoints_main(["manifest", str(folder / "missing")]) == 1


# ------------------------------------------------------------------------------------ discover


def test_discover_never_raises(folder, monkeypatch):
    write_manifest(folder)
    flip(folder / "mlp-3.safetensors")
    (folder / "orphan.json").write_text("{oops")
    (folder / "lonely.safetensors").write_bytes(b"\x00" * 10)
    (folder / "notes.txt").write_text("ignored")
    entries = {e.name: e.load() for e in discover(folder)}
    assert set(entries) == {"mlp-2", "conv-2", "mlp-3", "orphan", "lonely"}
    assert entries["mlp-2"].ok and entries["conv-2"].ok and entries["mlp-2"].ckpt.config.arch == "mlp"
    for name in ("mlp-3", "orphan", "lonely"):
        assert not entries[name].ok and entries[name].error and entries[name].ckpt is None
    assert "MANIFEST" in entries["mlp-3"].error
    assert discover(folder / "missing") == []

    def explode(path, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(catalogue, "load_checkpoint", explode)
    described = [e for e in discover(folder) if e.ok]
    assert described and all("MemoryError" in e.load().error for e in described)
    monkeypatch.setattr(catalogue, "read_checked", explode)
    assert all("MemoryError" in e.error for e in discover(folder))


# ------------------------------------------------------------------------------ typed metadata


RECOGNITION = {"k": 16, "temperature": 1.5, "not_digit_threshold": 0.7, "fitted_on": "val",
               "command": "python -m cvae_core.robustness", "created": "2026-11-30T00:00:00+00:00"}


def test_shipped_metadata_is_typed():
    meta = load_checkpoint(ROOT / "checkpoints" / "conv-2").info
    raw = json.loads((ROOT / "checkpoints" / "conv-2.json").read_text())
    assert meta.config.arch == "conv" and meta.name == "conv-2" and meta.role is None
    assert len(meta.training.history) == raw["epochs_run"] == meta.training.epochs
    assert meta.training.history[0]["epoch"] == 1 and meta.training.test.loss == raw["test"]["loss"]
    assert meta.evaluation.accuracy == raw["evaluation"]["accuracy"] and len(meta.evaluation.confusion) == 10
    assert meta.test.loss == raw["evaluation"]["test_loss"]  # the evaluation's figure first...
    assert meta.provenance.data_sha256 == raw["data_sha256"] and meta.provenance.note == raw["provenance_note"]


def test_optional_blocks_and_the_training_fallback(folder):
    meta = load_checkpoint(folder / "mlp-2").info
    assert meta.evaluation is None and meta.test is None and meta.recognition is None and meta.robustness is None
    edit_json(folder / "mlp-2.json", lambda m: m.update(test={"loss": 140.0, "recon": 135.0, "kl": 5.0}, role="recogniser",
                                                         recognition=RECOGNITION, robustness={"mean_accuracy": 0.8}))
    resync_sha(folder, "mlp-2")
    meta = load_checkpoint(folder / "mlp-2").info
    assert meta.test.loss == 140.0  # ...else the one measured at the end of training
    assert meta.recognition.k == 16 and meta.recognition.temperature == 1.5 and meta.robust_accuracy == 0.8
    assert meta.role == "recogniser"


def test_shipped_robustness_is_typed():
    info = load_checkpoint(ROOT / "checkpoints" / "mlp-16-recogniser").info
    raw = json.loads((ROOT / "checkpoints" / "mlp-16-recogniser.json").read_text())["robustness"]
    r = info.robustness
    assert r.n == raw["n"] and r.clean.accuracy == raw["clean"]["accuracy"] and r.accuracy_noise_03 == raw["accuracy_noise_0.3"]
    assert list(r.corruptions) == list(raw["corruptions"])
    blur = r.corruptions["gaussian_blur"]
    assert blur.accuracy == raw["corruptions"]["gaussian_blur"]["accuracy"] and len(blur.severities) == 3
    assert blur.severities[0].severity == raw["corruptions"]["gaussian_blur"]["severities"][0]["severity"]
    assert r.ood.families["shapes"].auroc == raw["ood"]["families"]["shapes"]["auroc"]


def unavailable_reason(folder: Path, **meta) -> str:
    """The reason mlp-2 is unavailable after ``meta`` is merged into its metadata (the others stay usable)."""
    edit_json(folder / "mlp-2.json", lambda m: m.update(meta))
    entries = {e.name: e for e in discover(folder)}
    assert entries["conv-2"].ok and entries["mlp-3"].ok
    assert not entries["mlp-2"].ok, "a malformed record was accepted"
    assert "mlp-2.json" in entries["mlp-2"].error
    return entries["mlp-2"].error


@pytest.mark.parametrize(("robustness", "reason"), [
    ({"clean": "x"}, "robustness.clean is not an object"),
    ({"corruptions": []}, "robustness.corruptions is not an object"),
    ({"corruptions": {"blur": "x"}}, "robustness.corruptions.blur is not an object"),
    ({"corruptions": {"blur": {"severities": {"a": 1}}}}, "robustness.corruptions.blur.severities is not a list"),
    ({"corruptions": {"blur": {"held_out": "no"}}}, "held_out is not true or false"),
    ({"ood": 3}, "robustness.ood is not an object"),
    ({"ood": {"families": {"shapes": {"auroc": "high"}}}}, "robustness.ood.families.shapes.auroc is not a number"),
    ({"mean_accuracy": "high"}, "robustness.mean_accuracy is not a number"),
    ({"mean_accuracy": 7}, "robustness.mean_accuracy is not a share"),
    ({"clean": {"accuracy": float("nan")}}, "robustness.clean.accuracy is not a share"),
])
def test_a_malformed_robustness_record_makes_that_model_unavailable(folder, robustness, reason):
    assert reason in unavailable_reason(folder, robustness=robustness)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"k": 20000}, "k must be a whole number from 1 to 1024"),
    ({"k": 10**6}, "k must be a whole number from 1 to 1024"),
    ({"k": 0}, "k must be a whole number from 1 to 1024"),
    ({"k": 4.5}, "recognition.k is not an integer"),
    ({"temperature": float("inf")}, "temperature must be a finite number from 0.01 to 1000"),
    ({"temperature": 1e-300}, "temperature must be a finite number from 0.01 to 1000"),
    ({"not_digit_threshold": float("nan")}, "not_digit_threshold is a probability"),
    ({"not_digit_threshold": -1}, "not_digit_threshold is a probability"),
    ({"not_digit_threshold": 1.5}, "not_digit_threshold is a probability"),
    ({"loglik_threshold": float("-inf")}, "loglik_threshold must be a finite number"),
    ({"distorted_flagged": 2}, "recognition.distorted_flagged is not a share"),
])
def test_recognition_settings_out_of_bounds_make_that_model_unavailable(folder, changes, reason):
    assert reason in unavailable_reason(folder, recognition={**RECOGNITION, **changes})


def test_an_evaluation_k_out_of_bounds_makes_that_model_unavailable(folder):
    """Without a calibration the evaluation's K is the one used to read a drawing."""
    assert "evaluation.k must be from 1 to 1024" in unavailable_reason(folder, evaluation={"k": 20000})


def test_the_default_recogniser_is_one_the_manifest_vouches_for(folder):
    """A copy dropped beside the shipped models, with the same (or better) figures and a name that
    sorts first, is never the landing model while the manifest lists others."""
    recogniser = {"role": "recogniser", "robustness": {"mean_accuracy": 0.7}, "evaluation": {"accuracy": 0.9}}
    edit_json(folder / "mlp-2.json", lambda m: m.update(recogniser))
    write_manifest(folder)
    for suffix in (".safetensors", ".json"):
        shutil.copy(folder / f"mlp-2{suffix}", folder / f"aaa{suffix}")
    edit_json(folder / "aaa.json", lambda m: m.update(robustness={"mean_accuracy": 0.99}))
    entries = discover(folder)
    assert {e.name: e.verified for e in entries} == {"aaa": False, "conv-2": True, "mlp-2": True, "mlp-3": True}
    assert [e.name for e in catalogue.recogniser_ranking(entries)] == ["mlp-2"]
    assert catalogue.default_recogniser(entries).name == "mlp-2"
    (folder / MANIFEST_NAME).unlink()  # a folder of the user's own models: no manifest, every model counts
    assert catalogue.recogniser_ranking(discover(folder))[0].name == "aaa"


def entry(folder: Path, name: str, **meta) -> catalogue.ModelEntry:
    edit_json(folder / f"{name}.json", lambda m: m.update(meta))
    return catalogue.describe(folder / f"{name}.safetensors")


def test_pairing_rules(folder):
    for name in ("mlp-2", "conv-2"):
        shutil.copy(folder / f"{name}.safetensors", folder / f"{name}-b.safetensors")
        shutil.copy(folder / f"{name}.json", folder / f"{name}-b.json")
    entries = {e.name: e for e in discover(folder)}
    listed = list(entries.values())
    assert catalogue.default_model(listed).name == "conv-2"
    assert catalogue.partner(listed, entries["conv-2"]).name == "mlp-2"
    assert catalogue.closest(listed, 3).name == "mlp-3"
    assert [e.name for e in catalogue.paper_pair(listed, 2)] == ["conv-2", "mlp-2"]
    assert catalogue.paper_pair(listed, 3) is None  # no conv at latent 3
    # Recogniser: by clean accuracy while no model has a role...
    entries["mlp-2-b"] = entry(folder, "mlp-2-b", evaluation={"accuracy": 0.9})
    entries["conv-2"] = entry(folder, "conv-2", evaluation={"accuracy": 0.95})
    assert catalogue.recogniser_ranking(list(entries.values()))[0].name == "conv-2"
    # ...and among the recognisers, by mean accuracy over the corruptions first.
    entries["mlp-2-b"] = entry(folder, "mlp-2-b", role="recogniser", robustness={"mean_accuracy": 0.7},
                               evaluation={"accuracy": 0.9})
    entries["conv-2-b"] = entry(folder, "conv-2-b", role="recogniser", robustness={"mean_accuracy": 0.6},
                                evaluation={"accuracy": 0.99})
    entries["mlp-2"] = entry(folder, "mlp-2", role="paper")
    listed = list(entries.values())
    assert [e.name for e in catalogue.recogniser_ranking(listed)] == ["mlp-2-b", "conv-2-b"]
    assert catalogue.partner(listed, entries["mlp-2-b"]).name == "conv-2-b"  # same role
    assert catalogue.paper_pair(listed, 2)[1].name == "mlp-2"
    best = catalogue.default_recogniser(listed)
    assert best.name == "mlp-2-b" and best.ckpt is not None
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        catalogue.default_recogniser([])


def test_summary_and_verdict():
    from cvae_core.summary import Summary, summary, verdict

    meta = load_checkpoint(ROOT / "checkpoints" / "mlp-2").info
    s = summary(meta)
    assert (s.model, s.arch, s.latent_dim, s.epochs) == ("mlp-2", "mlp", 2, meta.training.epochs_run)
    assert s.test_loss == meta.evaluation.test_loss and s.accuracy == meta.evaluation.accuracy
    assert s.noise == tuple((n["sigma"], n["accuracy"]) for n in meta.evaluation.noise if n["sigma"] > 0)
    assert s.calibrated is (meta.recognition is not None)
    a, b = Summary("a", test_loss=100.001, accuracy=0.95), Summary("b", test_loss=100.0, accuracy=0.95)
    v = verdict([a, b])
    assert str(v) == ("a and b are alike at fitting the test digits (test loss 100.00). a and b are alike at reading "
                      "clean test digits (95.00 %). "
                      "To recognise: either, they read digits alike. To generate: either, they fit the test digits "
                      "alike. Small: no parameter counts to compare.")
    c = Summary("c", test_loss=90.0, accuracy=0.97)
    v = verdict([a, b, c])
    assert v.axis("test loss").winner is c and v.axis("clean digits").winner is c
    assert v.sentences()[0] == ("c is best at fitting the test digits (test loss 90.00 vs b 100.00, a 100.00; lower "
                                "is better) and reading clean test digits (97.00 % vs a 95.00 %, b 95.00 %).")


def test_verdict_weighs_every_measured_axis_and_recommends_per_purpose():
    """The noise curve on shared sigmas, the corruption suite, calibration and size all count; the
    recognition pick is the broadest measure (corruptions, then noise, then clean digits) and names
    the trade-off; a CNN's cross-entropy is no test loss; uncalibrated models are named."""
    from cvae_core.summary import Summary, verdict

    conv = Summary("conv", arch="conv", params=10_000, test_loss=100.0, accuracy=0.96,
                   noise=((0.1, 0.55), (0.3, 0.25), (0.4, 0.9)), calibrated=False)
    mlp = Summary("mlp", arch="mlp", params=1_000_000, test_loss=92.0, accuracy=0.98,
                  noise=((0.1, 0.37), (0.3, 0.11)), calibrated=False)
    v = verdict([conv, mlp])
    assert v.strengths() == {
        "conv": ["reading noisy digits (40.0 % vs 24.0 %, mean over noise σ 0.1 to 0.3)",
                 "being small (100 times fewer parameters: 10,000 vs 1,000,000)"],
        "mlp": ["fitting the test digits (test loss 92.00 vs 100.00; lower is better)",
                "reading clean test digits (98.00 % vs 96.00 %)"],
    }
    assert [str(r) for r in v.recommendations] == [
        "To recognise: conv, better at reading noisy digits (40.0 % vs 24.0 %, mean over noise σ 0.1 to 0.3); "
        "mlp is ahead on clean test digits only.",
        "To generate: mlp, better at fitting the test digits (test loss 92.00 vs 100.00; lower is better).",
        "Small: conv, 100 times fewer parameters.",
    ]
    assert v.uncalibrated == ("conv", "mlp") and "are not calibrated" in str(v)

    # Measured corruptions outrank the noise curve; the missing figure is said.
    robust = Summary("mlp-r", arch="mlp", params=1_000_000, test_loss=140.0, accuracy=0.97, robust_accuracy=0.93,
                     ece=0.05, calibrated=True)
    cnn = Summary("cnn", arch="cnn", params=50_000, test_loss=0.04, accuracy=0.99, robust_accuracy=0.96, ece=0.04,
                  calibrated=True)
    v = verdict([robust, cnn, conv])
    assert v.recommendations[0].model == "cnn" and "distorted digits" in v.recommendations[0].reason
    assert v.axis("test loss").ranked == (conv, robust)  # the CNN's loss is not a negative ELBO
    assert v.recommendations[1].model == "conv"
    assert v.missing() == {"conv": ["distorted digits", "calibration"]}
    assert v.uncalibrated == ("conv",)
    same = verdict([Summary("x", params=100), Summary("y", params=150)])
    assert same.ties() == ["x and y are about the same size"]
    assert str(same.recommendations[2]) == "Small: either, they are about the same size."


# ------------------------------------------------------------------------------ interrupted saves


def test_sigint_is_deferred_until_the_files_are_written():
    # A background job (CI, nohup) may start with SIGINT ignored; act as a terminal would.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    reached = False
    try:
        with pytest.raises(KeyboardInterrupt), interrupts.interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here; it must not interrupt
            reached = True
        assert reached
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_library_installs_no_signal_handler(folder, monkeypatch):
    """Saving, updating and the manifest never touch signal handlers: that is the commands' choice."""
    monkeypatch.setattr(signal, "signal", lambda *a: pytest.fail("a library function installed a signal handler"))
    make(folder, "mlp-2")
    update_metadata(folder / "mlp-2", {"note": "x"})
    write_manifest(folder)
    assert stored(folder / "mlp-2")["note"] == "x"


def test_sigterm_is_deferred_too():
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with interrupts.interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert received == []
        time.sleep(0.01)
        assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_failed_write_leaves_the_old_checkpoint_intact(folder, monkeypatch):
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    calls = []

    def failing(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(path, data)

    real = _files.write_tmp
    monkeypatch.setattr(_files, "write_tmp", failing)
    with pytest.raises(OSError):
        make(folder, "mlp-2", seed=9)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temp files either
    load_checkpoint(folder / "mlp-2")


CHILD = """
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even when started in the background
import itertools, sys, torch
from cvae_core.checkpoints import save_checkpoint
from cvae_core.config import ModelConfig
from cvae_core.interrupts import deferred_while_writing
from cvae_core.models import build_model
torch.manual_seed(0)
model = build_model(ModelConfig(arch="mlp", latent_dim=2, hidden=(512, 512)))
with deferred_while_writing():  # as the commands run
    save_checkpoint(sys.argv[1], model, {"round": 0})
    print("ready", flush=True)
    for i in itertools.count(1):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        save_checkpoint(sys.argv[1], model, {"round": i})
"""


def test_sigint_during_saves_leaves_a_whole_checkpoint(tmp_path):
    path = tmp_path / "mlp-2"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 120)  # a slow machine may take a while to import torch
        assert ready and child.stdout.readline().strip() == "ready", "the child process did not start saving"
        time.sleep(0.4)  # a few saves in: most of the child's time is spent saving
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) != 0  # stopped by KeyboardInterrupt
    finally:
        child.kill()
        child.wait()
    ckpt = load_checkpoint(path)  # weights and metadata agree (the SHA-256 is checked)
    torch.manual_seed(0)
    first = next(iter(build_model(ckpt.config).state_dict().values()))
    assert torch.allclose(next(iter(ckpt.model.state_dict().values())), first + stored(path)["round"], atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp-2.json", "mlp-2.safetensors"]  # no temp files


# ------------------------------------------------------------------- hostile folder contents


def in_time(call: Callable[[], object], seconds: float = 30.0) -> object:
    """``call()`` in a thread, failing (not hanging) if it blocks, e.g. on opening a named pipe."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as e:  # handed to the caller below
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked: a non-regular file was opened"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


NON_UTF8 = os.fsdecode(b"caf\xe9-2")  # a name that is not valid UTF-8 (lone surrogate when decoded)


def test_a_file_name_that_is_not_utf8_is_listed_and_verified(folder, capsys):
    for suffix in (".safetensors", ".json"):
        shutil.copy(folder / f"mlp-2{suffix}", folder / f"{NON_UTF8}{suffix}")
    write_manifest(folder)  # names written as bytes, read back alike
    assert set(read_manifest(folder)) >= {f"{NON_UTF8}.json", f"{NON_UTF8}.safetensors"}
    entries = {e.name: e.load() for e in discover(folder)}
    odd = entries["caf\\xe9-2"]
    assert odd.ok and odd.ckpt.config.arch == "mlp"
    for entry in entries.values():
        entry.name.encode("utf-8"), entry.signature.encode("utf-8")  # printable: hashable by Streamlit
    assert checkpoints_main(["verify", str(folder)]) == 0
    assert "caf\\xe9-2: ok" in capsys.readouterr().out


def test_a_file_name_that_is_not_utf8_breaks_no_page(folder, monkeypatch):
    from streamlit.testing.v1 import AppTest

    for suffix in (".safetensors", ".json"):
        shutil.copy(folder / f"conv-2{suffix}", folder / f"{NON_UTF8}{suffix}")
    monkeypatch.setenv("CVAE_CHECKPOINT_DIR", str(folder))
    at = AppTest.from_string("from app.streamlit_app import run\nrun()\n", default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    for page in ("latent", "compare"):
        at.switch_page(str(ROOT / "app" / "views" / f"{page}.py")).run()
        assert not at.exception, [e.value for e in at.exception]
    from app.cached_models import MODEL_KEY

    assert any(o.startswith("caf\\xe9-2 ") for o in at.selectbox(key=MODEL_KEY).options)
    at.selectbox(key=MODEL_KEY).set_value("caf\\xe9-2").run()
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("special", ["x.json", "x.safetensors", "mlp-2.json", "mlp-2.safetensors"])
def test_a_named_pipe_is_never_opened(folder, capsys, special):
    (folder / special).unlink(missing_ok=True)
    os.mkfifo(folder / special)
    if special == "x.safetensors":  # with its metadata, so that the weights are what is looked at
        shutil.copy(folder / "mlp-2.json", folder / "x.json")
    entries = {e.name: e for e in in_time(lambda: [e.load() for e in discover(folder)])}
    stem = special.rsplit(".", 1)[0]
    assert not entries[stem].ok and "named pipe" in entries[stem].error and "regular file" in entries[stem].error
    assert entries["conv-2"].ok
    with pytest.raises(CheckpointError, match="named pipe"):
        in_time(lambda: load_checkpoint(folder / stem))
    assert in_time(lambda: checkpoints_main(["verify", str(folder)])) == 1
    assert f"{stem}: UNAVAILABLE" in capsys.readouterr().out
    assert special not in read_manifest(in_time(lambda: write_manifest(folder)).parent)


def test_a_named_pipe_as_manifest_is_reported(folder):
    os.mkfifo(folder / MANIFEST_NAME)
    with pytest.raises(CheckpointError, match="named pipe"):
        in_time(lambda: load_checkpoint(folder / "mlp-2"))


def test_weights_are_read_with_a_bound(folder, monkeypatch):
    # A device (here /dev/zero, endless) linked as weights is not a regular file: never read.
    (folder / "mlp-2.safetensors").unlink()
    (folder / "mlp-2.safetensors").symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match="device"):
        in_time(lambda: load_checkpoint(folder / "mlp-2"))
    # A huge (sparse) file is refused from its size, before a byte is read.
    (folder / "mlp-2.safetensors").unlink()
    with open(folder / "mlp-2.safetensors", "wb") as f:
        f.truncate(checkpoint_format.MAX_WEIGHTS_BYTES + 1)
    with pytest.raises(CheckpointError, match="too large"):
        load_checkpoint(folder / "mlp-2")
    # Bytes beyond what the safetensors header declares are never read.
    weights = folder / "conv-2.safetensors"
    declared = weights.stat().st_size
    with open(weights, "ab") as f:
        f.truncate(declared + 50 * 1024 * 1024)
    sizes = []
    real = checkpoint_format.read_regular
    monkeypatch.setattr(checkpoint_format, "read_regular",
                        lambda path, **kw: sizes.append(len(data := real(path, **kw))) or data)
    assert load_checkpoint(folder / "conv-2").config.arch == "conv"  # its checksum covers what was read
    assert max(sizes) == declared

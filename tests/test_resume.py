"""`train --resume`: a run interrupted after an epoch and resumed ends with the same weights and history
as the same run done in one sitting (augmentation, non-digits and the hybrid term draw random numbers
from every generator the state must carry)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from cvae_core import train

TINY = ["--model", "mlp", "--hidden", "32", "--latent-dim", "2", "--background", "--augment", "--denoise",
        "--disc-weight", "5", "--disc-fraction", "0.25", "--epochs", "3", "--subset", "400", "--val-size", "300",
        "--eval-size", "300", "--threads", "1"]


@pytest.fixture(autouse=True)
def small_nondigit_pool(monkeypatch):
    monkeypatch.setattr(train, "NONDIGIT_POOL", 300)


def run(out, data_dir, *extra):
    train.main([*TINY, "--data-dir", str(data_dir), "--out", str(out), *extra])


def history(out):
    meta = json.loads(out.with_suffix(".json").read_text())
    return [{k: v for k, v in h.items() if k != "seconds"} for h in meta["history"]], meta


def test_resume_gives_the_uninterrupted_result(tmp_path, data_dir, monkeypatch):
    whole = tmp_path / "whole"
    run(whole, data_dir)

    broken = tmp_path / "broken"
    saves = []
    real_save, real_loss = train.save_training_state, train.cvae_loss

    def save_then_arm(path, state):
        real_save(path, state)
        saves.append(state["epoch"])

    def loss_or_ctrl_c(*args, **kwargs):
        if saves:  # the first epoch is saved: Ctrl-C in the middle of the second
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train, "save_training_state", save_then_arm)
    monkeypatch.setattr(train, "cvae_loss", loss_or_ctrl_c)
    run(broken, data_dir)
    interrupted, meta = history(broken)
    assert meta["interrupted"] and len(interrupted) == 1 and saves == [1]
    assert train.resume_path(broken).exists()

    monkeypatch.setattr(train, "save_training_state", real_save)
    monkeypatch.setattr(train, "cvae_loss", real_loss)
    train.main(["--resume", str(broken), "--threads", "1"])
    resumed, meta = history(broken)
    expected, whole_meta = history(whole)
    assert resumed == expected
    assert meta["command"].replace(str(broken), "X") == whole_meta["command"].replace(str(whole), "X")
    assert meta["resumed"] == 1 and "interrupted" not in meta
    a, b = load_file(broken.with_suffix(".safetensors")), load_file(whole.with_suffix(".safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert not train.resume_path(broken).exists()  # a finished run leaves no state behind


def test_resume_without_state_says_so(tmp_path, capsys):
    with pytest.raises(train.TrainingError, match="nothing to resume"):
        train.main(["--resume", str(tmp_path / "never-ran")])


def test_resume_refuses_other_settings(tmp_path, data_dir, monkeypatch):
    out = tmp_path / "r"
    train.save_training_state(train.resume_path(out), {"meta": {"command": "python -m cvae_core.train " + " ".join(TINY)}})
    with pytest.raises(SystemExit):
        train.main(["--resume", str(out), "--epochs", "9"])

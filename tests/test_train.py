"""A 1-epoch training run on a 2k subset of the real data writes a checkpoint that loads back."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cvae_core.checkpoints import load_checkpoint
from cvae_core.config import ModelConfig, TrainConfig
from cvae_core.models import build_model, cvae_loss
from cvae_core.train import fit, lr_factor, main, make_optimizer


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_one_epoch_smoke_run_round_trips(tmp_path, mnist, arch):
    out = tmp_path / f"{arch}-2"
    meta = fit(ModelConfig(arch=arch, hidden=(64,)), TrainConfig(epochs=1, subset=2000, val_size=1000, eval_size=1500), mnist, out,
               command="pytest", device=torch.device("cpu"))
    assert meta["history"][0]["epoch"] == 1
    for key in ("train_loss", "val_loss", "test_loss", "test_recon", "test_kl"):
        assert math.isfinite(meta["history"][0][key])
    ckpt = load_checkpoint(out)
    assert ckpt.info.training.command == "pytest" and ckpt.info.training.train_size == 2000
    assert ckpt.info.provenance.data_sha256 == {}  # the fixture skips checksums; the CLI test checks them
    # A smoke run evaluates (and stores latents for) the first eval_size test digits only.
    assert ckpt.latents.shape == (1500, 2) and torch.equal(ckpt.latent_labels, mnist.test_labels[:1500])
    x, y = mnist.test_images[:8].unsqueeze(1).float() / 255, mnist.test_labels[:8]
    ckpt.model.eval()
    with torch.no_grad():
        fresh_mean, _ = ckpt.model.encode(x, y)
        again = load_checkpoint(out).model.eval()
        assert torch.equal(fresh_mean, again.encode(x, y)[0])
        assert torch.equal(ckpt.model.decode_logits(fresh_mean, y), again.decode_logits(fresh_mean, y))


def test_command_line_smoke_run(tmp_path, data_dir, capsys):
    out = tmp_path / "cli"
    main(["--model", "mlp", "--hidden", "32", "--epochs", "1", "--subset", "500", "--val-size", "500", "--eval-size", "500",
          "--data-dir", str(data_dir), "--out", str(out)])
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"].startswith("python -m cvae_core.train --model mlp")
    assert len(meta["data_sha256"]) == 4 and meta["config"]["hidden"] == [32]
    assert "wrote" in capsys.readouterr().out


def test_learning_rate_schedule():
    assert lr_factor(0, total=100, warmup=10, floor=0.01) == pytest.approx(0.1)
    assert lr_factor(10, total=100, warmup=10, floor=0.01) == pytest.approx(1.0)
    assert lr_factor(100, total=100, warmup=10, floor=0.01) == pytest.approx(0.01)


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_fused_adam_makes_the_textbook_updates(arch):
    """The fused Adam training uses steps the weights as PyTorch's per-tensor Adam does."""
    torch.manual_seed(0)
    config = ModelConfig(arch=arch, latent_dim=2, hidden=(32,))
    fused, plain = build_model(config), build_model(config)
    plain.load_state_dict(fused.state_dict())
    start = [w.detach().clone() for w in fused.parameters()]
    cfg = TrainConfig(lr=1e-2, weight_decay=1e-4)
    opt_fused = make_optimizer(fused, cfg)
    opt_plain = torch.optim.Adam(plain.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x = torch.rand(16, 1, 28, 28)
    y = torch.arange(16) % 10
    for _ in range(5):
        for model, opt in ((fused, opt_fused), (plain, opt_plain)):
            torch.manual_seed(1)  # the same reparameterisation noise for both
            logits, mean, logvar = model(x, y)
            loss = cvae_loss(logits, x, mean, logvar)["loss"].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    moved = [(w - w0).abs().max().item() for w, w0 in zip(fused.parameters(), start, strict=True)]
    assert min(moved) > 1e-3  # every tensor moved by several steps of lr 1e-2
    for a, b in zip(fused.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # a thousandth of one step

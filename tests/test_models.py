"""Both CVAEs: shapes, the loss against a hand computation, KL against Monte Carlo, inference helpers."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from cvae_core import inference
from cvae_core.calibration import Calibration
from cvae_core.config import ModelConfig
from cvae_core.models import MLPCVAE, MODELS, ConvCVAE, DigitCNN, build_model, cvae_loss


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("latent_dim", [1, 2, 16])
def test_shapes(arch, latent_dim):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, latent_dim=latent_dim, hidden=(64, 32)))
    x, y = torch.rand(5, 1, 28, 28), torch.randint(0, 10, (5,))
    logits, mean, logvar = model(x, y)
    assert logits.shape == (5, 1, 28, 28)
    assert mean.shape == logvar.shape == (5, latent_dim)
    assert model.sample(y).shape == (5, 1, 28, 28)
    assert model.sample(y, torch.zeros(5, latent_dim)).shape == (5, 1, 28, 28)


def test_registry_and_paper_sizes():
    assert {"conv": ConvCVAE, "mlp": MLPCVAE} == MODELS
    conv = build_model(ModelConfig(arch="conv"))
    assert conv.feature_dim == 8 * 7 * 7  # the paper's bottleneck
    convs = [m for m in conv.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 16), (16, 8), (8, 8), (8, 16), (16, 1)]
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model(ModelConfig(arch="transformer"))


def test_label_changes_decoder_output():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="mlp", hidden=(32,)))
    z = torch.zeros(2, 2)
    a, b = model.decode_logits(z, torch.tensor([0, 0])), model.decode_logits(z, torch.tensor([0, 1]))
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])


def test_loss_matches_hand_computation():
    # One image of two pixels' worth of values, spelled out in nats.
    logits = torch.tensor([[0.0, 2.0, -1.0]]).view(1, 1, 1, 3)
    x = torch.tensor([[0.0, 1.0, 0.5]]).view(1, 1, 1, 3)
    mean, logvar = torch.tensor([[1.0, -0.5]]), torch.tensor([[0.0, math.log(4.0)]])
    parts = cvae_loss(logits, x, mean, logvar, beta=1.0)
    sig = torch.sigmoid(torch.tensor([0.0, 2.0, -1.0]))
    recon = -(math.log(1 - sig[0]) + math.log(sig[1]) + 0.5 * math.log(sig[2]) + 0.5 * math.log(1 - sig[2]))
    kl = 0.5 * ((1 + 1 - 1 - 0) + (4 + 0.25 - 1 - math.log(4.0)))
    assert parts["recon"].item() == pytest.approx(recon, rel=1e-6)
    assert parts["kl"].item() == pytest.approx(kl, rel=1e-6)
    assert parts["loss"].item() == pytest.approx(recon + kl, rel=1e-6)
    assert cvae_loss(logits, x, mean, logvar, beta=0.5)["loss"].item() == pytest.approx(recon + 0.5 * kl, rel=1e-6)


def test_loss_stable_for_extreme_logits():
    logits = torch.tensor([-200.0, 200.0, 50.0]).view(1, 1, 1, 3)
    x = torch.tensor([0.0, 1.0, 0.0]).view(1, 1, 1, 3)
    parts = cvae_loss(logits, x, torch.zeros(1, 2), torch.zeros(1, 2))
    assert torch.isfinite(parts["loss"]).all()
    assert parts["recon"].item() == pytest.approx(50.0, rel=1e-6)


def test_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mean, logvar = torch.tensor([[0.7, -1.2, 0.1]]), torch.tensor([[-0.5, 0.8, -2.0]])
    kl = cvae_loss(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), mean, logvar)["kl"].item()
    q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    z = q.sample((400_000,))
    mc = (q.log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)).sum(-1).mean().item()
    assert kl == pytest.approx(mc, abs=0.02)


def test_reparameterize_uses_gaussian_noise():
    torch.manual_seed(0)
    z = MLPCVAE.reparameterize(torch.zeros(200_000, 1), torch.zeros(200_000, 1))
    assert z.mean().abs() < 0.01 and (z.std() - 1).abs() < 0.01 and (z < 0).any()


def test_importance_weighted_likelihood_is_exact_when_posterior_is_the_prior():
    # With q(z|x,y) = p(z) and a decoder that ignores z, every importance weight equals
    # p(x|y) exactly, so the estimate must match the closed form for any K.
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="mlp", hidden=(16,)))
    last = model.decoder_layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.linspace(-2, 2, 784))
        for head in (model.to_mean, model.to_logvar):
            head.weight.zero_()
            head.bias.zero_()
    x = torch.rand(3, 1, 28, 28)
    log_px = inference.log_likelihoods(model, x, k=7)
    expected = -F.binary_cross_entropy_with_logits(last.bias.view(1, 784).expand(3, 784), x.flatten(1), reduction="none").sum(1)
    assert torch.allclose(log_px, expected.unsqueeze(1).expand(3, 10), atol=1e-3)


def test_classify_is_batched_consistently():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="conv"))
    x = torch.rand(4, 1, 28, 28)
    probs, log_px, not_digit = inference.classify(model, x, k=3, generator=torch.Generator().manual_seed(1))
    assert probs.shape == log_px.shape == (4, 10) and not_digit is None
    assert torch.allclose(probs.sum(1), torch.ones(4))
    single, _, _ = inference.classify(model, x[:1], k=3, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(single[0], probs[0], atol=1e-5)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_encode_all_equals_encoding_under_each_condition(arch):
    """The shared-work encoder pass gives what encoding each image under each label gives."""
    torch.manual_seed(0)
    for background in (False, True):
        model = build_model(ModelConfig(arch=arch, latent_dim=3, hidden=(32, 16), background=background)).eval()
        x = torch.rand(5, 1, 28, 28)
        c = model.config.num_conditions
        mean, logvar = model.encode_all(x)
        assert mean.shape == (5, c, 3)
        m, lv = model.encode(x.repeat_interleave(c, 0), torch.arange(c).repeat(5))
        torch.testing.assert_close(mean.reshape(-1, 3), m, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(logvar.reshape(-1, 3), lv, atol=1e-5, rtol=1e-5)


def test_background_condition_gives_a_calibrated_not_a_digit_probability():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="mlp", latent_dim=2, hidden=(16,), background=True))
    x = torch.rand(3, 1, 28, 28)
    cal = Calibration(temperature=3.0)
    probs, scores, not_digit = inference.classify(model, x, k=2, generator=torch.Generator().manual_seed(0), calibration=cal)
    assert probs.shape == (3, 10) and scores.shape == (3, 11) and not_digit.shape == (3,)
    torch.testing.assert_close(probs.sum(1) + not_digit, torch.ones(3))
    torch.testing.assert_close(torch.cat([probs, not_digit[:, None]], 1), torch.softmax(scores / 3.0, 1))
    reading = inference.read(model, x, k=2, generator=torch.Generator().manual_seed(0), calibration=cal)
    torch.testing.assert_close(reading.not_digit, not_digit) and torch.testing.assert_close(reading.probs, probs)
    assert reading.restyled.shape == (3, 10, 28, 28)


def test_the_cnn_reference_builds_and_scores():
    model = build_model(ModelConfig(arch="cnn", hidden=(32,), background=True))
    assert isinstance(model, DigitCNN)
    probs, logits, not_digit = inference.classify(model, torch.rand(4, 1, 28, 28))
    assert logits.shape == (4, 11) and probs.shape == (4, 10) and not_digit.shape == (4,)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_inference_helpers(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, latent_dim=3, hidden=(32,)))
    x = torch.rand(2, 1, 28, 28)
    assert inference.reconstruct(model, x, torch.tensor([1, 2])).shape == (2, 28, 28)
    grid = inference.latent_grid(model, 4, 5)
    assert grid.shape == (5, 5, 28, 28) and grid.min() >= 0 and grid.max() <= 1
    # row 0 is high z[1]; column 0 is low z[0]
    corner = inference.decode(model, torch.tensor([[-3.0, 3.0, 0.0]]), torch.tensor([4]))
    assert torch.allclose(grid[0, 0], corner[0], atol=1e-6)
    assert inference.restyle(model, x[:1], 3).shape == (10, 28, 28)
    strip = inference.interpolate(model, torch.zeros(3), torch.ones(3), 3, 8, 6)
    assert strip.shape == (6, 28, 28)
    assert torch.allclose(strip[0], inference.decode(model, torch.zeros(1, 3), torch.tensor([3]))[0], atol=1e-6)
    assert torch.allclose(strip[-1], inference.decode(model, torch.ones(1, 3), torch.tensor([8]))[0], atol=1e-6)


def test_conv_inference_runs_channels_last_and_matches_the_default_layout():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="conv", latent_dim=2)).eval()
    reference = copy.deepcopy(model)  # stays NCHW: called directly, never through inference
    x, y, z = torch.rand(6, 1, 28, 28), torch.arange(6), torch.randn(6, 2)
    recon = inference.reconstruct(model, x, y)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
    with torch.no_grad():
        mean, _ = reference.encode(x, y)
        expected = torch.sigmoid(reference.decode_logits(mean, y))[:, 0]
        assert torch.allclose(recon, expected, atol=1e-5)
        assert torch.allclose(inference.decode(model, z, y), torch.sigmoid(reference.decode_logits(z, y))[:, 0], atol=1e-5)
    grid = inference.latent_grid(model, 3, 4)
    assert grid.is_contiguous() and grid.shape == (4, 4, 28, 28)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_read_gives_what_the_separate_helpers_give(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, latent_dim=3, hidden=(32,)))
    x = torch.rand(3, 1, 28, 28)
    reading = inference.read(model, x, k=4, generator=torch.Generator().manual_seed(5))
    probs, log_px, _ = inference.classify(model, x, k=4, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(reading.probs, probs, atol=1e-6) and torch.allclose(reading.log_px, log_px, atol=1e-4)
    assert torch.equal(reading.labels, probs.argmax(1))
    mean, std = inference.encode(model, x, reading.labels)
    assert torch.allclose(reading.mean, mean, atol=1e-5) and torch.allclose(reading.std, std, atol=1e-5)
    assert reading.recon.shape == (3, 28, 28) and reading.restyled.shape == (3, 10, 28, 28)
    assert torch.allclose(reading.recon, inference.reconstruct(model, x, reading.labels), atol=1e-5)
    for i in range(3):
        restyled = inference.restyle(model, x[i : i + 1], int(reading.labels[i]))
        assert torch.allclose(reading.restyled[i], restyled, atol=1e-5)


def test_a_model_used_for_inference_can_still_be_trained():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="conv", latent_dim=2))
    inference.classify(model, torch.rand(2, 1, 28, 28), k=2)  # converts the weights to channels-last
    assert not any(p.is_inference() for p in model.parameters())
    model.train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.rand(4, 1, 28, 28), torch.arange(4)
    logits, mean, logvar = model(x, y)
    cvae_loss(logits, x, mean, logvar)["loss"].mean().backward()
    optimiser.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_principal_plane_passes_2d_through_and_flattens_16d():
    z = torch.randn(500, 16) * torch.linspace(3, 0.1, 16)  # most spread along the first axes
    plane = inference.principal_plane(z)
    assert plane.shape == (500, 2)
    assert plane.var(0).sum() >= 0.999 * z.var(0).topk(2).values.sum()  # no 2 axes hold more variance
    assert torch.equal(inference.principal_plane(z[:, :2]), z[:, :2])

"""The conv decoder's inference path (each upsample + conv as one phase-split conv) gives the
training path's output, for the paper's kernel and a wider one, and follows the weights as they change."""

from __future__ import annotations

import pytest
import torch

from cvae_core.config import ModelConfig
from cvae_core.models import build_model, to_channels_last


def reference(model, z, y):
    """The decoder as trained: nearest upsampling then convolution, with autograd on."""
    with torch.enable_grad():
        return model.decode_logits(z, y).detach()


@pytest.mark.parametrize(("kernel", "channels", "dense"), [(3, (16, 8), 0), (5, (8, 8), 0), (3, (8, 16), 32), (7, (4, 4), 0)])
def test_inference_decoder_matches_the_trained_one(kernel, channels, dense):
    torch.manual_seed(0)
    model = to_channels_last(build_model(ModelConfig(arch="conv", latent_dim=3, channels=channels, kernel=kernel,
                                                     dense=dense, background=True))).eval()
    z, y = torch.randn(6, 3), torch.arange(6) % 11
    with torch.inference_mode():
        fast = model.decode_logits(z, y)
    assert fast.shape == (6, 1, 28, 28)
    assert torch.allclose(fast, reference(model, z, y), atol=1e-5)


def test_inference_decoder_follows_trained_weights():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="conv", latent_dim=2)).eval()
    z, y = torch.randn(4, 2), torch.arange(4)
    with torch.no_grad():
        before = model.decode_logits(z, y)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    model.decode_logits(z, y).sum().backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        after = model.decode_logits(z, y)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, reference(model, z, y), atol=1e-5)

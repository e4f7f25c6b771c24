"""The product of experts of two calibrated recognisers (``cvae_core.ensemble``)."""

from __future__ import annotations

import pytest
import torch

from cvae_core.calibration import Calibration
from cvae_core.ensemble import product_of_experts

BG = Calibration(temperature=2.0, background=True)


def test_the_pair_is_a_distribution_over_digits_and_not_a_digit():
    raw = torch.randn(5, 11) * 30
    probs, not_digit = product_of_experts([(BG, raw), (BG, torch.randn(5, 11) * 30)], classes=10)
    assert probs.shape == (5, 10) and not_digit.shape == (5,)
    assert torch.allclose(probs.sum(1) + not_digit, torch.ones(5), atol=1e-5)


def test_one_member_alone_is_its_own_posterior():
    raw = torch.randn(4, 11) * 10
    probs, not_digit = product_of_experts([(BG, raw)], classes=10)
    alone, alone_nd = BG.posterior(raw, classes=10)
    assert torch.allclose(probs, alone, atol=1e-6) and torch.allclose(not_digit, alone_nd, atol=1e-6)


def test_a_sure_member_outweighs_an_unsure_one_and_agreement_sharpens():
    sure = torch.full((1, 11), -100.0)
    sure[0, 3] = 0.0  # all but certain it is a 3
    unsure = torch.zeros(1, 11)
    unsure[0, 5] = 1.0  # leans a little to 5
    probs, _ = product_of_experts([(BG, sure), (BG, unsure)], classes=10)
    assert probs.argmax(1).item() == 3
    lean = torch.zeros(1, 11)
    lean[0, 7] = 2.0
    alone = BG.posterior(lean, classes=10)[0][0, 7]
    together = product_of_experts([(BG, lean), (BG, lean)], classes=10)[0][0, 7]
    assert together > alone


def test_members_must_share_their_conditions():
    with pytest.raises(ValueError, match="share their conditions"):
        product_of_experts([(BG, torch.zeros(2, 11)), (Calibration(), torch.zeros(2, 10))], classes=10)
    with pytest.raises(ValueError, match="at least one"):
        product_of_experts([], classes=10)

"""Letters among the training non-digits (``train --letters``) never come from what the suite
measures with: the evaluation's fonts and pen style stay held out, and digit-like letters are never
taught as "not a digit"."""

from __future__ import annotations

import pytest
import torch
from PIL import ImageDraw, ImageFont

from cvae_core import nondigits, train
from cvae_core.config import ModelConfig, TrainConfig


@pytest.fixture
def spy(monkeypatch):
    """Records every font file opened and every text drawn."""
    seen: dict[str, list[str]] = {"fonts": [], "text": []}
    real_font, real_text = ImageFont.truetype, ImageDraw.ImageDraw.text

    def font(path, *args, **kwargs):
        seen["fonts"].append(str(path).rsplit("/", 1)[-1])
        return real_font(path, *args, **kwargs)

    def text(self, xy, content, *args, **kwargs):
        seen["text"].append(content)
        return real_text(self, xy, content, *args, **kwargs)

    monkeypatch.setattr(ImageFont, "truetype", font)
    monkeypatch.setattr(ImageDraw.ImageDraw, "text", text)
    return seen


def test_the_training_fonts_and_the_evaluation_fonts_are_apart():
    assert not set(nondigits.TRAIN_FONTS) & set(nondigits.FONTS)
    assert not set(nondigits.TRAIN_STROKE_LETTERS) & set(nondigits.STROKE_LETTERS)
    assert not set(nondigits.TRAIN_STROKE_LETTERS) & set(nondigits.DIGIT_LIKE)


def test_training_letters_use_training_fonts_only_and_no_digit_like_letter(spy):
    images = nondigits.training_letters(120, torch.Generator().manual_seed(0))
    assert images.shape == (120, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    assert spy["fonts"] and set(spy["fonts"]) <= set(nondigits.TRAIN_FONTS)
    assert spy["text"] and not set("".join(spy["text"])) & set(nondigits.DIGIT_LIKE)


def test_the_evaluation_letters_use_the_held_out_fonts(spy):
    nondigits.typeset_letters("AK", 2, torch.Generator().manual_seed(0))
    assert spy["fonts"] and set(spy["fonts"]) <= set(nondigits.FONTS)


def test_a_letters_run_keeps_the_held_out_fonts_out_of_training(spy, monkeypatch, mnist, tmp_path):
    monkeypatch.setattr(train, "NONDIGIT_POOL", 200)
    pools = []
    real_pool = nondigits.training_pool

    def pool(*args, **kwargs):
        pools.append(kwargs.get("letters"))
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(nondigits, "training_pool", pool)
    train.fit(ModelConfig(arch="mlp", hidden=(32,), background=True),
              TrainConfig(epochs=1, subset=300, val_size=300, eval_size=300, letters=True), mnist, tmp_path / "m",
              command="pytest", device=torch.device("cpu"))
    assert pools == [True]
    assert spy["fonts"] and not set(spy["fonts"]) & set(nondigits.FONTS)

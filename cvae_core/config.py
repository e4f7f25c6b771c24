"""Configuration dataclasses for the models and for training.

A ``ModelConfig`` is all that is needed to rebuild a model: checkpoints store it as JSON
beside the weights, and ``cvae_core.models.build_model`` turns it back into a module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

IMAGE_SIZE = 28  # MNIST images are 28x28, one channel
NUM_CLASSES = 10


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one CVAE.

    ``hidden`` is used by the MLP (encoder widths, mirrored by the decoder);
    ``channels``, ``kernel`` and ``dense`` by the convolutional model: the two conv layers' widths,
    their kernel size, and an optional fully connected layer between the conv stack and the latent
    heads (mirrored in the decoder). The paper's model is (16, 8), 3, no dense layer; the
    recogniser with capacity follows DeepBayes' GFZ (64 channels, 5x5 kernels, 500 units).
    """

    arch: str = "conv"
    latent_dim: int = 2
    num_classes: int = NUM_CLASSES
    image_size: int = IMAGE_SIZE
    hidden: tuple[int, ...] = (512, 512)
    channels: tuple[int, int] = (16, 8)
    kernel: int = 3  # conv kernel size (odd, so "same" padding keeps 28 -> 14 -> 7)
    dense: int = 0  # conv only: width of a dense layer after the conv stack (0: the paper's, none)
    background: bool = False  # one extra condition, "not a digit", trained on generated non-digits

    def __post_init__(self) -> None:
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be at least 1, got {self.latent_dim}")
        if self.image_size % 4:
            raise ValueError("image_size must be divisible by 4 (two 2x poolings)")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be a positive odd number, got {self.kernel}")
        if self.dense < 0:
            raise ValueError(f"dense must be 0 (none) or a width, got {self.dense}")
        # JSON round trips turn tuples into lists; keep the dataclass hashable and comparable.
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    @property
    def num_conditions(self) -> int:
        """Labels the model is conditioned on: the digits, then "not a digit" if ``background``."""
        return self.num_classes + int(self.background)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)


@dataclass
class TrainConfig:
    """Optimisation settings for ``cvae_core.train``."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5  # end of the cosine schedule
    warmup_epochs: float = 1.0  # linear learning-rate warm-up
    kl_warmup_epochs: float = 0.0  # beta ramps 0 -> beta over this many epochs
    beta: float = 1.0
    weight_decay: float = 0.0
    val_size: int = 5000  # held out from the 60k training images for model selection
    subset: int | None = None  # train on the first N training images (smoke runs)
    seed: int = 0
    disc_weight: float = 0.0  # hybrid training: weight of the Bayes class-posterior cross-entropy
    disc_fraction: float = 0.125  # share of each batch that term is computed on (it costs 10 passes)
    disc_temperature: float = 1.0  # the class posterior in that term is softmax(-negELBO / temperature)
    augment: bool = False  # random distortions of every batch (cvae_core.augment)
    denoise: bool = False  # reconstruct the clean image from the distorted one (Im et al., 2017)
    background_fraction: float = 0.25  # non-digits per digit in a batch, when the model has a background
    letters: bool = False  # the non-digits include letters (training fonts and pen styles only)
    eval_size: int | None = None  # test images evaluated after each epoch (None: all 10,000)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

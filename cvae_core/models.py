"""The two conditional VAEs of the paper, sharing one base class and one loss.

Both models see the class label as a one-hot vector in the encoder and in the decoder:

* ``ConvCVAE`` is the paper's convolutional model. The label is concatenated to the flattened
  conv features right before the mean / log-variance heads, and to ``z`` right before the
  decoder's first Dense layer. Joining it after the convolutions (rather than as ten extra
  constant input planes) keeps the conv stack exactly the paper's and costs ten weights per head.
* ``MLPCVAE`` is the multilayer model: ``(pixels + one-hot) -> hidden -> z`` and
  ``(z + one-hot) -> hidden (mirrored) -> pixels``.

With ``ModelConfig.background`` the one-hot has one more entry, "not a digit": the same CVAE then
also models generated non-digits (``cvae_core.nondigits``), and Bayes' rule over the eleven
conditions says how likely an input is to be none of the digits -- a likelihood ratio against a
background model that lives in the same network.

``DigitCNN`` is not a CVAE: it is the small discriminative reference the robustness suite
compares the CVAE recognisers with (``CLASSIFIERS``); it never counts toward the CVAE's results.

Decoders return *logits*; ``torch.sigmoid(logits)`` is the image. The loss is computed from the
logits with ``binary_cross_entropy_with_logits``, which is the numerically stable form of the
paper's "sigmoid output + binary cross-entropy".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvae_core.config import ModelConfig


class CVAE(nn.Module):
    """Everything the two CVAEs share: conditioning, reparameterisation, forward, sampling.

    Subclasses set ``self.feature_dim``, call ``_build_heads`` and implement ``features``
    (image -> flat encoder features) and ``decode_logits``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.feature_dim: int = 0  # set by subclasses before calling _build_heads

    def _build_heads(self) -> None:
        c = self.config
        self.to_mean = nn.Linear(self.feature_dim + c.num_conditions, c.latent_dim)
        self.to_logvar = nn.Linear(self.feature_dim + c.num_conditions, c.latent_dim)

    def one_hot(self, y: Tensor) -> Tensor:
        """Labels (B,) -> one-hot (B, conditions). A float (B, classes) or (B, conditions) tensor
        passes through as label weights, which lets the decoder morph between two digits."""
        conditions = self.config.num_conditions
        if y.is_floating_point() and y.dim() == 2:
            return F.pad(y, (0, conditions - y.shape[1])).to(self.to_mean.weight.dtype)
        return F.one_hot(y.long(), conditions).to(self.to_mean.weight.dtype)

    def features(self, x: Tensor, onehot: Tensor) -> Tensor:
        """Images (B, 1, H, W) in [0, 1] and one-hot labels (B, classes) -> (B, feature_dim)."""
        raise NotImplementedError

    def decode_logits(self, z: Tensor, y: Tensor) -> Tensor:
        """Latent codes (B, latent_dim) and labels (B,) -> pixel logits (B, 1, H, W)."""
        raise NotImplementedError

    def encode(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x, y), each (B, latent_dim)."""
        onehot = self.one_hot(y)
        h = torch.cat([self.features(x, onehot), onehot], dim=1)  # (B, feature_dim + conditions)
        return self.to_mean(h), self.to_logvar(h)

    def encode_all(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z | x, y) under every condition at once: mean and log-variance, each (B, C, latent_dim).

        The same as ``encode`` on each image repeated under every label; subclasses share the
        work that does not depend on the label (the conv stack, the MLP's first layer on the pixels)."""
        b, conditions = len(x), self.config.num_conditions
        ys = torch.arange(conditions, device=x.device).repeat(b)
        mean, logvar = self.encode(x.repeat_interleave(conditions, 0), ys)
        return mean.view(b, conditions, -1), logvar.view(b, conditions, -1)

    def _heads_all(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Label-free features (B, F) -> mean and log-variance under every condition (B, C, D)."""
        b, conditions = len(features), self.config.num_conditions
        eye = torch.eye(conditions, device=features.device, dtype=features.dtype)
        h = torch.cat([features.unsqueeze(1).expand(b, conditions, -1), eye.expand(b, -1, -1)], 2)  # (B, C, F + C)
        return self.to_mean(h), self.to_logvar(h)

    @staticmethod
    def reparameterize(mean: Tensor, logvar: Tensor) -> Tensor:
        """z = mean + sigma * eps with eps ~ N(0, I) (Kingma & Welling, 2014)."""
        return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Returns (pixel logits, mean, logvar) for one posterior sample per image."""
        mean, logvar = self.encode(x, y)
        z = self.reparameterize(mean, logvar)
        return self.decode_logits(z, y), mean, logvar

    def sample(self, y: Tensor, z: Tensor | None = None) -> Tensor:
        """Images (B, 1, H, W) in [0, 1] for labels ``y``; ``z`` drawn from the prior if omitted."""
        if z is None:
            z = torch.randn(y.shape[0], self.config.latent_dim, device=y.device)
        return torch.sigmoid(self.decode_logits(z, y))


class ConvCVAE(CVAE):
    """The paper's convolutional CVAE (Conv 16 -> pool -> Conv 8 -> pool; mirrored decoder).

    With ``config.dense`` a fully connected layer sits between the conv stack and the latent heads,
    and mirrored between ``z`` and the decoder's convolutions (DeepBayes' GFZ recogniser)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        c1, c2 = config.channels
        k, pad = config.kernel, config.kernel // 2
        side = config.image_size // 4  # two 2x poolings: 28 -> 14 -> 7
        self.bottleneck = (c2, side, side)
        conv_features = c2 * side * side  # 8 * 7 * 7 = 392 with the paper's sizes
        self.feature_dim = config.dense or conv_features
        body: list[nn.Module] = [
            nn.Conv2d(1, c1, k, padding=pad), nn.ReLU(), nn.MaxPool2d(2),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, k, padding=pad), nn.ReLU(), nn.MaxPool2d(2),  # (B, c2, 7, 7)
            nn.Flatten(),  # (B, c2 * 7 * 7)
        ]
        if config.dense:
            body += [nn.Linear(conv_features, config.dense), nn.ReLU()]  # (B, dense)
        self.encoder_body = nn.Sequential(*body)
        self._build_heads()
        z_in = config.latent_dim + config.num_conditions
        if config.dense:
            self.decoder_input = nn.Sequential(
                nn.Linear(z_in, config.dense), nn.ReLU(), nn.Linear(config.dense, conv_features))
        else:
            self.decoder_input = nn.Linear(z_in, conv_features)
        self.decoder_body = nn.Sequential(
            nn.Conv2d(c2, c2, k, padding=pad), nn.ReLU(),  # (B, c2, 7, 7)
            nn.Upsample(scale_factor=2),  # (B, c2, 14, 14)
            nn.Conv2d(c2, c1, k, padding=pad), nn.ReLU(),  # (B, c1, 14, 14)
            nn.Upsample(scale_factor=2),  # (B, c1, 28, 28)
            nn.Conv2d(c1, 1, k, padding=pad),  # (B, 1, 28, 28) logits
        )

    def features(self, x: Tensor, onehot: Tensor) -> Tensor:
        return self.encoder_body(x)  # the label joins after the convolutions, in encode()

    def encode_all(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._heads_all(self.encoder_body(x))  # one conv pass per image, not per label

    def decode_logits(self, z: Tensor, y: Tensor) -> Tensor:
        h = F.relu(self.decoder_input(torch.cat([z, self.one_hot(y)], dim=1)))
        h = h.view(-1, *self.bottleneck)
        if self.training or torch.is_grad_enabled():
            return self.decoder_body(h)
        return self._decode_without_upsampling(h)

    def _decode_without_upsampling(self, h: Tensor) -> Tensor:
        """The decoder body for inference, each "nearest 2x upsample, then conv" done as one conv on the
        small map whose four output phases are pixel-shuffled into place (``upsampled_conv_weights``):
        the same result to float rounding, without building and convolving the 4x larger upsampled map
        (about a quarter less time for a recogniser-sized decoder on the CPU)."""
        first, up1, up2 = self.decoder_body[0], self.decoder_body[3], self.decoder_body[6]
        key = tuple((c.weight.data_ptr(), c.weight._version) for c in (up1, up2))
        if getattr(self, "_phase_cache", (None,))[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                phases = [upsampled_conv_weights(c.weight, c.bias) for c in (up1, up2)]
            self._phase_cache = (key, phases)
        (w1, b1, pad1), (w2, b2, pad2) = self._phase_cache[1]
        h = F.relu(first(h))  # (B, c2, 7, 7)
        h = F.relu(F.pixel_shuffle(F.conv2d(h, w1, b1, padding=pad1), 2))  # (B, c1, 14, 14)
        return F.pixel_shuffle(F.conv2d(h, w2, b2, padding=pad2), 2)  # (B, 1, 28, 28) logits


def upsampled_conv_weights(weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor, int]:
    """A k x k "same" conv applied after a nearest 2x upsample, as one conv on the map before it:
    (weights (4 * O, I, q, q), bias (4 * O,), padding) whose output channel o * 4 + 2a + b is the
    upsampled conv's output o at row phase a and column phase b, for ``F.pixel_shuffle(..., 2)``.

    Output pixel (2i + a, 2j + b) reads upsampled pixels (2i + a + d, ...) for offsets d in [-p, p],
    p = k // 2, which are small-map pixels i + floor((a + d) / 2): each phase sums the taps that land
    on the same small-map pixel."""
    k = weight.shape[-1]
    p = k // 2
    r = (p + 1) // 2  # reach on the small map
    combine = torch.zeros(2, 2 * r + 1, k, dtype=weight.dtype, device=weight.device)  # [phase, small tap, tap]
    for a in range(2):
        for d in range(-p, p + 1):
            combine[a, (a + d) // 2 + r, d + p] = 1
    phased = torch.einsum("ayk,bxl,oikl->aboiyx", combine, combine, weight)  # (2, 2, O, I, q, q)
    out, inp = weight.shape[:2]
    w = phased.permute(2, 0, 1, 3, 4, 5).reshape(4 * out, inp, 2 * r + 1, 2 * r + 1)
    return w.contiguous(memory_format=torch.channels_last), bias.repeat_interleave(4), r


class MLPCVAE(CVAE):
    """The multilayer CVAE: fully connected encoder and mirrored decoder."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        pixels = config.image_size * config.image_size
        widths = list(config.hidden)
        enc: list[nn.Module] = []
        in_dim = pixels + config.num_conditions  # the label joins the pixels at the input
        for w in widths:
            enc += [nn.Linear(in_dim, w), nn.ReLU()]
            in_dim = w
        self.encoder_layers = nn.Sequential(*enc)
        self.feature_dim = widths[-1] if widths else pixels + config.num_conditions
        # The heads take features + one-hot as in the conv model: one ``encode`` serves both.
        self._build_heads()
        dec: list[nn.Module] = []
        in_dim = config.latent_dim + config.num_conditions
        for w in reversed(widths):
            dec += [nn.Linear(in_dim, w), nn.ReLU()]
            in_dim = w
        dec.append(nn.Linear(in_dim, pixels))
        self.decoder_layers = nn.Sequential(*dec)

    def features(self, x: Tensor, onehot: Tensor) -> Tensor:
        return self.encoder_layers(torch.cat([x.flatten(1), onehot], dim=1))  # (B, hidden[-1])

    def encode_all(self, x: Tensor) -> tuple[Tensor, Tensor]:
        first = self.encoder_layers[0] if self.config.hidden else None
        if not isinstance(first, nn.Linear):
            return super().encode_all(x)
        # The first layer is W [x; onehot] + b = W_x x + (W_y onehot + b): the pixel part once per image.
        pixels = x.flatten(1).shape[1]
        h = F.linear(x.flatten(1), first.weight[:, :pixels]).unsqueeze(1)  # (B, 1, hidden[0])
        h = h + (first.weight[:, pixels:].T + first.bias).unsqueeze(0)  # (B, C, hidden[0])
        h = self.encoder_layers[1:](h)  # (B, C, hidden[-1])
        conditions = self.config.num_conditions
        eye = torch.eye(conditions, device=x.device, dtype=h.dtype).expand(len(x), -1, -1)
        hc = torch.cat([h, eye], 2)
        return self.to_mean(hc), self.to_logvar(hc)

    def decode_logits(self, z: Tensor, y: Tensor) -> Tensor:
        s = self.config.image_size
        logits = self.decoder_layers(torch.cat([z, self.one_hot(y)], dim=1))  # (B, s * s)
        return logits.view(-1, 1, s, s)


class DigitCNN(nn.Module):
    """The discriminative reference: Conv c1 -> pool -> Conv c2 -> pool -> Dense hidden -> logits,
    one per condition (the ten digits, and "not a digit" when ``config.background``)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        side = config.image_size // 4  # two 2x poolings: 28 -> 14 -> 7
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c2, 7, 7)
            nn.Flatten(),
            nn.Linear(c2 * side * side, config.hidden[0]), nn.ReLU(),
            nn.Linear(config.hidden[0], config.num_conditions),  # (B, conditions) logits
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


MODELS: dict[str, type[CVAE]] = {"conv": ConvCVAE, "mlp": MLPCVAE}
CLASSIFIERS: dict[str, type[DigitCNN]] = {"cnn": DigitCNN}


def build_model(config: ModelConfig) -> CVAE | DigitCNN:
    """A fresh, randomly initialised model for ``config`` (a CVAE, or the CNN reference)."""
    registry = {**MODELS, **CLASSIFIERS}
    try:
        cls = registry[config.arch]
    except KeyError:
        raise ValueError(f"unknown architecture {config.arch!r}; choose one of {sorted(registry)}") from None
    return cls(config)


def cvae_loss(logits: Tensor, x: Tensor, mean: Tensor, logvar: Tensor, *, beta: float = 1.0) -> dict[str, Tensor]:
    """Negative ELBO per image, in nats, as in Kingma & Welling (2014), Appendix B.

    ``recon`` is the Bernoulli cross-entropy summed over pixels with the grey levels in [0, 1]
    as targets -- the usual convention (pytorch/examples ``vae``, Keras), not a true likelihood
    for grey pixels. ``kl`` is KL(q(z|x,y) || N(0, I)) in closed form. Each entry is (B,).
    """
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(1)
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convolution weights in NHWC layout, in place (returns ``model``). On the CPU oneDNN runs NHWC
    convolutions without the layout copies NCHW costs it: about twice as fast for training and
    up to 60 % less time for inference (``benchmarks/``); outputs agree to float rounding. A model
    without convolutions is left as it is."""
    if any(p.dim() == 4 and not p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters()):
        model.to(memory_format=torch.channels_last)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

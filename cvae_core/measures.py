"""What training and evaluation measure on one split: the negative ELBO (and its parts) of a
CVAE, the cross-entropy and accuracy of the CNN reference, and the test-set latent means that
checkpoints carry for the dashboard. Plain functions over uint8 image tensors, seeded."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cvae_core.data import batches
from cvae_core.models import CVAE, DigitCNN, cvae_loss


@torch.inference_mode()
def elbo_loss(
    model: CVAE,
    images: Tensor,
    labels: Tensor,
    *,
    beta: float = 1.0,
    batch_size: int = 1000,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Mean negative ELBO (and its parts) per image, one posterior sample each, seeded."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
    for x, y in batches(images, labels, batch_size, device=device):
        mean, logvar = model.encode(x, y)
        eps = torch.randn(mean.shape, generator=gen, device=device)
        parts = cvae_loss(model.decode_logits(mean + eps * torch.exp(0.5 * logvar), y), x, mean, logvar, beta=beta)
        for k in sums:
            sums[k] += parts[k].sum().item()
    return {k: v / max(len(labels), 1) for k, v in sums.items()}


@torch.inference_mode()
def classifier_loss(
    model: DigitCNN, images: Tensor, labels: Tensor, *, batch_size: int = 1000, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Mean cross-entropy and accuracy of the CNN reference on (images, labels)."""
    model.eval()
    loss, right = 0.0, 0
    for x, y in batches(images, labels, batch_size, device=device):
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        right += int((logits[:, : model.config.num_classes].argmax(1) == y).sum())
    n = max(len(labels), 1)
    return {"loss": loss / n, "accuracy": right / n}


def measure(model: CVAE | DigitCNN, images: Tensor, labels: Tensor, *, beta: float, device: torch.device) -> dict[str, float]:
    """What the history records for one split: the negative ELBO and its parts for a CVAE,
    cross-entropy and accuracy for the CNN reference."""
    if isinstance(model, DigitCNN):
        return classifier_loss(model, images, labels, device=device)
    return elbo_loss(model, images, labels, beta=beta, device=device)


@torch.inference_mode()
def latent_means(model: CVAE, images: Tensor, labels: Tensor, *, device: torch.device | str = "cpu") -> Tensor:
    """Posterior means (N, latent_dim) for every image under its own label."""
    model.eval()
    return torch.cat([model.encode(x, y)[0].cpu() for x, y in batches(images, labels, 1000, device=device)])

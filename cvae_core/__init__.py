"""cvae_core: conditional VAEs on MNIST -- models, data, training, inference, checkpoints.

Knows nothing of Streamlit; the app in ``app/`` is a thin face over this package.
"""

from typing import Any

from cvae_core.config import ModelConfig, TrainConfig
from cvae_core.data import MNIST, DataError, load_mnist, read_idx
from cvae_core.models import CVAE, MLPCVAE, MODELS, ConvCVAE, build_model, cvae_loss

__all__ = [
    "CVAE", "MLPCVAE", "MNIST", "MODELS", "Checkpoint", "CheckpointError", "ConvCVAE", "DataError",
    "ModelConfig", "TrainConfig", "build_model", "cvae_loss", "list_checkpoints", "load_checkpoint",
    "load_mnist", "read_idx", "save_checkpoint",
]

_CHECKPOINT_NAMES = ("Checkpoint", "CheckpointError", "list_checkpoints", "load_checkpoint", "save_checkpoint")


def __getattr__(name: str) -> Any:
    # Imported on first use, so that ``python -m cvae_core.checkpoints`` does not find the module
    # already imported by the package (runpy warns about that and runs a second copy).
    if name in _CHECKPOINT_NAMES:
        from cvae_core import checkpoints

        return getattr(checkpoints, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

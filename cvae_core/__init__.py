"""cvae_core: conditional VAEs on MNIST -- models, data, training, inference, checkpoints.

Knows nothing of Streamlit; the app in ``app/`` is a thin face over this package.
"""

from cvae_core.calibration import Calibration
from cvae_core.catalogue import ModelEntry, describe, discover
from cvae_core.checkpoints import (
    Checkpoint,
    CheckpointError,
    CheckpointMeta,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from cvae_core.config import ModelConfig, TrainConfig
from cvae_core.corruptions import CORRUPTIONS, corrupt
from cvae_core.data import MNIST, DataError, load_mnist, read_idx
from cvae_core.models import CLASSIFIERS, CVAE, MLPCVAE, MODELS, ConvCVAE, DigitCNN, build_model, cvae_loss
from cvae_core.summary import Summary, Verdict, summary, verdict

__all__ = [
    "CLASSIFIERS",
    "CORRUPTIONS",
    "CVAE",
    "MLPCVAE",
    "MNIST",
    "MODELS",
    "Calibration",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMeta",
    "ConvCVAE",
    "DataError",
    "DigitCNN",
    "ModelConfig",
    "ModelEntry",
    "Summary",
    "TrainConfig",
    "Verdict",
    "build_model",
    "corrupt",
    "cvae_loss",
    "describe",
    "discover",
    "list_checkpoints",
    "load_checkpoint",
    "load_mnist",
    "read_idx",
    "save_checkpoint",
    "summary",
    "verdict",
]

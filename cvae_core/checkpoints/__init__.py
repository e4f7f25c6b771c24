"""Self-describing checkpoints: a safetensors file of tensors beside a JSON file of metadata.

    format.py    save and load (``save_checkpoint``, ``load_checkpoint``, ``read_checked``)
    metadata.py  the JSON typed: ``CheckpointMeta`` and its parts, ``CheckpointError``
    manifest.py  the folder's SHA-256 manifest, ``MANIFEST.sha256``
    _files.py    bounded reads of regular files; atomic writes (a command may guard them: ``guarding_writes``)
    __main__.py  the command: ``python -m cvae_core.checkpoints manifest|verify [FOLDER]``

Which checkpoints a folder holds, and which model pairs with which, is ``cvae_core.catalogue``.
"""

from cvae_core.checkpoints._files import guarding_writes, sha256_bytes
from cvae_core.checkpoints.format import (
    CHECKPOINT_DIR,
    CHECKPOINT_ENV,
    FORMAT_VERSION,
    Checkpoint,
    checkpoint_dir,
    code_version,
    list_checkpoints,
    load_checkpoint,
    now_iso,
    paths_for,
    read_checked,
    read_metadata,
    save_checkpoint,
    update_metadata,
)
from cvae_core.checkpoints.manifest import MANIFEST_NAME, manifest_lists, read_manifest, write_manifest
from cvae_core.checkpoints.metadata import (
    CheckpointError,
    CheckpointMeta,
    CorruptionResult,
    Evaluation,
    FamilyResult,
    Graded,
    Losses,
    NotDigitResult,
    Provenance,
    RecognitionSettings,
    Robustness,
    Training,
)

__all__ = [
    "CHECKPOINT_DIR", "CHECKPOINT_ENV", "FORMAT_VERSION", "MANIFEST_NAME", "Checkpoint", "CheckpointError",
    "CheckpointMeta", "CorruptionResult", "Evaluation", "FamilyResult", "Graded", "Losses", "NotDigitResult",
    "Provenance", "RecognitionSettings", "Robustness", "Training", "checkpoint_dir", "code_version", "guarding_writes",
    "list_checkpoints", "load_checkpoint", "manifest_lists", "now_iso", "paths_for", "read_checked", "read_manifest",
    "read_metadata", "save_checkpoint", "sha256_bytes", "update_metadata", "write_manifest",
]

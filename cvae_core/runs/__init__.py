"""Training runs started from the app: the run format and its worker, owned by the core.

    request.py   what may be asked (``RunRequest``, bounded, with a budget) and its train command
    folder.py    a run's folder: request, status, metrics.jsonl, snapshots, log (``RunFolder``)
    recorder.py  the observer ``cvae_core.train.fit`` reports to, writing that folder
    queue.py     one server's queue: ``submit``, ``advance``, ``cancel``, ``position``
    worker.py    ``python -m cvae_core.runs.worker RUN_DIR``: train, calibrate, evaluate, publish
    trained.py   the published models, one folder each in ``$CVAE_TRAINED_DIR`` (never checkpoints/)

The app only reads run folders and calls ``queue``; a run is a process, never a thread of a page.
"""

from cvae_core.runs.folder import RunFolder, Status, all_runs, run_folder, runs_dir
from cvae_core.runs.queue import advance, cancel, position, submit
from cvae_core.runs.request import PRESETS, Preset, RunRefused, RunRequest
from cvae_core.runs.trained import TrainedModelError, delete, is_trained, models, trained_dir

__all__ = [
    "PRESETS", "Preset", "RunFolder", "RunRefused", "RunRequest", "Status", "TrainedModelError", "advance",
    "all_runs", "cancel", "delete", "is_trained", "models", "position", "run_folder", "runs_dir", "submit",
    "trained_dir",
]

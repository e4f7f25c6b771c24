"""The worker of one training run: trains, evaluates, calibrates and publishes a model for the app.

    python -m cvae_core.runs.worker RUN_DIR

The Train page never runs this itself: ``cvae_core.runs.queue`` starts it as its own process when
the run's turn comes. It reads ``RUN_DIR/request.json``, checks it again, and runs ``fit`` with the
settings its ``python -m cvae_core.train`` command parses to (same parser, same seed, one thread:
typing that command gives the same weights), writing progress to the run folder
(``cvae_core.runs.recorder``). It runs at low priority (``nice``) on one thread, so that the
sessions of the server stay responsive.

When training ends the model is calibrated on validation digits (``cvae_core.robustness.calibrate``,
as the shipped models are) and evaluated on test digits (loss, accuracy by Bayes' rule), then
published to the trained models (``cvae_core.runs.trained``). SIGTERM (Cancel) stops it cleanly
(``cvae_core.train.stopping_cleanly``); a run that fails or is cancelled leaves no model, only its
status message and its log. At the end it starts the next queued run.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

import torch

from cvae_core.checkpoints import CheckpointError, code_version, load_checkpoint, now_iso, update_metadata
from cvae_core.data import MNIST, DataError, load_mnist
from cvae_core.evaluate import evaluate_model
from cvae_core.robustness import calibrate, validation_split
from cvae_core.runs import queue
from cvae_core.runs.folder import RunFolder
from cvae_core.runs.recorder import Recorder, TrainingDiverged
from cvae_core.runs.request import RunRefused, RunRequest
from cvae_core.runs.trained import TrainedModelError, publish
from cvae_core.train import TrainingError, fit, parse_command, stopping_cleanly

NICENESS = 10  # below the server's sessions; the machine's other work is not starved either


class Stopped(Exception):
    """Training was interrupted by a signal (Cancel, or the machine shutting down)."""


def finish(checkpoint: Path, data: MNIST, request: RunRequest, run_id: str) -> None:
    """Calibrate on the first validation digits and evaluate on the first test digits, as the shipped
    models are (on fewer digits: a run here should end in seconds); recorded in the checkpoint."""
    ckpt = load_checkpoint(checkpoint)
    val_x, val_y = validation_split(data, ckpt.info.training.train_config)
    n = request.calibration_size
    cal = calibrate(ckpt.model, val_x[:n], val_y[:n], distorted=request.augment)
    update_metadata(checkpoint, {"recognition": {
        **cal.to_dict(), "command": f"the Train page (run {run_id}) on its first {n} validation digits",
        "created": now_iso(),
    }})
    images, labels = data.test_images[: request.eval_size], data.test_labels[: request.eval_size]
    results = evaluate_model(ckpt.model, images, labels, k=cal.k, sigmas=(0.0,), beta=request.beta)
    update_metadata(checkpoint, {"evaluation": {
        "model": request.arch, "latent_dim": request.latent_dim, **results, "created": now_iso(),
        "code_version": code_version(), "data_sha256": data.checksums,
    }})


def train_and_publish(run: RunFolder) -> str:
    """The whole run; returns the published model's name. Raises ``Stopped`` on a signal."""
    request = run.request().check()
    name = run.model_name
    command = parse_command(request.train_args(name))
    run.update_status(state="running", pid=os.getpid(), message="", started=run.status().started or now_iso())
    data = load_mnist(command.data_dir)
    out = run.model_dir / name
    recorder = Recorder(run, epochs=request.epochs, batch_size=request.batch_size)
    meta = fit(command.model_config, command.cfg, data, out, command=command.text, device=torch.device("cpu"),
               observer=recorder)
    if meta.get("interrupted"):
        raise Stopped
    run.update_status(state="evaluating")
    finish(out, data, request, run.id)
    publish(out, name)
    return name


def run_worker(run: RunFolder) -> None:
    """Train, then record how it ended in the status; never raises (the log has the details)."""
    try:
        with stopping_cleanly():
            try:
                name = train_and_publish(run)
            except (KeyboardInterrupt, Stopped):
                ended_early(run, "Stopped by a signal (the server shutting down?); nothing was saved.")
                return
            run.clear_model()
            run.update_status(state="done", ended=now_iso(), model=name, message=f"{name} is ready in the model picker.")
    except (RunRefused, DataError, CheckpointError, TrainingError, TrainingDiverged, TrainedModelError) as e:
        ended_early(run, f"{str(e)[:1].upper()}{str(e)[1:500]}.")
    except (Exception, SystemExit) as e:  # anything else: one line on the page, the traceback in the log
        traceback.print_exc()
        ended_early(run, f"The run failed: {type(e).__name__}: {str(e)[:300]}. Its log is below.")


def ended_early(run: RunFolder, message: str) -> None:
    """No model, and a status that says why: cancelled when Cancel was asked for (whatever stopped
    it then, e.g. no epoch finished before the signal), else failed with ``message``."""
    run.clear_model()
    if run.cancel_path.exists():
        run.update_status(state="cancelled", ended=now_iso(), message="Cancelled; nothing was saved.")
    else:
        run.update_status(state="failed", ended=now_iso(), message=message)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cvae_core.runs.worker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="the run's folder (made by the Train page, in $CVAE_RUNS_DIR)")
    p.add_argument("--lock-fd", type=int, default=None, help=argparse.SUPPRESS)  # inherited from the queue
    args = p.parse_args(argv)
    run = RunFolder(Path(args.run_dir))
    if not run.status_path.exists():
        print(f"error: {run.root} is not a run folder (no status.json)", file=sys.stderr)
        return 2
    if args.lock_fd is None:
        try:
            run.take_lock()  # held until this process ends
        except BlockingIOError:
            print(f"error: another worker is running {run.id}", file=sys.stderr)
            return 1
    os.nice(NICENESS)
    torch.set_num_threads(1)
    try:
        run_worker(run)
    finally:
        queue.advance(run.root.parent)  # the next queued run, if any
    return 0


if __name__ == "__main__":
    sys.exit(main())

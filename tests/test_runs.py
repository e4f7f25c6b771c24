"""Training runs started from the app (``cvae_core.runs``, the Train page): the core, AppTest and a real browser.

The core: a tiny run (1 epoch, 1,000 digits, 2-D) writes curve points and snapshots, publishes a
model that the catalogue lists, and typing its recorded command gives the same weights; Cancel
leaves nothing behind; a second run waits in the queue (and a second runs folder, as a replica has,
runs its own queue); a killed worker is reported as such; nothing half-written is ever listed;
hostile and over-budget requests are refused before anything runs. The page: the same tiny run
from its form to a digit read on the Draw page; a second session's run waits with its position; a
dead worker, an over-budget request and a forged run id give clear messages. The browser: the
tiny run in Chromium, its curve and latent map drawn, then a digit drawn for the new model.

Every run trains in its own worker process, in temporary run and model folders.
"""

from __future__ import annotations

import io
import json
import math
import os
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from cvae_core import catalogue, runs
from cvae_core.runs import RunRefused, RunRequest, queue, trained
from cvae_core.runs.folder import RunFolder
from cvae_core.runs.request import BUDGET_ENV
from cvae_core.train import main as train_main

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "checkpoints"
ROUTER = "from app.streamlit_app import run\nrun()\n"
TRAIN_PAGE = str(ROOT / "app" / "views" / "train.py")
TIMEOUT = 300  # seconds a run may take here (15 on a quiet machine): the suite runs beside other work
RUN_MS = 300_000  # a whole tiny run seen through the browser, start to finish, on a busy machine
TINY = RunRequest(epochs=1, train_size=1000, eval_size=200, calibration_size=200)
LONG = RunRequest(epochs=50, train_size=10000)  # never meant to finish: cancelled or killed


def wait_for(condition: Callable[[], object], what: str, timeout: float = TIMEOUT) -> object:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.3)
    return value


def stop_all(parent: Path) -> None:
    """Cancel every unfinished run of ``parent`` and wait for its worker to end."""
    for run in runs.all_runs(parent):
        if not run.status().finished:
            queue.cancel(run)
    for run in runs.all_runs(parent):
        deadline = time.monotonic() + 30
        while run.worker_alive() and time.monotonic() < deadline:
            time.sleep(0.3)
        pid = run.status().pid
        if run.worker_alive() and pid:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def folders(tmp_path, monkeypatch, data_dir) -> Iterator[tuple[Path, Path]]:
    """(runs folder, trained models folder), both temporary; the workers inherit them and MNIST."""
    runs_dir, trained_dir = tmp_path / "runs", tmp_path / "trained"
    monkeypatch.setenv("CVAE_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("CVAE_TRAINED_DIR", str(trained_dir))
    monkeypatch.setenv("CVAE_DATA_DIR", str(data_dir))
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    monkeypatch.delenv(queue.SLOTS_ENV, raising=False)
    yield runs_dir, trained_dir
    stop_all(runs_dir)


def state(run: RunFolder) -> str:
    return run.status().state


def has_points(run: RunFolder) -> bool:
    return any(m["kind"] == "batch" for m in run.metrics())


def assert_nothing_left(run: RunFolder, trained_dir: Path) -> None:
    assert not run.model_dir.exists(), "a partial checkpoint stayed in the run folder"
    assert trained.models(trained_dir) == []
    assert not run.worker_alive()


# ---------------------------------------------------------------------------------- the core


@pytest.mark.slow
def test_tiny_run_records_publishes_and_the_cli_reproduces_it(folders, tmp_path):
    runs_dir, trained_dir = folders
    run = runs.submit(TINY)
    assert run.root.parent == runs_dir and state(run) in ("starting", "running")
    wait_for(lambda: run.status().finished, "the tiny run to finish")
    status = run.status()
    assert status.state == "done", (status.message, run.log_tail())
    metrics = run.metrics()
    kinds = [m["kind"] for m in metrics]
    assert kinds[0] == "start" and kinds.count("epoch") == 1 and kinds.count("batch") >= 4
    assert all(math.isfinite(m["loss"]) for m in metrics if m["kind"] == "batch")
    assert run.snapshot_epochs() == [0, 1]
    snap = run.snapshot("epoch-0001")
    assert snap["latents"].shape == (2000, 2) and snap["recon"].shape == (10, 28, 28)
    assert snap["samples"].shape == (10, 28, 28) and run.snapshot("fixed")["labels"].tolist() == list(range(10))
    assert not run.model_dir.exists()  # moved out whole, not left beside the run
    # The model is in its own folder with its manifest, listed by the catalogue as trained here.
    (weights,) = trained.models(trained_dir)
    assert weights.parent.name == status.model and (weights.parent / "MANIFEST.sha256").exists()
    entry = catalogue.describe(weights, trained_here=True).load()
    assert entry.ok and entry.verified, entry.error
    assert entry.info.evaluation.n == TINY.eval_size and entry.info.accuracy is not None
    assert entry.info.recognition is not None and entry.info.training.command == run.command
    # The command the page shows trains the same weights.
    before = torch.get_num_threads()
    try:
        train_main([*shlex.split(run.command)[3:], "--out", str(tmp_path / "again")])
    finally:
        torch.set_num_threads(before)
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["weights_sha256"] == json.loads(weights.with_suffix(".json").read_text())["weights_sha256"]


def test_cancel_leaves_nothing_behind(folders):
    runs_dir, trained_dir = folders
    run = runs.submit(LONG)
    wait_for(lambda: has_points(run), "the first curve point")
    pid = run.status().pid
    queue.cancel(run)
    wait_for(lambda: run.status().finished, "the cancelled run to stop")
    assert state(run) == "cancelled" and "nothing was saved" in run.status().message
    wait_for(lambda: not run.worker_alive(), "the worker to exit", timeout=30)
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # exited, or a zombie of this process about to be reaped
            queue.advance(runs_dir)
            os.kill(pid, 0)
            time.sleep(0.1)
    assert_nothing_left(run, trained_dir)
    assert run.log_path.exists() and "interrupted" in run.log_tail()


def test_second_run_waits_and_each_runs_folder_has_its_own_queue(folders, tmp_path, monkeypatch):
    runs_dir, trained_dir = folders
    first, second = runs.submit(LONG), runs.submit(LONG)
    assert state(second) == "queued" and queue.position(second) == 1
    other = runs.submit(LONG, tmp_path / "replica-runs")  # another server's folder: not behind these two
    try:
        assert state(other) in ("starting", "running")
        queue.cancel(first)
        wait_for(lambda: state(second) in ("starting", "running"), "the queued run to start after a cancel")
        assert queue.position(second) is None
    finally:
        stop_all(tmp_path / "replica-runs")
    stop_all(runs_dir)
    assert [state(r) for r in (first, second)] == ["cancelled", "cancelled"]
    assert trained.models(trained_dir) == []


def test_killed_worker_is_reported_and_leaves_no_model(folders):
    runs_dir, trained_dir = folders
    run = runs.submit(LONG)
    wait_for(lambda: state(run) == "running", "the worker to start training")
    os.kill(run.status().pid, signal.SIGKILL)
    wait_for(lambda: not run.worker_alive(), "the killed worker's lock to be released", timeout=30)
    queue.advance(runs_dir)
    status = run.status()
    assert status.state == "failed" and status.message == queue.DIED
    assert_nothing_left(run, trained_dir)


def test_no_half_written_model_is_ever_listed(folders, tmp_path, monkeypatch):
    _, trained_dir = folders
    source = tmp_path / "ckpt"
    source.mkdir()
    fake = source / "mlp-2-abcdef"
    for suffix in (".safetensors", ".json"):
        fake.with_suffix(suffix).write_text("{}")
    # A publish interrupted before its rename leaves nothing, not even the staging folder.
    real_rename = os.rename

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trained.publish(fake, "mlp-2-abcdef", trained_dir)
    monkeypatch.setattr(os, "rename", real_rename)
    assert trained.models(trained_dir) == [] and list(trained_dir.iterdir()) == []
    # Staging and deleted folders are hidden; a published model appears whole, and a deletion is whole too.
    (trained_dir / ".mlp-2-abcdef.new-123456").mkdir()
    (trained_dir / "not-a-run-name").mkdir()
    trained.publish(fake, "mlp-2-abcdef", trained_dir)
    (weights,) = trained.models(trained_dir)
    assert sorted(p.name for p in weights.parent.iterdir()) == ["MANIFEST.sha256", "mlp-2-abcdef.json",
                                                                "mlp-2-abcdef.safetensors"]
    with pytest.raises(trained.TrainedModelError):
        trained.publish(fake, "mlp-2-abcdef", trained_dir)
    trained.delete("mlp-2-abcdef", trained_dir)
    assert trained.models(trained_dir) == []
    with pytest.raises(trained.TrainedModelError):
        trained.delete("../checkpoints", trained_dir)


@pytest.mark.parametrize(("changes", "field"), [
    ({"beta": math.nan}, "β"), ({"lr": math.inf}, "learning rate"), ({"epochs": 0}, "epochs"),
    ({"epochs": 10**9}, "epochs"), ({"latent_dim": 10**6}, "latent size"), ({"latent_dim": 0}, "latent size"),
    ({"batch_size": "128"}, "batch size"), ({"seed": True}, "seed"), ({"arch": "rnn"}, "architecture"),
    ({"disc_weight": -1.0}, "hybrid"), ({"train_size": 10**9}, "training images"), ({"epochs": 2.5}, "epochs"),
    ({"augment": "yes"}, "augmentation"), ({"lr": 0.0}, "learning rate"), ({"batch_size": 2048}, "batch size"),
])
def test_hostile_requests_are_refused_before_anything_runs(folders, changes, field):
    runs_dir, _ = folders
    request = RunRequest(**{**TINY.to_dict(), **changes})
    with pytest.raises(RunRefused, match=field):
        runs.submit(request)
    assert runs.all_runs(runs_dir) == []


def test_request_files_and_run_ids_are_checked(folders):
    with pytest.raises(RunRefused, match="unknown settings: command"):
        RunRequest.from_dict({"epochs": 1, "command": "rm -rf /"})
    with pytest.raises(RunRefused):
        RunRequest.from_dict(["epochs", 1])
    for forged in ("../../etc", "20261206-085956-60693a/../x", "", "x" * 500, "20261206-085956-60693A"):
        assert runs.run_folder(forged) is None


def test_over_budget_is_refused_with_the_largest_allowed(folders, monkeypatch):
    runs_dir, _ = folders
    monkeypatch.setenv(BUDGET_ENV, "50000")
    with pytest.raises(RunRefused, match=r"budget of 50,000 .* at most 5 epochs of 10,000 images"):
        runs.submit(RunRequest(epochs=10, train_size=10000))
    assert runs.all_runs(runs_dir) == []
    assert RunRequest(epochs=5, train_size=10000).check() is not None


# ---------------------------------------------------------------------------------- the page (AppTest)


@pytest.fixture
def app_folder(request) -> Path:
    """The shipped models when they are there, else the tiny ones of ``conftest.py``."""
    if (COMMITTED / "mlp-2.safetensors").exists():
        return COMMITTED
    return request.getfixturevalue("tiny_checkpoints")


def open_train_page(monkeypatch, checkpoints: Path, run_id: str | None = None) -> AppTest:
    monkeypatch.setenv("CVAE_CHECKPOINT_DIR", str(checkpoints))
    at = AppTest.from_string(ROUTER, default_timeout=TIMEOUT).run()
    if run_id:
        at.query_params["run"] = run_id
    at.switch_page(TRAIN_PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def set_tiny(at: AppTest) -> AppTest:
    at.number_input(key="train_epochs").set_value(1)
    at.segmented_control(key="train_size").set_value(1000)
    return at.run()


def picker_labels(at: AppTest) -> list[str]:
    return list(at.sidebar.selectbox[0].options)  # as shown: "name · group"


def png(image) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_page_tiny_run_from_the_form_to_a_digit_read_on_the_draw_page(folders, monkeypatch, app_folder, mnist):
    at = set_tiny(open_train_page(monkeypatch, app_folder))
    assert "--epochs 1" in at.code[0].value and "--subset 1000" in at.code[0].value
    at.button(key="train_start").click().run()
    run_id = at.query_params["run"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    run = runs.run_folder(run_id)
    assert run is not None and not at.exception
    saw_curve = False
    deadline = time.monotonic() + TIMEOUT
    while not at.success:
        assert time.monotonic() < deadline, "the run did not finish in time"
        assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
        saw_curve |= len(at.get("plotly_chart")) >= 1 and has_points(run)
        time.sleep(1)
        at.run()
    assert saw_curve or has_points(run)
    name = run.status().model
    assert name and name.replace("-", "\\-") in at.success[0].value
    assert len(at.get("plotly_chart")) == 2  # the loss curves and the latent map
    assert any(name in label and "Trained here" in label for label in picker_labels(at))
    at.button(key="train_use_draw").click().run()
    assert [t.value for t in at.title] == ["Draw & recognise"]
    at.switch_page(str(ROOT / "app" / "views" / "draw.py")).run()  # AppTest reruns the page it was told of last
    assert at.sidebar.selectbox[0].value == name
    at.button_group(key="draw_mode").set_value("Upload").run()
    at.file_uploader(key="draw_upload").set_value(("seven.png", png(mnist.test_images[0].numpy()), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    (metric,) = at.metric
    assert metric.label == "Recognised digit" and any(c.isdigit() for c in metric.value)  # barely trained: "7 or 8?"
    assert any("Trained here" in m.value for m in at.sidebar.markdown)


def fake_active_run(parent: Path, request: RunRequest, *, alive: bool) -> tuple[RunFolder, int | None]:
    """A run that the queue believes is training: its worker lock held by this test (``alive``) or free."""
    run = RunFolder.create(parent, request)
    run.update_status(state="running", pid=os.getpid() if alive else 999999)
    return run, run.take_lock() if alive else None


def test_page_second_session_waits_in_the_queue(folders, monkeypatch, app_folder):
    runs_dir, _ = folders
    busy, lock = fake_active_run(runs_dir, TINY, alive=True)
    try:
        at = set_tiny(open_train_page(monkeypatch, app_folder))
        at.button(key="train_start").click().run()
        assert not at.exception and not at.error
        info = " ".join(i.value for i in at.info)
        assert "Waiting in this server's queue: number 1" in info and "next to start" in info
        waiting = runs.run_folder(at.query_params["run"][0] if isinstance(at.query_params["run"], list)
                                  else at.query_params["run"])
        assert state(waiting) == "queued"
        at.button(key=f"train_cancel_{waiting.id}").click().run()
        assert state(waiting) == "cancelled"
        at.run()
        assert any("Cancelled before it started" in w.value for w in at.warning)
    finally:
        os.close(lock)
        busy.update_status(state="cancelled")


def test_page_reports_a_dead_worker_with_its_log(folders, monkeypatch, app_folder):
    runs_dir, _ = folders
    dead, _ = fake_active_run(runs_dir, TINY, alive=False)
    dead.log_path.write_text("epoch 1 ...\nKilled\n")
    at = open_train_page(monkeypatch, app_folder, dead.id)
    at.run()  # the live view notices the worker is gone and shows the finished run
    assert [e.value for e in at.error] == [queue.DIED]
    assert any("Killed" in c.value for c in at.code)
    assert not at.exception


def test_page_refuses_over_budget_and_forged_run_ids(folders, monkeypatch, app_folder):
    runs_dir, _ = folders
    monkeypatch.setenv(BUDGET_ENV, "5000")
    at = open_train_page(monkeypatch, app_folder, "../../etc/passwd")
    assert any("There is no run" in w.value for w in at.warning)
    (error,) = at.error
    assert "over this server's budget of 5,000" in error.value
    assert "ask for at most 5,000 training images for one epoch" in error.value
    assert at.button(key="train_start").disabled
    assert runs.all_runs(runs_dir) == []


# ---------------------------------------------------------------------------------- the browser


@pytest.mark.browser
@pytest.mark.slow
def test_browser_tiny_run_curve_map_picker_and_drawn_digit(folders, app_folder, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from tests.browser import (
        CANVAS,
        CHROMIUM,
        CHROMIUM_ARGS,
        ERRORS,
        MODEL_PICKER,
        ONE,
        TIMEOUT_MS,
        VIEWPORT,
        open_page,
        recognised,
        running_app,
        stroke,
    )

    with running_app(app_folder, tmp_path) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(TIMEOUT_MS)
        open_page(page, url, "train", "Train a model")
        epochs = page.get_by_label("Epochs")
        epochs.fill("1")
        epochs.press("Enter")
        page.get_by_role("radio", name="1k", exact=True).click()  # a segmented control's options are radios
        command = page.locator('[data-testid="stCode"]').first
        expect(command).to_contain_text("--epochs 1 --")
        expect(command).to_contain_text("--subset 1000 ")
        page.get_by_role("button", name="Start training").click()
        page.wait_for_url("**/train?run=*")
        run_id = page.url.split("run=")[1]
        # The loss curve gets points, then the latent map appears (two charts, the map with points).
        page.wait_for_selector('[data-testid="stPlotlyChart"] .scatterlayer .trace path.js-line', timeout=RUN_MS)
        page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].length >= 2
            && document.querySelectorAll('[data-testid="stPlotlyChart"] .scatterlayer path.point').length >= 100""",
                               timeout=RUN_MS)
        page.get_by_text("is in the model picker").wait_for(timeout=RUN_MS)
        assert page.locator(ERRORS).count() == 0
        page.reload()  # the run is found again from its URL
        page.get_by_text("is in the model picker").wait_for()
        name = runs.run_folder(run_id).status().model
        page.locator(MODEL_PICKER).click()
        expect(page.get_by_role("option", name=f"{name} · Trained here")).to_be_visible()
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Draw a digit for it").click()
        page.get_by_role("heading", name="Draw & recognise").wait_for()
        page.wait_for_selector(CANVAS)
        stroke(page, ONE)
        assert any(c.isdigit() for c in recognised(page))
        expect(page.locator(MODEL_PICKER).get_by_role("combobox")).to_have_value(f"{name} · Trained here")
        assert page.locator(ERRORS).count() == 0
        browser.close()

"""Shared fixtures: the MNIST folder, the test set, and small trained checkpoints; for the
browser tests the checkpoints they use, the app under ``streamlit run``, Chromium and a tab in it
(helpers in ``tests/browser.py``).

Tests that need MNIST read ``$CVAE_DATA_DIR`` (else ``../shared/data/mnist`` beside the
project). When the folder is missing they skip locally but fail under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def mnist_dir() -> Path | None:
    chosen = os.environ.get("CVAE_DATA_DIR")
    folder = Path(chosen) if chosen else SHARED_MNIST
    return folder if (folder / "t10k-images-idx3-ubyte.gz").exists() or (folder / "t10k-images-idx3-ubyte").exists() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    folder = mnist_dir()
    if folder is None:
        message = f"MNIST not found (set CVAE_DATA_DIR; looked in {os.environ.get('CVAE_DATA_DIR') or SHARED_MNIST})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def mnist(data_dir):
    from cvae_core.data import load_mnist

    return load_mnist(data_dir, checksums=False)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory, mnist) -> Path:
    """A folder with a 1-epoch conv-2 and mlp-2 trained on 2k images (fast, for app tests)."""
    import torch

    from cvae_core.config import ModelConfig, TrainConfig
    from cvae_core.train import fit

    folder = tmp_path_factory.mktemp("checkpoints")
    for arch in ("conv", "mlp"):
        fit(
            ModelConfig(arch=arch, latent_dim=2, hidden=(128,)),
            TrainConfig(epochs=1, subset=2000, val_size=1000, eval_size=2000),
            mnist,
            folder / f"{arch}-2",
            command="tests/conftest.py tiny_checkpoints",
            device=torch.device("cpu"),
        )
    return folder


# ----------------------------------------------------------------------------- browser tests


@pytest.fixture(scope="module")
def models(request) -> tuple[Path, bool]:
    """(checkpoint folder, whether it holds the real trained models): the committed checkpoints
    when there are any, else the tiny ones."""
    from tests.browser import COMMITTED

    if any(COMMITTED.glob("*.safetensors")):
        return COMMITTED, True
    return request.getfixturevalue("tiny_checkpoints"), False


@pytest.fixture(scope="module")
def server(models, tmp_path_factory) -> Iterator[str]:
    """The app under ``streamlit run`` on ``models``; its URL."""
    from tests.browser import running_app

    with running_app(models[0], tmp_path_factory.mktemp("browser")) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, one per test module."""
    from playwright.sync_api import sync_playwright

    from tests.browser import launch_chromium

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser) -> Any:
    """One tab at desktop size, shared by a module's tests."""
    from tests.browser import VIEWPORT, new_tab

    return new_tab(browser, viewport=VIEWPORT)

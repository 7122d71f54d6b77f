"""Session fixtures shared by every test folder: the MNIST IDX folder and the loaded arrays.

The tfds data directory lives in pytest's cache folder (``.pytest_cache/d/genmath-tfds``), so
MNIST is prepared at most once per checkout rather than once per run; set ``TFDS_DATA_DIR`` to
share another prepared directory instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from models.mnist import MNIST_DIR_ENV, Mnist, load_mnist

_REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder with the four original MNIST IDX .gz files (``GENMATH_MNIST_DIR``, else
    ``<repo>/../shared/data/mnist``)."""
    path = Path(os.environ.get(MNIST_DIR_ENV) or _REPO.parent / "shared" / "data" / "mnist")
    if not path.is_dir():
        pytest.fail(f"MNIST IDX folder {path} not found; set {MNIST_DIR_ENV} to it.")
    return path


@pytest.fixture(scope="session")
def tfds_dir(request, tmp_path_factory) -> Path:
    """A tfds data directory that persists across runs when pytest's cache is enabled."""
    if os.environ.get("TFDS_DATA_DIR"):
        return Path(os.environ["TFDS_DATA_DIR"])
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("genmath-tfds"))
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="session")
def mnist(mnist_dir, tfds_dir) -> Mnist:
    """Both MNIST splits as uint8 images and int32 labels (numpy), loaded once per session."""
    return load_mnist(mnist_dir, tfds_dir=tfds_dir)


def make_synthetic_mnist(num_train: int = 1024, num_test: int = 256, seed: int = 0) -> Mnist:
    """Random MNIST-shaped data: digit-like strokes are not needed to test mechanics.

    Pixels are mostly dark with bright blobs, so binarisations are neither all 0 nor all 1.
    """
    rng = np.random.default_rng(seed)

    def images(n):
        bright = rng.random((n, 28, 28)) < 0.2
        return np.where(
            bright, rng.integers(128, 256, (n, 28, 28)), rng.integers(0, 40, (n, 28, 28))
        )

    return Mnist(
        train_images=images(num_train).astype(np.uint8),
        train_labels=rng.integers(0, 10, num_train).astype(np.int32),
        test_images=images(num_test).astype(np.uint8),
        test_labels=rng.integers(0, 10, num_test).astype(np.int32),
    )


@pytest.fixture(scope="session")
def synthetic_mnist() -> Mnist:
    """Small random MNIST-shaped arrays for unit tests of models, trainers and examples."""
    return make_synthetic_mnist()

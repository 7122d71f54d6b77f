"""Session fixtures shared by every test folder: the MNIST IDX folder and the loaded arrays.

The tfds data directory lives in pytest's cache folder (``.pytest_cache/d/genmath-tfds``), so
MNIST is prepared at most once per checkout rather than once per run; set ``TFDS_DATA_DIR`` to
share another prepared directory instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.mnist import MNIST_DIR_ENV, Mnist, load_mnist
from tests.synthetic import make_synthetic_mnist

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


@pytest.fixture(scope="session")
def synthetic_mnist() -> Mnist:
    """Small MNIST-shaped arrays with class structure (:mod:`tests.synthetic`)."""
    return make_synthetic_mnist()

"""Small MNIST-shaped data for unit tests of models, trainers and examples (no real MNIST)."""

from __future__ import annotations

import numpy as np

from models.mnist import Mnist


def make_synthetic_mnist(num_train: int = 2000, num_test: int = 500, seed: int = 0) -> Mnist:
    """Random uint8 MNIST-shaped data with class structure.

    Each of the 10 labels has its own random template of bright pixels, so classes are
    separable and a mixture fits better than one factorized Bernoulli, as on MNIST; pixels
    are mostly dark, so binarisations are neither all 0 nor all 1.
    """
    rng = np.random.default_rng(seed)
    templates = rng.random((10, 28, 28)) < 0.25

    def split(n):
        labels = rng.integers(0, 10, n).astype(np.int32)
        bright = rng.random((n, 28, 28)) < np.where(templates[labels], 0.85, 0.05)
        high, low = rng.integers(180, 256, (n, 28, 28)), rng.integers(0, 30, (n, 28, 28))
        return np.where(bright, high, low).astype(np.uint8), labels

    train_images, train_labels = split(num_train)
    test_images, test_labels = split(num_test)
    return Mnist(train_images, train_labels, test_images, test_labels)


def compilations(caplog) -> list[str]:
    """The "Compiling ..." messages captured under ``jax.log_compiles``."""
    return [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]

"""Flags, data, evaluation images and metrics fields shared by the MNIST examples.

Used by ``examples.factorized_bernoulli``, ``examples.mixture``, ``examples.naive_bayes``
(all flags, data loading, the fixed evaluation set) and ``examples.vae`` (evaluation set).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import jax
import numpy as np

from models import factorized, mnist, reporting
from models.training import TrainConfig

# Grey levels are no binary data: a Bernoulli likelihood of them is no normalised density.
BINARY_BINARIZATIONS = ("dynamic", "threshold")


def add_common_arguments(
    parser: argparse.ArgumentParser, *, workdir: str, epochs: int, batch_size: int,
    learning_rate: float,
) -> None:
    add = parser.add_argument
    add("--data-dir", help="folder with the four MNIST IDX .gz files (else $GENMATH_MNIST_DIR)")
    add("--workdir", default=workdir, help=f"where outputs go (default {workdir})")
    add("--seed", type=int, default=0)
    add("--epochs", type=int, default=epochs, help=f"default {epochs}")
    add("--batch-size", type=int, default=batch_size, help=f"default {batch_size}")
    add("--learning-rate", type=float, default=learning_rate,
        help=f"peak Adam learning rate, cosine-decayed to 0 (default {learning_rate})")
    add("--binarization", choices=BINARY_BINARIZATIONS, default="dynamic",
        help="training binarisation; the test set is a fixed draw of it (default dynamic)")
    add("--pseudo-count", type=float, default=factorized.PSEUDO_COUNT,
        help="Beta prior pseudo-count per pixel outcome (default 1, Laplace smoothing)")
    add("--eval-seed", type=int, default=0, help="seed of the fixed test binarisation")
    add("--train-examples", type=int, help="train on the first N training images only")
    add("--test-examples", type=int, help="evaluate on the first N test images only")
    add("--no-resume", action="store_true",
        help="start afresh, deleting the checkpoints already in --workdir")
    add("--no-progress", action="store_true", help="no progress bar")


def prepare_workdir(args: argparse.Namespace, trainer_dirs: tuple[str, ...] = ("",)) -> str:
    """Creates ``--workdir``; with ``--no-resume`` deletes the trainers' old checkpoints.

    ``trainer_dirs`` are the trainers' workdirs relative to ``--workdir``.
    """
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    if args.no_resume:
        # Otherwise old checkpoints would shadow the new run's (same step numbers).
        for sub in trainer_dirs:
            shutil.rmtree(os.path.join(workdir, sub, "checkpoints"), ignore_errors=True)
    return workdir


def _subset(images, labels, count, flag):
    if count is None:
        return images, labels
    if not 0 < count <= images.shape[0]:
        raise ValueError(f"{flag} must lie in [1, {images.shape[0]}], got {count}.")
    return images[:count], labels[:count]


def load_data(args: argparse.Namespace):
    """``(train_images, train_labels, test_images, test_labels)`` as numpy arrays.

    A missing or incomplete ``--data-dir`` raises ``FileNotFoundError`` naming the folder.
    """
    data = mnist.load_mnist(args.data_dir)
    train = _subset(data.train_images, data.train_labels, args.train_examples, "--train-examples")
    test = _subset(data.test_images, data.test_labels, args.test_examples, "--test-examples")
    return (*train, *test)


def evaluation_images(images, *, binarization: str, seed: int) -> jax.Array:
    """The fixed binary test set for a model trained on ``binarization``."""
    if binarization == "dynamic":
        return mnist.fixed_binarization(images, seed=seed)
    return mnist.binarize(images, mode=binarization)


def evaluation_note(num_images: int, binarization: str, seed: int) -> str:
    drawn = f"fixed_binarization(seed={seed})" if binarization == "dynamic" else binarization
    return f"first {num_images} test images, {drawn}"


def enlarge(images, factor: int = 6) -> np.ndarray:
    """Nearest-neighbour enlargement of ``(N, H, W)`` images, for pictures of parameters."""
    images = np.asarray(images)
    return np.repeat(np.repeat(images, factor, axis=-2), factor, axis=-1)


def train_steps(num_examples: int, config: TrainConfig) -> int:
    return config.epochs * (num_examples // config.batch_size)


def run_cli(main, argv: list[str]) -> None:
    """Runs ``main``, turning a missing data folder into a one-line error instead of a trace."""
    try:
        main(argv)
    except FileNotFoundError as error:
        sys.exit(f"error: {error}")


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The trainer configuration from the common flags."""
    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        seed=args.seed, binarization=args.binarization,
    )


def run_fields(args: argparse.Namespace, config: TrainConfig, x_test, num_train: int) -> dict:
    """The metrics fields that say what was run on which data and machine."""
    return {
        "binarization": config.binarization,
        "evaluation_set": evaluation_note(x_test.shape[0], config.binarization, args.eval_seed),
        "seed": args.seed,
        "device": reporting.device_description(),
        "train_examples": int(num_train),
        "epochs": config.epochs,
    }


def timing_fields(fit_seconds: float, start: float) -> dict:
    """Training and wall time (``start`` from ``time.perf_counter``), with the load average."""
    return {
        "train_seconds": fit_seconds,
        "wall_time_s": time.perf_counter() - start,
        # The machine may be shared: the load puts the timings in context.
        "load_average_1min": os.getloadavg()[0],
    }

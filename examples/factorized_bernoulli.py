"""Trains the factorized Bernoulli model of MNIST (one logit per pixel) with optax.

    python -m examples.factorized_bernoulli --data-dir ../shared/data/mnist \\
        --workdir runs/factorized

It is trained by maximum likelihood with a Beta(alpha+1, alpha+1) prior (``--pseudo-count``
alpha) through the shared Trainer, with Adam and a cosine decay of the learning rate, and
compared with the closed-form optimum (the smoothed per-pixel training means; see
:mod:`models.factorized`). Left behind in ``--workdir``:

* ``metrics.json``: test NLL in nats and bits/dim of the trained and the closed-form
  model and their difference, the binarisation, seed, device, wall time and history;
* ``samples.png`` (64 samples), ``theta.png`` (the learned theta beside the closed form,
  enlarged), ``training_curve.png``;
* the trainer's ``train_log.csv``, ``history.json`` and ``checkpoints/``.

The helpers here (common flags, data, evaluation images, enlarged pictures) are shared by
``examples.mixture`` and ``examples.naive_bayes``.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import factorized, mnist, reporting
from models.training import TrainConfig, Trainer

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


@functools.partial(nnx.jit, static_argnames="num_samples")
def _picture_arrays(model, closed, key, *, num_samples):
    # One compiled call for every picture, rather than an eager op (and compile) each.
    return {
        "samples": model.sample(key, num_samples),
        "theta": jnp.stack([model.probs, closed.probs]),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.factorized_bernoulli", description=__doc__.split("\n")[0]
    )
    add_common_arguments(
        parser, workdir="runs/factorized", epochs=5, batch_size=128, learning_rate=0.1
    )
    parser.add_argument("--num-samples", type=int, default=64, help="samples in samples.png")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Runs the example; returns the metrics written to ``workdir/metrics.json``."""
    start = time.perf_counter()
    args = parse_args(argv)
    workdir = prepare_workdir(args)
    train_images, train_labels, test_images, _ = load_data(args)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        seed=args.seed, binarization=args.binarization,
    )
    x_test = evaluation_images(test_images, binarization=config.binarization, seed=args.eval_seed)

    num_train = train_images.shape[0]
    tx = factorized.make_optimizer(config.learning_rate, train_steps(num_train, config))
    loss_fn = factorized.make_loss_fn(num_train, pseudo_count=args.pseudo_count)
    trainer = Trainer(factorized.FactorizedBernoulli(), tx, loss_fn, config, workdir=workdir)
    fit_start = time.perf_counter()
    history = trainer.fit(train_images, train_labels, progress=not args.no_progress)
    fit_seconds = time.perf_counter() - fit_start
    model = trainer.model

    closed = factorized.FactorizedBernoulli(
        factorized.closed_form_logits(
            train_images, binarization=config.binarization, pseudo_count=args.pseudo_count
        )
    )
    nll = float(factorized.evaluate_nll(model, x_test))
    closed_nll = float(factorized.evaluate_nll(closed, x_test))

    sample_key = jax.random.fold_in(jax.random.key(args.seed), 1)
    pictures = jax.device_get(
        _picture_arrays(model, closed, sample_key, num_samples=args.num_samples)
    )
    reporting.save_image_grid(os.path.join(workdir, "samples.png"), pictures["samples"])
    reporting.save_image_grid(
        os.path.join(workdir, "theta.png"), enlarge(pictures["theta"]), ncols=2
    )
    epochs = [r["epoch"] for r in history]
    reporting.plot_curves(
        os.path.join(workdir, "training_curve.png"),
        {"train NLL (minibatch mean)": (epochs, [r["nll"] for r in history])},
        xlabel="epoch", ylabel="nats per image", title="Factorized Bernoulli on MNIST",
    )

    metrics = {
        "model": "factorized_bernoulli",
        "test_nll_nats": nll,
        "test_bits_per_dim": factorized.bits_per_dim(nll),
        "closed_form_test_nll_nats": closed_nll,
        "closed_form_test_bits_per_dim": factorized.bits_per_dim(closed_nll),
        "trained_minus_closed_form_nats": nll - closed_nll,
        "max_abs_logit_difference": float(
            np.max(np.abs(np.asarray(model.logits[...]) - np.asarray(closed.logits[...])))
        ),
        "pseudo_count": args.pseudo_count,
        "binarization": config.binarization,
        "evaluation_set": evaluation_note(x_test.shape[0], config.binarization, args.eval_seed),
        "seed": args.seed,
        "device": reporting.device_description(),
        "train_examples": int(num_train),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "optimizer": "adam(b2=0.95) with cosine decay to 0",
        "train_seconds": fit_seconds,
        "wall_time_s": time.perf_counter() - start,
        # The machine may be shared: the load puts the timings in context.
        "load_average_1min": os.getloadavg()[0],
        "history": history,
        "pictures": ["samples.png", "theta.png", "training_curve.png"],
    }
    reporting.write_json(os.path.join(workdir, "metrics.json"), metrics)
    print(
        f"test NLL {nll:.3f} nats = {metrics['test_bits_per_dim']:.4f} bits/dim; closed form "
        f"{closed_nll:.3f} (difference {nll - closed_nll:+.4f}); {fit_seconds:.1f} s training "
        f"on {metrics['device']}; outputs in {workdir}"
    )
    return metrics


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])

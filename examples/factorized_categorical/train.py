"""Trains the factorized categorical model of 8-bit MNIST with optax; compares it with the
closed form.

:func:`train_and_evaluate` is the library function behind
``python -m examples.factorized_categorical``. The model (256 logits per pixel, see
:mod:`models.factorized_categorical`) is trained by maximum likelihood with a symmetric
Dirichlet prior (``pseudo_count`` per level) through the shared Trainer, on the pixel
values themselves (binarisation ``"8bit"``), with Adam and a cosine decay of the learning
rate; the closed-form optimum (smoothed per-pixel level counts) is computed beside it. Both
are scored on the 8-bit test set in nats and in bits/dim (``genmath.dequantize
.bits_per_dim_8bit``). It leaves in ``workdir``:

* ``metrics.json``: test NLL in nats and bits/dim of the trained and the closed-form model
  and their difference, device, timings (training and closed form), configuration, history;
* ``samples.png`` (``num_samples`` grey-level samples), ``mean.png`` (the trained model's
  expected grey level per pixel beside the closed form's, enlarged),
  ``training_curve.png``;
* the trainer's ``train_log.csv`` and ``checkpoints/`` (a rerun with the same workdir
  resumes from the latest checkpoint).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from examples import _run
from examples.factorized_categorical.configs import EVALUATION_FIELDS, Config
from models import factorized, mnist, reporting
from models import factorized_categorical as fc
from models.training import Trainer, run_key, training_settings


def build(config: Config, num_train: int, *, workdir=None, mesh: Mesh | None = None) -> Trainer:
    """The model at uniform levels (logits 0) and its trainer for ``num_train`` images.

    The loss and optimiser are the factorized Bernoulli family's
    (:func:`models.factorized.make_loss_fn`, :func:`models.factorized.make_optimizer`):
    the minibatch NLL minus ``1/num_train`` of the Dirichlet log-prior, Adam with b2 = 0.95
    and a cosine decay to 0.
    """
    tx = factorized.make_optimizer(
        config.train.learning_rate, factorized.train_steps(num_train, config.train)
    )
    loss_fn = factorized.make_loss_fn(num_train, pseudo_count=config.pseudo_count)
    model = fc.FactorizedCategorical()
    # Adam with a cosine decay over the run: its length shapes the schedule.
    settings = training_settings(
        config, num_train=num_train, ignore=EVALUATION_FIELDS, epochs_shape_schedule=True
    )
    return Trainer(model, tx, loss_fn, config.train, workdir=workdir, mesh=mesh, settings=settings)


def train_and_evaluate(
    config: Config,
    workdir: str | os.PathLike,
    *,
    data: mnist.Mnist | None = None,
    data_dir: str | os.PathLike | None = None,
    mesh: Mesh | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict:
    """Trains (or resumes) the model of ``config``, evaluates it and the closed form.

    Args:
      config: the run (see :mod:`examples.factorized_categorical.configs`).
      workdir: where checkpoints, metrics and pictures go.
      data: the MNIST arrays; by default :func:`models.mnist.load_mnist` of ``data_dir``.
      data_dir: the folder of the four MNIST IDX files (see ``load_mnist``).
      mesh: the devices to train on, data-parallel (default: all of them).
      resume: continue from the latest checkpoint in ``workdir``; ``False`` deletes the
        checkpoints there first.
      progress: show a progress bar.

    Returns:
      The metrics also written to ``workdir/metrics.json``.
    """
    start = time.perf_counter()
    workdir = _run.prepare_workdir(workdir, resume=resume)
    train_images, train_labels, test_images, _ = _run.select_data(config, data, data_dir)
    x_test = mnist.evaluation_images(test_images, binarization="8bit")
    num_train = train_images.shape[0]

    trainer = build(config, num_train, workdir=workdir, mesh=mesh)
    trainer.restore_latest()  # nothing to restore when `resume` is False
    epochs_before = trainer.epochs_done
    fit_start = time.perf_counter()
    history = trainer.fit(train_images, train_labels, resume=False, progress=progress)
    fit_seconds = time.perf_counter() - fit_start
    model = trainer.model
    nll = factorized.evaluate_nll(model, x_test)

    closed_start = time.perf_counter()
    closed = fc.FactorizedCategorical(
        fc.closed_form_logits(train_images, pseudo_count=config.pseudo_count)
    )
    closed_nll = factorized.evaluate_nll(closed, x_test)
    closed_seconds = time.perf_counter() - closed_start

    sample_key = run_key(config.train.seed, "pictures")
    pictures = save_pictures(model, closed, workdir, sample_key, num_samples=config.num_samples)
    bits, closed_bits = fc.bits_per_dim(nll), fc.bits_per_dim(closed_nll)
    # The logits are defined up to a constant per pixel: compare the log-probabilities.
    log_prob_gap = np.abs(np.asarray(model.log_probs) - np.asarray(closed.log_probs))

    metrics = {
        "model": "factorized_categorical",
        "test_nll_nats": nll,
        "test_bits_per_dim": bits,
        "closed_form_test_nll_nats": closed_nll,
        "closed_form_test_bits_per_dim": closed_bits,
        "trained_minus_closed_form_nats": nll - closed_nll,
        "trained_minus_closed_form_bits_per_dim": bits - closed_bits,
        "max_abs_log_prob_difference": float(np.max(log_prob_gap)),
        "pseudo_count": config.pseudo_count,
        "binarization": "8bit",
        "evaluation_set": mnist.evaluation_note(x_test.shape[0], "8bit"),
        "bits_per_dim": "genmath.dequantize.bits_per_dim_8bit: -log2 P(x) / 784 of the 8-bit image",
        "seed": config.train.seed,
        **reporting.run_stamp(),
        "train_examples": int(num_train),
        "epochs": config.train.epochs,
        "epochs_run_now": trainer.epochs_done - epochs_before,
        "batch_size": config.train.batch_size,
        "learning_rate": config.train.learning_rate,
        "optimizer": "adam(b2=0.95) with cosine decay to 0",
        "train_seconds": fit_seconds,
        "closed_form_seconds": closed_seconds,
        "wall_time_s": time.perf_counter() - start,
        # The machine may be shared: the load puts the timings in context.
        "load_average_1min": os.getloadavg()[0],
        "config": dataclasses.asdict(config),
        "history": history,
        "pictures": [*pictures, save_curve(workdir, history)],
    }
    reporting.write_json(os.path.join(workdir, "metrics.json"), metrics)
    return metrics


def summary(metrics: dict) -> str:
    """One line for the terminal."""
    return (
        f"test NLL {metrics['test_nll_nats']:.2f} nats = {metrics['test_bits_per_dim']:.4f} "
        f"bits/dim; closed form {metrics['closed_form_test_bits_per_dim']:.4f} bits/dim "
        f"(difference {metrics['trained_minus_closed_form_bits_per_dim']:+.5f}); "
        f"{metrics['train_seconds']:.1f} s training on {metrics['device']}"
    )


@functools.partial(nnx.jit, static_argnames="num_samples")
def _picture_arrays(model, closed, key, *, num_samples):
    # One compiled call for every picture, rather than an eager op (and compile) each.
    return {
        "samples": model.sample(key, num_samples) / (fc.NUM_LEVELS - 1),
        "mean": jnp.stack([model.mean_image, closed.mean_image]),
    }


def save_pictures(model, closed, workdir: str, key, *, num_samples: int) -> list[str]:
    """``samples.png`` (grey levels / 255) and ``mean.png`` (trained beside closed form)."""
    arrays = jax.device_get(_picture_arrays(model, closed, key, num_samples=num_samples))
    reporting.save_image_grid(os.path.join(workdir, "samples.png"), arrays["samples"])
    reporting.save_image_grid(
        os.path.join(workdir, "mean.png"), reporting.enlarge(arrays["mean"], 6), ncols=2
    )
    return ["samples.png", "mean.png"]


def save_curve(workdir: str, history: list[dict]) -> str:
    """``training_curve.png``: the minibatch-mean training NLL in bits/dim against the epoch."""
    epochs = [r["epoch"] for r in history]
    reporting.plot_curves(
        os.path.join(workdir, "training_curve.png"),
        {"train NLL (minibatch mean)": (epochs, [fc.bits_per_dim(r["nll"]) for r in history])},
        xlabel="epoch",
        ylabel="bits/dim",
        title="Factorized categorical on 8-bit MNIST",
    )
    return "training_curve.png"

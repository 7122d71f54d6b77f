"""Trains the factorized Bernoulli model of MNIST with optax and compares it with the closed form.

:func:`train_and_evaluate` is the library function behind
``python -m examples.factorized_bernoulli``. The model (one logit per pixel) is trained by
maximum likelihood with a Beta(alpha+1, alpha+1) prior (``pseudo_count`` alpha) through the
shared Trainer, with Adam and a cosine decay of the learning rate, and compared with the
closed-form optimum (the smoothed per-pixel training means; see :mod:`models.factorized`).
It leaves in ``workdir``:

* ``metrics.json``: test NLL in nats and bits/dim of the trained and the closed-form model
  and their difference, the binarisation, seed, device, timings, configuration and history;
* ``samples.png`` (``num_samples`` samples), ``theta.png`` (the learned theta beside the
  closed form, enlarged), ``training_curve.png``;
* the trainer's ``train_log.csv``, ``history.json`` and ``checkpoints/`` (a rerun with the
  same workdir resumes from the latest checkpoint).
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
from examples.factorized_bernoulli.configs import EVALUATION_FIELDS, Config
from models import factorized, mnist, reporting
from models.training import Trainer, run_key, training_settings


def build(config: Config, num_train: int, *, workdir=None, mesh: Mesh | None = None) -> Trainer:
    """The model at uniform pixels (logits 0) and its trainer for ``num_train`` images."""
    tx = factorized.make_optimizer(
        config.train.learning_rate, factorized.train_steps(num_train, config.train)
    )
    loss_fn = factorized.make_loss_fn(num_train, pseudo_count=config.pseudo_count)
    # Adam with a cosine decay over the run: its length shapes the schedule.
    settings = training_settings(
        config, num_train=num_train, ignore=EVALUATION_FIELDS, epochs_shape_schedule=True
    )
    return Trainer(
        factorized.FactorizedBernoulli(),
        tx,
        loss_fn,
        config.train,
        workdir=workdir,
        mesh=mesh,
        settings=settings,
    )


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
    """Trains (or resumes) the model of ``config``, evaluates it; returns the metrics.

    Args:
      config: the run (see :mod:`examples.factorized_bernoulli.configs`).
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
    binarization = config.train.binarization
    x_test = mnist.evaluation_images(test_images, binarization=binarization, seed=config.eval_seed)
    num_train = train_images.shape[0]

    trainer = build(config, num_train, workdir=workdir, mesh=mesh)
    trainer.restore_latest()  # nothing to restore when `resume` is False
    epochs_before = trainer.epochs_done
    fit_start = time.perf_counter()
    history = trainer.fit(train_images, train_labels, resume=False, progress=progress)
    fit_seconds = time.perf_counter() - fit_start
    model = trainer.model

    closed = factorized.FactorizedBernoulli(
        factorized.closed_form_logits(
            train_images, binarization=binarization, pseudo_count=config.pseudo_count
        )
    )
    nll = factorized.evaluate_nll(model, x_test)
    closed_nll = factorized.evaluate_nll(closed, x_test)

    sample_key = run_key(config.train.seed, "pictures")
    pictures = save_pictures(model, closed, workdir, sample_key, num_samples=config.num_samples)

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
        "pseudo_count": config.pseudo_count,
        "binarization": binarization,
        "evaluation_set": mnist.evaluation_note(x_test.shape[0], binarization, config.eval_seed),
        "seed": config.train.seed,
        **reporting.run_stamp(),
        "train_examples": int(num_train),
        "epochs": config.train.epochs,
        "epochs_run_now": trainer.epochs_done - epochs_before,
        "batch_size": config.train.batch_size,
        "learning_rate": config.train.learning_rate,
        "optimizer": "adam(b2=0.95) with cosine decay to 0",
        "train_seconds": fit_seconds,
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
    difference = metrics["trained_minus_closed_form_nats"]
    return (
        f"test NLL {metrics['test_nll_nats']:.3f} nats = {metrics['test_bits_per_dim']:.4f} "
        f"bits/dim; closed form {metrics['closed_form_test_nll_nats']:.3f} (difference "
        f"{difference:+.4f}); {metrics['train_seconds']:.1f} s training on {metrics['device']}"
    )


@functools.partial(nnx.jit, static_argnames="num_samples")
def _picture_arrays(model, closed, key, *, num_samples):
    # One compiled call for every picture, rather than an eager op (and compile) each.
    return {
        "samples": model.sample(key, num_samples),
        "theta": jnp.stack([model.probs, closed.probs]),
    }


def save_pictures(model, closed, workdir: str, key, *, num_samples: int) -> list[str]:
    """``samples.png`` and ``theta.png`` (learned theta beside the closed form)."""
    arrays = jax.device_get(_picture_arrays(model, closed, key, num_samples=num_samples))
    reporting.save_image_grid(os.path.join(workdir, "samples.png"), arrays["samples"])
    reporting.save_image_grid(
        os.path.join(workdir, "theta.png"), reporting.enlarge(arrays["theta"], 6), ncols=2
    )
    return ["samples.png", "theta.png"]


def save_curve(workdir: str, history: list[dict]) -> str:
    """``training_curve.png``: the minibatch-mean training NLL against the epoch."""
    epochs = [r["epoch"] for r in history]
    reporting.plot_curves(
        os.path.join(workdir, "training_curve.png"),
        {"train NLL (minibatch mean)": (epochs, [r["nll"] for r in history])},
        xlabel="epoch",
        ylabel="nats per image",
        title="Factorized Bernoulli on MNIST",
    )
    return "training_curve.png"

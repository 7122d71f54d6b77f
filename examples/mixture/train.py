"""Trains a mixture of K factorized Bernoullis on MNIST and reports its exact test NLL.

:func:`train_and_evaluate` is the library function behind ``python -m examples.mixture``.
With ``algorithm="adam"`` it maximises the exact log-likelihood (log-sum-exp over
components, plus the Beta/Dirichlet priors of :mod:`models.mixture`) with Adam through the
shared Trainer; ``algorithm="em"`` runs ``train.epochs`` full-data EM iterations instead.
Components start from random training images blended with the mean image. It leaves in
``workdir``:

* ``metrics.json``: exact test NLL in nats and bits/dim (and at initialisation), train
  NLL, K, algorithm, binarisation, seed, device, timings, configuration and history;
* ``samples.png`` (100 samples), ``components.png`` (the K templates theta_k, most probable
  first), ``training_curve.png``;
* with Adam, the trainer's ``train_log.csv``, ``history.json`` and ``checkpoints/`` (a rerun
  with the same workdir resumes from the latest checkpoint).
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from examples import _run
from examples.mixture.configs import EVALUATION_FIELDS, Config
from models import factorized, mixture, mnist, reporting, sharding
from models.training import ConfigError, Trainer, run_key, training_settings


def build(config: Config, train_images, key, *, workdir=None, mesh: Mesh | None = None) -> Trainer:
    """The mixture, its templates started from ``train_images``, and its Adam trainer."""
    num_train = train_images.shape[0]
    model = mixture.MixtureOfBernoullis(
        config.num_components,
        key=key,
        init_images=train_images,
        init_smoothing=config.init_smoothing,
    )
    tx = factorized.make_optimizer(
        config.train.learning_rate, factorized.train_steps(num_train, config.train)
    )
    loss_fn = factorized.make_loss_fn(
        num_train,
        pseudo_count=config.pseudo_count,
        weight_pseudo_count=config.weight_pseudo_count,
    )
    # Adam with a cosine decay over the run: its length shapes the schedule.
    settings = training_settings(
        config,
        num_train=train_images.shape[0],
        ignore=EVALUATION_FIELDS,
        epochs_shape_schedule=True,
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
    """Fits (or resumes) the mixture of ``config``, evaluates it; returns the metrics.

    Args:
      config: the run (see :mod:`examples.mixture.configs`).
      workdir: where checkpoints, metrics and pictures go.
      data: the MNIST arrays; by default :func:`models.mnist.load_mnist` of ``data_dir``.
      data_dir: the folder of the four MNIST IDX files (see ``load_mnist``).
      mesh: the devices to train on, data-parallel (default: all of them).
      resume: continue from the latest checkpoint in ``workdir`` (Adam only; EM keeps no
        checkpoints); ``False`` deletes the checkpoints there first.
      progress: show a progress bar.

    Returns:
      The metrics also written to ``workdir/metrics.json``.
    """
    start = time.perf_counter()
    workdir = _run.prepare_workdir(workdir, resume=resume)
    train_images, train_labels, test_images, _ = _run.select_data(
        config, data, data_dir, minibatches=config.algorithm != "em"
    )
    num_train = train_images.shape[0]
    if config.num_components > num_train:
        raise ConfigError(
            "num_components",
            f"must be at most the number of training images ({num_train}), "
            f"got {config.num_components}",
        )
    binarization = config.train.binarization
    x_test = mnist.evaluation_images(test_images, binarization=binarization, seed=config.eval_seed)
    init_key = run_key(config.train.seed, "init")
    sample_key = run_key(config.train.seed, "pictures")

    epochs_run = 0
    if config.algorithm == "em":
        _check_em_workdir(workdir)
        devices = sharding.data_axis_size(sharding.data_mesh() if mesh is None else mesh)
        if num_train % devices:
            raise ConfigError(
                "train_examples",
                f"is {num_train}, which the {devices} devices cannot split evenly (EM gives "
                f"each an equal slice); choose a multiple of {devices}",
            )
        model = mixture.MixtureOfBernoullis(
            config.num_components,
            key=init_key,
            init_images=train_images,
            init_smoothing=config.init_smoothing,
        )
        initial_nll = factorized.evaluate_nll(model, x_test)
        fit_start = time.perf_counter()
        # Memory of EM is N x K responsibilities; see mixture.fit_em.
        train_nlls = mixture.fit_em(
            model,
            train_images,
            iterations=config.train.epochs,
            binarization=binarization,
            seed=config.train.seed,
            pseudo_count=config.pseudo_count,
            weight_pseudo_count=config.weight_pseudo_count,
            mesh=mesh,
            progress=progress,
        )
        fit_seconds = time.perf_counter() - fit_start
        history = [{"iteration": i + 1, "nll": v} for i, v in enumerate(train_nlls)]
        epochs_run = len(history)
        curve_label, x_label = "train NLL (before each EM update)", "EM iteration"
    else:
        trainer = build(config, train_images, init_key, workdir=workdir, mesh=mesh)
        # The initial templates, whether or not a checkpoint is restored below.
        initial_nll = factorized.evaluate_nll(trainer.model, x_test)
        trainer.restore_latest()  # nothing to restore when `resume` is False
        epochs_before = trainer.epochs_done
        fit_start = time.perf_counter()
        history = trainer.fit(train_images, train_labels, resume=False, progress=progress)
        fit_seconds = time.perf_counter() - fit_start
        epochs_run = trainer.epochs_done - epochs_before
        model = trainer.model
        curve_label, x_label = "train NLL (minibatch mean)", "epoch"

    nll = factorized.evaluate_nll(model, x_test)
    pictures = save_pictures(model, workdir, sample_key)
    weights = np.exp(np.asarray(model.log_weights, np.float64))
    steps = list(range(1, len(history) + 1))
    reporting.plot_curves(
        os.path.join(workdir, "training_curve.png"),
        {curve_label: (steps, [r["nll"] for r in history])},
        xlabel=x_label,
        ylabel="nats per image",
        title=f"Mixture of {config.num_components} Bernoullis on MNIST ({config.algorithm})",
    )

    adam = config.algorithm == "adam"
    metrics = {
        "model": "mixture_of_bernoullis",
        "num_components": config.num_components,
        "algorithm": config.algorithm,
        "test_nll_nats": nll,
        "test_bits_per_dim": factorized.bits_per_dim(nll),
        "initial_test_nll_nats": initial_nll,
        # Not the final model's: Adam's is the mean over the last epoch's minibatches as they
        # were trained, EM's that of the last E-step, before its M-step's update.
        "last_epoch_train_nll_nats": history[-1]["nll"] if history else None,
        "last_epoch_train_nll_note": (
            "mean over the last epoch's minibatches, during training"
            if adam
            else "the last EM iteration's E-step, under the parameters before its update"
        ),
        "pseudo_count": config.pseudo_count,
        "weight_pseudo_count": config.weight_pseudo_count,
        "init_smoothing": config.init_smoothing,
        "mixture_weights_max": float(weights.max()),
        "mixture_weights_min": float(weights.min()),
        "binarization": binarization,
        "evaluation_set": mnist.evaluation_note(x_test.shape[0], binarization, config.eval_seed),
        "seed": config.train.seed,
        **reporting.run_stamp(),
        "train_examples": int(num_train),
        "epochs": config.train.epochs,
        "epochs_run_now": epochs_run,
        "batch_size": config.train.batch_size if adam else num_train,
        "learning_rate": config.train.learning_rate if adam else None,
        "train_seconds": fit_seconds,
        "wall_time_s": time.perf_counter() - start,
        # The machine may be shared: the load puts the timings in context.
        "load_average_1min": os.getloadavg()[0],
        "config": dataclasses.asdict(config),
        "history": history,
        "pictures": [*pictures, "training_curve.png"],
    }
    reporting.write_json(os.path.join(workdir, "metrics.json"), metrics)
    return metrics


def _check_em_workdir(workdir: str) -> None:
    """EM keeps no checkpoints: a workdir with an Adam run's is refused (its metrics would
    describe EM beside Adam's checkpoints and logs); the Adam logs left after ``resume=False``
    deleted those checkpoints are removed."""
    checkpoints = os.path.join(workdir, "checkpoints")
    if os.path.isdir(checkpoints) and os.listdir(checkpoints):
        raise ConfigError(
            "workdir",
            f"holds the checkpoints of an Adam run ({checkpoints}), which EM cannot resume; "
            "choose another workdir or start afresh (resume=False, --no-resume)",
        )
    for name in ("train_log.csv", "history.json"):
        path = os.path.join(workdir, name)
        if os.path.exists(path):
            os.remove(path)


def summary(metrics: dict) -> str:
    """One line for the terminal."""
    return (
        f"K={metrics['num_components']} ({metrics['algorithm']}): test NLL "
        f"{metrics['test_nll_nats']:.2f} nats = {metrics['test_bits_per_dim']:.4f} bits/dim "
        f"(at initialisation {metrics['initial_test_nll_nats']:.2f}); "
        f"{metrics['train_seconds']:.1f} s training on {metrics['device']}"
    )


@nnx.jit
def _picture_arrays(model, key):
    # One compiled call for every picture, rather than an eager op (and compile) each.
    samples, _ = model.sample(key, 100)
    return {
        "samples": samples,
        "components": model.probs[jnp.argsort(-model.log_weights)],  # most probable first
    }


def save_pictures(model, workdir: str, key) -> list[str]:
    """``samples.png`` (100 samples) and ``components.png`` (templates, most probable first)."""
    arrays = jax.device_get(_picture_arrays(model, key))
    reporting.save_image_grid(os.path.join(workdir, "samples.png"), arrays["samples"], ncols=10)
    reporting.save_image_grid(os.path.join(workdir, "components.png"), arrays["components"])
    return ["samples.png", "components.png"]

"""Trains the class-conditional factorized Bernoulli (naive Bayes) model of MNIST.

:func:`train_and_evaluate` is the library function behind ``python -m examples.naive_bayes``.
``p(x, y) = p(y) prod_i Bernoulli(x_i; theta_yi)`` is fitted with Adam on ``-log p(x, y)``
(plus Beta/Dirichlet priors) through the shared Trainer; it classifies by Bayes' rule and,
being generative, also gives ``log p(x)`` and draws digits of a chosen class. For contrast
a discriminative model, multinomial logistic regression on the same binary pixels
(:class:`models.class_conditional.LogisticRegression`), is trained the same way: it usually
classifies better but gives neither ``log p(x)`` nor samples. It leaves in ``workdir``:

* ``metrics.json``: test accuracy, test NLL ``-log p(x)`` (nats, bits/dim) and
  ``-log p(x, y)`` of the trained and the closed-form model, the logistic regression's
  accuracy, binarisation, seed, device, timings, configuration and history;
* ``class_samples.png`` (row d: ten samples of digit d), ``class_means.png``
  (theta_y, enlarged), ``training_curve.png``;
* checkpoints and logs of both trainers (``logistic_regression/`` for the baseline); a
  rerun with the same workdir resumes from the latest checkpoints.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from examples import _run
from examples.naive_bayes.configs import EVALUATION_FIELDS, Config
from models import class_conditional, factorized, mnist, reporting
from models.training import ConfigError, Trainer, run_key, training_settings

LOGREG_DIR = "logistic_regression"


def build(config: Config, num_train: int, *, workdir=None, mesh: Mesh | None = None) -> Trainer:
    """The class-conditional model (every theta 1/2, p(y) uniform) and its trainer."""
    tx = factorized.make_optimizer(
        config.train.learning_rate, factorized.train_steps(num_train, config.train)
    )
    loss_fn = class_conditional.make_loss_fn(
        num_train, config.pseudo_count, config.class_pseudo_count
    )
    model = class_conditional.ClassConditionalBernoulli()
    # Adam with a cosine decay over the run: its length shapes the schedule.
    settings = training_settings(
        config, num_train=num_train, ignore=EVALUATION_FIELDS, epochs_shape_schedule=True
    )
    return Trainer(model, tx, loss_fn, config.train, workdir=workdir, mesh=mesh, settings=settings)


def build_baseline(
    config: Config, num_train: int, *, workdir=None, mesh: Mesh | None = None
) -> Trainer:
    """The logistic-regression baseline (zero-initialised) and its trainer."""
    train = dataclasses.replace(
        config.train, epochs=config.logreg_epochs, learning_rate=config.logreg_learning_rate
    )
    tx = factorized.make_optimizer(
        train.learning_rate, factorized.train_steps(num_train, train), b2=0.999
    )
    model = class_conditional.LogisticRegression()
    # Its own epochs and rate (a cosine decay over them); the model's are not its.
    settings = training_settings(
        config,
        num_train=num_train,
        ignore=("eval_seed", "test_examples", "pseudo_count", "class_pseudo_count"),
        epochs_shape_schedule=False,
    )
    settings["train"].pop("learning_rate")
    return Trainer(
        model,
        tx,
        class_conditional.logistic_loss,
        train,
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
    """Trains (or resumes) the model of ``config`` and its baseline; returns the metrics.

    Args:
      config: the run (see :mod:`examples.naive_bayes.configs`).
      workdir: where checkpoints, metrics and pictures go.
      data: the MNIST arrays; by default :func:`models.mnist.load_mnist` of ``data_dir``.
      data_dir: the folder of the four MNIST IDX files (see ``load_mnist``).
      mesh: the devices to train on, data-parallel (default: all of them).
      resume: continue from the latest checkpoints in ``workdir``; ``False`` deletes the
        checkpoints there (both trainers') first.
      progress: show a progress bar.

    Returns:
      The metrics also written to ``workdir/metrics.json``.
    """
    start = time.perf_counter()
    workdir = _run.prepare_workdir(workdir, resume=resume, subdirs=("", LOGREG_DIR))
    train_images, train_labels, test_images, test_labels = _run.select_data(config, data, data_dir)
    binarization = config.train.binarization
    x_test = mnist.evaluation_images(test_images, binarization=binarization, seed=config.eval_seed)
    y_test = jnp.asarray(test_labels)
    num_train = train_images.shape[0]

    trainer = build(config, num_train, workdir=workdir, mesh=mesh)
    trainer.restore_latest()  # nothing to restore when `resume` is False
    epochs_before = trainer.epochs_done
    fit_start = time.perf_counter()
    history = trainer.fit(train_images, train_labels, resume=False, progress=progress)
    fit_seconds = time.perf_counter() - fit_start
    model = trainer.model
    scores = class_conditional.evaluate(model, x_test, y_test)
    closed = class_conditional.closed_form(
        train_images,
        train_labels,
        binarization=binarization,
        pseudo_count=config.pseudo_count,
        class_pseudo_count=config.class_pseudo_count,
    )
    closed_scores = class_conditional.evaluate(closed, x_test, y_test)

    logreg_accuracy = logreg_seconds = None
    if config.logreg_epochs > 0:
        baseline = build_baseline(
            config, num_train, workdir=os.path.join(workdir, LOGREG_DIR), mesh=mesh
        )
        tic = time.perf_counter()
        try:
            baseline.fit(train_images, train_labels, progress=progress)
        except ConfigError as error:
            if error.field != "epochs":
                raise
            # The baseline's epochs are logreg_epochs: name the option that set them.
            message = str(error).split("` ", 1)[1].rstrip(".")
            raise ConfigError("logreg_epochs", message) from error
        logreg_seconds = time.perf_counter() - tic
        logreg_accuracy = class_conditional.classifier_accuracy(baseline.model, x_test, y_test)

    picture_key = run_key(config.train.seed, "pictures")
    pictures = save_pictures(model, workdir, picture_key)
    pictures.append(save_curve(workdir, history))

    metrics = {
        "model": "class_conditional_bernoulli",
        "test_accuracy": scores["accuracy"],
        "test_nll_nats": scores["nll"],
        "test_bits_per_dim": factorized.bits_per_dim(scores["nll"]),
        "test_nll_joint_nats": scores["nll_joint"],
        "closed_form_test_accuracy": closed_scores["accuracy"],
        "closed_form_test_nll_nats": closed_scores["nll"],
        "logistic_regression_test_accuracy": logreg_accuracy,
        "logistic_regression_epochs": config.logreg_epochs,
        "logistic_regression_train_seconds": logreg_seconds,
        "pseudo_count": config.pseudo_count,
        "class_pseudo_count": config.class_pseudo_count,
        "binarization": binarization,
        "evaluation_set": mnist.evaluation_note(x_test.shape[0], binarization, config.eval_seed),
        "seed": config.train.seed,
        **reporting.run_stamp(),
        "train_examples": int(num_train),
        "epochs": config.train.epochs,
        "epochs_run_now": trainer.epochs_done - epochs_before,
        "batch_size": config.train.batch_size,
        "learning_rate": config.train.learning_rate,
        "train_seconds": fit_seconds,
        "wall_time_s": time.perf_counter() - start,
        # The machine may be shared: the load puts the timings in context.
        "load_average_1min": os.getloadavg()[0],
        "config": dataclasses.asdict(config),
        "history": history,
        "pictures": pictures,
    }
    reporting.write_json(os.path.join(workdir, "metrics.json"), metrics)
    return metrics


def summary(metrics: dict) -> str:
    """One line for the terminal."""
    logreg = metrics["logistic_regression_test_accuracy"]
    baseline = f"; logistic regression {logreg:.4f}" if logreg is not None else ""
    return (
        f"test accuracy {metrics['test_accuracy']:.4f} (closed form "
        f"{metrics['closed_form_test_accuracy']:.4f}){baseline}; test NLL -log p(x) "
        f"{metrics['test_nll_nats']:.2f} nats = {metrics['test_bits_per_dim']:.4f} bits/dim; "
        f"{metrics['train_seconds']:.1f} s training on {metrics['device']}"
    )


@nnx.jit
def _picture_arrays(model, key):
    # Row d: ten samples of digit d.
    labels = jnp.repeat(jnp.arange(model.num_classes), 10)
    return {"samples": model.sample(key, labels), "means": model.probs}


def save_pictures(model, workdir: str, key) -> list[str]:
    """``class_samples.png`` (row d: digit d) and ``class_means.png`` (theta_y, enlarged)."""
    arrays = jax.device_get(_picture_arrays(model, key))
    reporting.save_image_grid(
        os.path.join(workdir, "class_samples.png"), arrays["samples"], ncols=10
    )
    reporting.save_image_grid(
        os.path.join(workdir, "class_means.png"), reporting.enlarge(arrays["means"], 3), ncols=5
    )
    return ["class_samples.png", "class_means.png"]


def save_curve(workdir: str, history: list[dict]) -> str:
    """``training_curve.png``: the minibatch-mean ``-log p(x, y)`` against the epoch."""
    epochs = [r["epoch"] for r in history]
    reporting.plot_curves(
        os.path.join(workdir, "training_curve.png"),
        {"train -log p(x, y) (minibatch mean)": (epochs, [r["nll_joint"] for r in history])},
        xlabel="epoch",
        ylabel="nats per image",
        title="Class-conditional Bernoulli on MNIST",
    )
    return "training_curve.png"

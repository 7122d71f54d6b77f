"""Trains a MADE on binarised MNIST and evaluates its exact test likelihood.

:func:`train_and_evaluate` is the library function behind ``python -m examples.made``.
``p(x) = prod_d p(x_{o_d} | x_{o_<d})`` is trained through the shared Trainer, each step
under one of the model's fixed masks (orderings and connectivities); the test NLL is exact
(no bound, no importance sampling), of each single mask and of the paper's ensemble
``log (1/M) sum_m p(x | m)`` over ``config.eval_masks`` masks, on the fixed seeded
binarisation of the test set every model of this project is scored on. A conditional
model (``config.model.conditional``) is ``p(y) p(x | y)``: its classifier is Bayes' rule,
reported beside naive Bayes and logistic regression. It leaves in ``workdir``:

* ``metrics.json``: the test NLL (nats, bits/dim) of the ensemble and of every single
  mask (a conditional model adds ``-log p(x | y)``, ``-log p(x, y)`` and the test
  accuracy); parameters, timings, the device, the configuration and the history;
* ``samples.png`` (100 exact samples from mask 0, the raster order; a conditional model
  draws digit d in row d) and ``training_curve.png``;
* the trainer's ``train_log.csv``, ``history.json`` and ``checkpoints/`` (a rerun with
  the same workdir resumes from the latest checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from examples import _run
from examples.made.configs import EVALUATION_FIELDS, Config
from models import made, mnist, reporting, sharding, vae
from models.training import Trainer, make_optimizer, run_key, training_settings

#: The committed run of the naive Bayes example (README, "Factorized Bernoulli family"),
#: whose two classifiers on the same binary pixels MADE's accuracy is set beside.
REFERENCE_RUN = Path(__file__).resolve().parents[2] / "docs" / "results" / "naive_bayes"


def reference_accuracies() -> dict[str, float]:
    """Test accuracies of naive Bayes and logistic regression, read from
    :data:`REFERENCE_RUN`'s ``metrics.json`` (so they cannot drift from that run)."""
    run = json.loads((REFERENCE_RUN / "metrics.json").read_text())
    return {
        "naive_bayes": run["test_accuracy"],
        "logistic_regression": run["logistic_regression_test_accuracy"],
    }


def build(config: Config, train_images, *, mesh: Mesh | None = None, workdir=None) -> Trainer:
    """The MADE that ``config`` describes and its trainer.

    The initial parameters derive from ``config.train.seed`` (the masks from
    ``config.model.mask_seed``); the output bias starts at the data's pixel logits when the
    config asks for it.
    """
    init_key = run_key(config.train.seed, "init")
    means = vae.pixel_means(train_images) if config.model.output_bias_init else None
    model = made.make_made(config.model, rngs=nnx.Rngs(params=init_key), pixel_means=means)
    steps_per_epoch = train_images.shape[0] // config.train.batch_size
    tx = make_optimizer(config.optimizer, config.train, steps_per_epoch)
    # A cosine decay spans the whole run, so its length shapes the schedule.
    cosine = config.optimizer.schedule == "cosine"
    settings = training_settings(
        config,
        num_train=train_images.shape[0],
        ignore=EVALUATION_FIELDS,
        epochs_shape_schedule=cosine,
    )
    return Trainer(
        model, tx, made.loss_fn, config.train, workdir=workdir, mesh=mesh, settings=settings
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
    """Trains (or resumes) the MADE of ``config`` and evaluates it; returns the metrics.

    Args:
      config: the run (see :mod:`examples.made.configs`).
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
    train_images, train_labels, test_images, test_labels = _run.select_data(config, data, data_dir)
    workdir = _run.prepare_workdir(workdir, resume=resume)
    binarization = config.train.binarization
    x_test = mnist.evaluation_images(test_images, binarization=binarization, seed=config.eval_seed)
    y_test = jnp.asarray(test_labels)
    picture_key = run_key(config.train.seed, "pictures")
    conditional = config.model.conditional

    trainer = build(config, train_images, mesh=mesh, workdir=workdir)
    eval_seconds, epochs_run = [0.0], [0]

    def local_model():
        return nnx.merge(trainer.graphdef, sharding.to_local(trainer.state))[0]

    def on_epoch_end(trainer: Trainer, record: dict) -> dict:
        tic = time.perf_counter()
        epochs_run[0] += 1
        extra = {}
        if config.eval_every and trainer.epochs_done % config.eval_every == 0:
            scores = made.evaluate(
                local_model(),
                x_test,
                y_test if conditional else None,
                num_masks=1,
                batch_size=config.eval_batch_size,
            )
            extra["test_nll_mask0"] = scores["nll_per_mask"][0]
        extra["wall_clock"] = time.time()
        eval_seconds[0] += time.perf_counter() - tic
        return extra

    fit_start = time.perf_counter()
    history = trainer.fit(
        train_images, train_labels, resume=True, on_epoch_end=on_epoch_end, progress=progress
    )
    fit_seconds = time.perf_counter() - fit_start - eval_seconds[0]
    model = local_model()

    tic = time.perf_counter()
    scores = made.evaluate(
        model,
        x_test,
        y_test if conditional else None,
        num_masks=config.ensemble_size,
        batch_size=config.eval_batch_size,
    )
    test_seconds = time.perf_counter() - tic
    tic = time.perf_counter()
    pictures = [save_samples(model, workdir, picture_key)]
    sample_seconds = time.perf_counter() - tic
    pictures.append(save_curve(workdir, history, conditional))

    nll_note = "-log p(x) = -logsumexp_y log p(x, y)" if conditional else "-log p(x)"
    metrics = {
        "model": "made_conditional" if conditional else "made",
        "test_nll_nats": scores["nll"],
        "test_bits_per_dim": scores["bits_per_dim"],
        "test_nll_note": f"exact {nll_note}, ensemble of {scores['num_masks']} masks: "
        "log (1/M) sum_m p(x | mask m)",
        "eval_masks": scores["num_masks"],
        "test_nll_per_mask_nats": scores["nll_per_mask"],
        "test_nll_mean_single_mask_nats": scores["nll_mean_single_mask"],
        "binarization": binarization,
        "evaluation_set": mnist.evaluation_note(x_test.shape[0], binarization, config.eval_seed),
        "num_parameters": made.num_parameters(model),
        "seed": config.train.seed,
        **reporting.run_stamp(),
        "num_devices": trainer.mesh.devices.size,
        "train_examples": int(train_images.shape[0]),
        "epochs": config.train.epochs,
        "epochs_run_now": epochs_run[0],
        "batch_size": config.train.batch_size,
        "learning_rate": config.train.learning_rate,
        "train_seconds": fit_seconds,
        "train_seconds_per_epoch": fit_seconds / epochs_run[0] if epochs_run[0] else None,
        "train_seconds_note": "epochs run in this process, compilation and checkpointing "
        "included, per-epoch test evaluation excluded",
        "test_eval_seconds": test_seconds,
        "sample_seconds": sample_seconds,
        "wall_time_s": time.perf_counter() - start,
        # The machine may be shared: the load puts the timings in context.
        "load_average_1min": os.getloadavg()[0],
        "preset": config.preset,
        "config": dataclasses.asdict(config),
        "history": history,
        "pictures": pictures,
    }
    if conditional:
        metrics.update(
            {
                "test_accuracy": scores["accuracy"],
                "test_nll_conditional_nats": scores["nll_conditional"],
                "test_nll_joint_nats": scores["nll_joint"],
                "reference_test_accuracy": reference_accuracies(),
                "classifier_note": "argmax_y p(y | x) by Bayes' rule (genmath.bayes.posterior) "
                "on the ensemble's log p(x, y); references: naive Bayes and logistic "
                "regression on the same binary pixels (docs/results/naive_bayes/metrics.json)",
            }
        )
    reporting.write_json(os.path.join(workdir, "metrics.json"), metrics)
    return metrics


def summary(metrics: dict) -> str:
    """One line for the terminal."""
    accuracy = ""
    if "test_accuracy" in metrics:
        references = metrics["reference_test_accuracy"]
        accuracy = (
            f"; Bayes-rule test accuracy {metrics['test_accuracy']:.4f} (naive Bayes "
            f"{references['naive_bayes']:.3f}, logistic regression "
            f"{references['logistic_regression']:.3f})"
        )
    # A conditional model's single-mask figures are -log p(x | y) of the true label.
    single = "-log p(x | y)" if "test_accuracy" in metrics else "-log p(x)"
    per_epoch = metrics["train_seconds_per_epoch"]
    timing = f"{per_epoch:.1f} s/epoch, " if per_epoch is not None else ""
    return (
        f"exact test NLL {metrics['test_nll_nats']:.2f} nats = "
        f"{metrics['test_bits_per_dim']:.4f} bits/dim (ensemble of {metrics['eval_masks']} "
        f"masks; single masks' {single} {metrics['test_nll_mean_single_mask_nats']:.2f} on "
        "average)"
        f"{accuracy}; {metrics['epochs_run_now']} epochs trained now ({timing}"
        f"{metrics['device']})"
    )


def save_samples(model: made.MADE, workdir: str, key) -> str:
    """``samples.png``: 100 exact samples of mask 0 (conditional: row d, ten of digit d)."""
    labels = jnp.repeat(jnp.arange(model.num_classes), 10) if model.conditional else None
    count = 100 if labels is None else labels.shape[0]
    images = jax.device_get(made.generate(model, key, count, labels))
    reporting.save_image_grid(os.path.join(workdir, "samples.png"), np.asarray(images), ncols=10)
    return "samples.png"


def save_curve(workdir: str, history: list[dict], conditional: bool) -> str:
    """``training_curve.png``: the training NLL and the single-mask test NLL per epoch."""

    def curve(key):
        rows = [r for r in history if key in r]
        return [r["epoch"] for r in rows], [r[key] for r in rows]

    what = "-log p(x | y)" if conditional else "-log p(x)"
    curves = {f"train {what} (minibatch mean, random mask)": curve("nll")}
    if curve("test_nll_mask0")[0]:
        curves[f"test {what} (mask 0)"] = curve("test_nll_mask0")
    reporting.plot_curves(
        os.path.join(workdir, "training_curve.png"),
        curves,
        xlabel="epoch",
        ylabel="nats per image",
        title="MADE on MNIST",
    )
    return "training_curve.png"

"""Trains the class-conditional factorized Bernoulli (naive Bayes) model of MNIST.

    python -m examples.naive_bayes --data-dir ../shared/data/mnist --workdir runs/naive_bayes

``p(x, y) = p(y) prod_i Bernoulli(x_i; theta_yi)`` is fitted with Adam on ``-log p(x, y)``
(plus Beta/Dirichlet priors) through the shared Trainer; it classifies by Bayes' rule and,
being generative, also gives ``log p(x)`` and draws digits of a chosen class. For contrast
a discriminative model, multinomial logistic regression on the same binary pixels, is
trained the same way: it usually classifies better but gives neither ``log p(x)`` nor
samples. Left behind in ``--workdir``:

* ``metrics.json``: test accuracy, test NLL ``-log p(x)`` (nats, bits/dim) and
  ``-log p(x, y)`` of the trained and the closed-form model, the logistic regression's
  accuracy, binarisation, seed, device and timings;
* ``class_samples.png`` (row d: ten samples of digit d), ``class_means.png``
  (theta_y, enlarged), ``training_curve.png``;
* checkpoints and logs of both trainers (``logistic_regression/`` for the baseline).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
from flax import nnx

from examples._common import (
    add_common_arguments,
    enlarge,
    evaluation_images,
    load_data,
    prepare_workdir,
    run_cli,
    run_fields,
    timing_fields,
    train_config,
    train_steps,
)
from genmath import categorical
from models import class_conditional, factorized, reporting
from models.training import TrainConfig, Trainer

LOGREG_DIR = "logistic_regression"


class LogisticRegression(nnx.Module):
    """``p(y | x) = softmax(W x + b)``: the discriminative counterpart (zero-initialised;
    the objective is convex, so no random start is needed)."""

    def __init__(self, num_classes: int = class_conditional.NUM_CLASSES):
        self.weights = nnx.Param(jnp.zeros((factorized.NUM_PIXELS, num_classes)))
        self.bias = nnx.Param(jnp.zeros((num_classes,)))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = factorized.flatten_images("LogisticRegression", x)
        return x @ self.weights[...] + self.bias[...]


def logistic_loss(model, x, labels, key):
    del key
    logits = model(x)
    loss = -jnp.mean(categorical.log_prob(labels, logits=logits))
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, axis=-1) == labels)}


@nnx.jit
def _accuracy(model, x, labels):
    return jnp.mean(jnp.argmax(model(x), axis=-1) == labels)


@nnx.jit
def _picture_arrays(model, key):
    # Row d: ten samples of digit d.
    labels = jnp.repeat(jnp.arange(model.num_classes), 10)
    return {"samples": model.sample(key, labels), "means": model.probs}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.naive_bayes", description=__doc__.split("\n")[0]
    )
    add_common_arguments(
        parser, workdir="runs/naive_bayes", epochs=5, batch_size=128, learning_rate=0.1
    )
    add = parser.add_argument
    add("--class-pseudo-count", type=float, default=class_conditional.CLASS_PSEUDO_COUNT,
        help="Dirichlet pseudo-count per class on p(y) (default 1)")
    add("--logreg-epochs", type=int, default=5,
        help="epochs of the logistic-regression baseline; 0 skips it (default 5)")
    add("--logreg-learning-rate", type=float, default=1e-2,
        help="peak Adam learning rate of the baseline (default 0.01)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Runs the example; returns the metrics written to ``workdir/metrics.json``."""
    start = time.perf_counter()
    args = parse_args(argv)
    workdir = prepare_workdir(args, ("", LOGREG_DIR))
    train_images, train_labels, test_images, test_labels = load_data(args)
    config = train_config(args)
    x_test = evaluation_images(test_images, binarization=config.binarization, seed=args.eval_seed)
    num_train = train_images.shape[0]

    tx = factorized.make_optimizer(config.learning_rate, train_steps(num_train, config))
    loss_fn = class_conditional.make_loss_fn(
        num_train, args.pseudo_count, args.class_pseudo_count
    )
    trainer = Trainer(
        class_conditional.ClassConditionalBernoulli(), tx, loss_fn, config, workdir=workdir
    )
    fit_start = time.perf_counter()
    history = trainer.fit(train_images, train_labels, progress=not args.no_progress)
    fit_seconds = time.perf_counter() - fit_start
    model = trainer.model
    scores = class_conditional.evaluate(model, x_test, test_labels)
    closed = class_conditional.closed_form(
        train_images, train_labels, binarization=config.binarization,
        pseudo_count=args.pseudo_count, class_pseudo_count=args.class_pseudo_count,
    )
    closed_scores = class_conditional.evaluate(closed, x_test, test_labels)

    logreg_accuracy = logreg_seconds = None
    if args.logreg_epochs > 0:
        logreg_config = TrainConfig(
            epochs=args.logreg_epochs, batch_size=args.batch_size,
            learning_rate=args.logreg_learning_rate, seed=args.seed,
            binarization=config.binarization,
        )
        logreg_tx = factorized.make_optimizer(
            logreg_config.learning_rate, train_steps(num_train, logreg_config), b2=0.999
        )
        logreg = Trainer(
            LogisticRegression(), logreg_tx, logistic_loss, logreg_config,
            workdir=os.path.join(workdir, LOGREG_DIR),
        )
        tic = time.perf_counter()
        logreg.fit(train_images, train_labels, progress=not args.no_progress)
        logreg_seconds = time.perf_counter() - tic
        logreg_accuracy = float(_accuracy(logreg.model, x_test, jnp.asarray(test_labels)))

    pictures = jax.device_get(
        _picture_arrays(model, jax.random.fold_in(jax.random.key(args.seed), 1))
    )
    reporting.save_image_grid(
        os.path.join(workdir, "class_samples.png"), pictures["samples"], ncols=10
    )
    reporting.save_image_grid(
        os.path.join(workdir, "class_means.png"), enlarge(pictures["means"], 3), ncols=5
    )
    epochs = [r["epoch"] for r in history]
    reporting.plot_curves(
        os.path.join(workdir, "training_curve.png"),
        {"train -log p(x, y) (minibatch mean)": (epochs, [r["nll_joint"] for r in history])},
        xlabel="epoch", ylabel="nats per image", title="Class-conditional Bernoulli on MNIST",
    )

    metrics = {
        "model": "class_conditional_bernoulli",
        "test_accuracy": scores["accuracy"],
        "test_nll_nats": scores["nll"],
        "test_bits_per_dim": factorized.bits_per_dim(scores["nll"]),
        "test_nll_joint_nats": scores["nll_joint"],
        "closed_form_test_accuracy": closed_scores["accuracy"],
        "closed_form_test_nll_nats": closed_scores["nll"],
        "logistic_regression_test_accuracy": logreg_accuracy,
        "logistic_regression_epochs": args.logreg_epochs,
        "logistic_regression_train_seconds": logreg_seconds,
        "pseudo_count": args.pseudo_count,
        "class_pseudo_count": args.class_pseudo_count,
        **run_fields(args, config, x_test, num_train),
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        **timing_fields(fit_seconds, start),
        "history": history,
        "pictures": ["class_samples.png", "class_means.png", "training_curve.png"],
    }
    reporting.write_json(os.path.join(workdir, "metrics.json"), metrics)
    baseline = (
        f"; logistic regression {logreg_accuracy:.4f}" if logreg_accuracy is not None else ""
    )
    print(
        f"test accuracy {scores['accuracy']:.4f} (closed form {closed_scores['accuracy']:.4f})"
        f"{baseline}; test NLL -log p(x) {scores['nll']:.2f} nats = "
        f"{metrics['test_bits_per_dim']:.4f} bits/dim; {fit_seconds:.1f} s training on "
        f"{metrics['device']}; outputs in {workdir}"
    )
    return metrics


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])

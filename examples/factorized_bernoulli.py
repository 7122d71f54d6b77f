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

The flags, data loading and metrics fields common to the examples are in
:mod:`examples._common`.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
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
from models import factorized, reporting
from models.training import Trainer


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
    config = train_config(args)
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
        **run_fields(args, config, x_test, num_train),
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "optimizer": "adam(b2=0.95) with cosine decay to 0",
        **timing_fields(fit_seconds, start),
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

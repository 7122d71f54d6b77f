"""Trains a mixture of K factorized Bernoullis on MNIST and reports its exact test NLL.

    python -m examples.mixture --data-dir ../shared/data/mnist --workdir runs/mixture \\
        --num-components 100

By default it maximises the exact log-likelihood (log-sum-exp over components, plus the
Beta/Dirichlet priors of :mod:`models.mixture`) with Adam through the shared Trainer;
``--algorithm em`` runs ``--epochs`` full-data EM iterations instead. Components start
from random training images blended with the mean image. Left behind in ``--workdir``:

* ``metrics.json``: exact test NLL in nats and bits/dim, train NLL, K, algorithm,
  binarisation, seed, device, timings and history;
* ``samples.png`` (100 samples), ``components.png`` (the K templates theta_k, most probable
  first), ``training_curve.png``;
* with Adam, the trainer's ``train_log.csv``, ``history.json`` and ``checkpoints/``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from examples._common import (
    add_common_arguments,
    evaluation_images,
    load_data,
    prepare_workdir,
    run_cli,
    run_fields,
    timing_fields,
    train_config,
    train_steps,
)
from models import factorized, mixture, reporting
from models.training import Trainer

ALGORITHMS = ("adam", "em")


@nnx.jit
def _picture_arrays(model, key):
    # One compiled call for every picture, rather than an eager op (and compile) each.
    samples, _ = model.sample(key, 100)
    log_weights = model.log_weights
    return {
        "samples": samples,
        "components": model.probs[jnp.argsort(-log_weights)],  # most probable first
        "log_weights": log_weights,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.mixture", description=__doc__.split("\n")[0]
    )
    add_common_arguments(
        parser, workdir="runs/mixture", epochs=10, batch_size=128, learning_rate=0.03
    )
    add = parser.add_argument
    add("--num-components", type=int, default=100, help="K (default 100)")
    add("--algorithm", choices=ALGORITHMS, default="adam",
        help="adam: optax on the exact likelihood (default); em: --epochs EM iterations")
    add("--weight-pseudo-count", type=float, default=mixture.WEIGHT_PSEUDO_COUNT,
        help="Dirichlet pseudo-count per component on the mixture weights (default 1)")
    add("--init-smoothing", type=float, default=0.5,
        help="initial templates: (1 - s) * random image + s * mean image (default 0.5)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Runs the example; returns the metrics written to ``workdir/metrics.json``."""
    start = time.perf_counter()
    args = parse_args(argv)
    workdir = prepare_workdir(args)
    train_images, train_labels, test_images, _ = load_data(args)
    config = train_config(args)
    x_test = evaluation_images(test_images, binarization=config.binarization, seed=args.eval_seed)
    init_key, sample_key = jax.random.split(jax.random.key(args.seed))
    model = mixture.MixtureOfBernoullis(
        args.num_components, key=init_key, init_images=train_images,
        init_smoothing=args.init_smoothing,
    )
    initial_nll = float(factorized.evaluate_nll(model, x_test))

    num_train = train_images.shape[0]
    fit_start = time.perf_counter()
    if args.algorithm == "em":
        # Memory of EM is N x K responsibilities; see mixture.fit_em.
        train_nlls = mixture.fit_em(
            model, train_images, iterations=config.epochs, binarization=config.binarization,
            seed=args.seed, pseudo_count=args.pseudo_count,
            weight_pseudo_count=args.weight_pseudo_count, progress=not args.no_progress,
        )
        history = [{"iteration": i + 1, "nll": v} for i, v in enumerate(train_nlls)]
        curve_label, x_label = "train NLL (before each EM update)", "EM iteration"
    else:
        tx = factorized.make_optimizer(config.learning_rate, train_steps(num_train, config))
        loss_fn = factorized.make_loss_fn(
            num_train, pseudo_count=args.pseudo_count,
            weight_pseudo_count=args.weight_pseudo_count,
        )
        trainer = Trainer(model, tx, loss_fn, config, workdir=workdir)
        history = trainer.fit(train_images, train_labels, progress=not args.no_progress)
        model = trainer.model
        curve_label, x_label = "train NLL (minibatch mean)", "epoch"
    fit_seconds = time.perf_counter() - fit_start

    nll = float(factorized.evaluate_nll(model, x_test))
    pictures = jax.device_get(_picture_arrays(model, sample_key))
    reporting.save_image_grid(os.path.join(workdir, "samples.png"), pictures["samples"], ncols=10)
    reporting.save_image_grid(os.path.join(workdir, "components.png"), pictures["components"])
    weights = np.exp(pictures["log_weights"])
    steps = list(range(1, len(history) + 1))
    reporting.plot_curves(
        os.path.join(workdir, "training_curve.png"),
        {curve_label: (steps, [r["nll"] for r in history])},
        xlabel=x_label, ylabel="nats per image",
        title=f"Mixture of {args.num_components} Bernoullis on MNIST ({args.algorithm})",
    )

    metrics = {
        "model": "mixture_of_bernoullis",
        "num_components": args.num_components,
        "algorithm": args.algorithm,
        "test_nll_nats": nll,
        "test_bits_per_dim": factorized.bits_per_dim(nll),
        "initial_test_nll_nats": initial_nll,
        "final_train_nll_nats": history[-1]["nll"] if history else None,
        "pseudo_count": args.pseudo_count,
        "weight_pseudo_count": args.weight_pseudo_count,
        "init_smoothing": args.init_smoothing,
        "mixture_weights_max": float(weights.max()),
        "mixture_weights_min": float(weights.min()),
        **run_fields(args, config, x_test, num_train),
        "batch_size": config.batch_size if args.algorithm == "adam" else num_train,
        "learning_rate": config.learning_rate if args.algorithm == "adam" else None,
        **timing_fields(fit_seconds, start),
        "history": history,
        "pictures": ["samples.png", "components.png", "training_curve.png"],
    }
    reporting.write_json(os.path.join(workdir, "metrics.json"), metrics)
    print(
        f"K={args.num_components} ({args.algorithm}): test NLL {nll:.2f} nats = "
        f"{metrics['test_bits_per_dim']:.4f} bits/dim (at initialisation {initial_nll:.2f}); "
        f"{fit_seconds:.1f} s training on {metrics['device']}; outputs in {workdir}"
    )
    return metrics


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])

"""Trains a VAE on MNIST and evaluates it as a density model, a generator and an encoder.

    python -m examples.vae --data-dir ../shared/data/mnist --workdir runs/vae --epochs 10

Defaults are the Flax VAE example (784-500-20, relu, batch 128, Adam 1e-3) on dynamically
binarised MNIST. ``--preset burda`` switches to Burda et al. (2015)'s architecture;
any explicit flag overrides the preset. ``--architecture conv`` swaps the MLPs for
stride-2 convolutions (channels ``--conv-channels``, default 32 64). Left behind in
``--workdir``:

* ``metrics.json``: test ELBO with its reconstruction and KL terms, the importance-sampled
  negative log-likelihood (``--eval-samples`` samples) in nats and bits/dim, the linear
  probe's accuracy, timings, the device, the configuration and the per-epoch history;
* ``samples.png`` (prior samples; a conditional model draws digit d in row d),
  ``reconstructions.png`` (rows of test images, each followed by its reconstruction),
  ``manifold.png`` (2-D latent only: the decoded latent grid), ``training_curve.png``;
* the trainer's ``train_log.csv``, ``history.json`` and ``checkpoints/`` (a rerun with
  the same workdir resumes from the latest checkpoint).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from examples._common import evaluation_images
from genmath import latent
from models import mnist, reporting, vae
from models.probe import fit_linear_probe, probe_accuracy
from models.training import TrainConfig, Trainer

# On an accelerator the standard K = 5000; on a CPU a K that keeps evaluation under a minute.
ACCELERATOR_EVAL_SAMPLES = 5000
CPU_EVAL_SAMPLES = 100


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.vae", description=__doc__.split("\n")[0]
    )
    add = parser.add_argument
    add("--data-dir", help="folder with the four MNIST IDX .gz files (else $GENMATH_MNIST_DIR)")
    add("--workdir", default="runs/vae", help="where metrics, pictures and checkpoints go")
    add("--preset", choices=tuple(vae.PRESETS), default="flax",
        help="base configuration (default: flax)")
    add("--seed", type=int, default=0)
    add("--epochs", type=int, default=10)
    add("--batch-size", type=int)
    add("--learning-rate", type=float)
    add("--binarization", choices=mnist.BINARIZATIONS,
        help="default: dynamic (grey for --likelihood gaussian)")
    add("--latent-dim", type=int)
    add("--architecture", choices=vae.ARCHITECTURES, help="encoder/decoder networks (default: mlp)")
    add("--hidden", type=int, nargs="+", help="mlp: hidden widths, e.g. --hidden 200 200")
    add("--conv-channels", type=int, nargs="+",
        help="conv: channels of the 1 or 2 stride-2 layers, e.g. --conv-channels 32 64")
    add("--activation", choices=tuple(vae.ACTIVATIONS))
    add("--likelihood", choices=vae.LIKELIHOODS)
    add("--fixed-variance", type=float,
        help="Gaussian decoder: fixed pixel variance (the loss is a scaled MSE)")
    add("--scale", choices=vae.SCALES, help="Gaussian decoder: learned log-scale per pixel/global")
    add("--conditional", action="store_true", help="feed the label to encoder and decoder")
    add("--objective", choices=vae.OBJECTIVES)
    add("--num-samples", type=int, help="K samples per example in the training objective")
    add("--eval-samples", type=int,
        help=f"K of the importance-sampled test NLL (default {ACCELERATOR_EVAL_SAMPLES} on an "
        f"accelerator, {CPU_EVAL_SAMPLES} on CPU)")
    add("--eval-seed", type=int, default=0, help="seed of the fixed test binarisation")
    add("--train-examples", type=int, help="train on the first N training images only")
    add("--test-examples", type=int, help="evaluate on the first N test images only")
    add("--probe-steps", type=int, default=500, help="Adam steps of the linear probe")
    add("--no-resume", action="store_true",
        help="start afresh, deleting the checkpoints already in --workdir")
    add("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def build_configs(args: argparse.Namespace) -> tuple[vae.VAEConfig, TrainConfig, vae.Preset]:
    """The model and training configurations: the preset, overridden by explicit flags."""
    base = vae.preset(args.preset)
    overrides = {
        "latent_dim": args.latent_dim,
        "architecture": args.architecture,
        "hidden": args.hidden,
        "conv_channels": args.conv_channels,
        "activation": args.activation,
        "likelihood": args.likelihood,
        "fixed_variance": args.fixed_variance,
        "scale": args.scale,
        "objective": args.objective,
        "num_samples": args.num_samples,
    }
    model_config = dataclasses.replace(
        base.model,
        conditional=args.conditional,
        **{k: v for k, v in overrides.items() if v is not None},
    )
    binarization = args.binarization
    if binarization is None:
        binarization = "grey" if model_config.likelihood == "gaussian" else "dynamic"
    if model_config.likelihood == "bernoulli" and binarization == "grey":
        raise ValueError(
            "--binarization grey gives grey levels, for which a Bernoulli likelihood is no "
            "normalised density; use --likelihood gaussian (or a binary --binarization)."
        )
    train_config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size or base.train.batch_size,
        learning_rate=args.learning_rate or base.train.learning_rate,
        seed=args.seed,
        binarization=binarization,
    )
    return model_config, train_config, dataclasses.replace(base, train=train_config)


def _subset(images, labels, count):
    if count is None:
        return images, labels
    if not 0 < count <= images.shape[0]:
        raise ValueError(f"example count must lie in [1, {images.shape[0]}], got {count}.")
    return images[:count], labels[:count]


@nnx.jit
def _picture_arrays(model: vae.VAE, key, x, y) -> dict[str, jax.Array]:
    """Every picture's images in one compiled call."""
    config = model.config
    # Prior samples; a conditional model draws digit d in row d.
    labels = jnp.repeat(jnp.arange(10), 10) if config.conditional else None
    arrays = {"samples": model.generate(key, 100, labels)}
    # Rows of eight test images, each row followed by its reconstructions.
    originals = x[:64].reshape(8, 8, 28, 28)
    recon = model.reconstruct(x[:64], y[:64]).reshape(8, 8, 28, 28)
    arrays["reconstructions"] = jnp.stack([originals, recon], axis=1).reshape(-1, 28, 28)
    if config.latent_dim == 2 and not config.conditional:
        arrays["manifold"] = model.mean(model.decode(vae.latent_grid(20)))
    return arrays


def _save_pictures(model: vae.VAE, workdir: str, x_test, y_test, key) -> list[str]:
    arrays = jax.device_get(_picture_arrays(model, key, x_test, y_test))
    columns = {"samples": 10, "reconstructions": 8, "manifold": 20}
    written = []
    for name, images in arrays.items():
        path = os.path.join(workdir, f"{name}.png")
        reporting.save_image_grid(path, np.asarray(images), ncols=columns[name])
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> dict:
    """Runs the example; returns the metrics written to ``workdir/metrics.json``."""
    start = time.perf_counter()
    args = parse_args(argv)
    model_config, train_config, chosen = build_configs(args)
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    if args.no_resume:
        # Otherwise the old checkpoints would shadow the new run's (same step numbers).
        shutil.rmtree(os.path.join(workdir, "checkpoints"), ignore_errors=True)

    data = mnist.load_mnist(args.data_dir)
    train_images, train_labels = _subset(data.train_images, data.train_labels, args.train_examples)
    test_images, test_labels = _subset(data.test_images, data.test_labels, args.test_examples)
    if test_images.shape[0] < 64:
        raise ValueError("--test-examples must be at least 64: the reconstruction grid shows 64.")
    x_test = evaluation_images(
        test_images, binarization=train_config.binarization, seed=args.eval_seed
    )
    y_test = jnp.asarray(test_labels)

    init_key, eval_key, picture_key = jax.random.split(jax.random.key(args.seed), 3)
    model = vae.VAE(model_config, rngs=nnx.Rngs(params=init_key))
    steps_per_epoch = train_images.shape[0] // train_config.batch_size
    tx = chosen.optimizer(steps_per_epoch)
    trainer = Trainer(model, tx, vae.loss_fn, train_config, workdir=workdir)

    eval_seconds, epochs_run = [0.0], [0]

    def on_epoch_end(trainer: Trainer, record: dict) -> dict:
        tic = time.perf_counter()
        terms = vae.evaluate_elbo(trainer.model, x_test, y_test, eval_key)
        eval_seconds[0] += time.perf_counter() - tic
        epochs_run[0] += 1
        return {"test_neg_elbo": -terms["elbo"]}

    fit_start = time.perf_counter()
    history = trainer.fit(
        train_images, train_labels, resume=True,
        on_epoch_end=on_epoch_end, progress=not args.no_progress,
    )
    fit_seconds = time.perf_counter() - fit_start - eval_seconds[0]
    model = trainer.model

    # Density estimation on the fixed test set.
    terms = vae.evaluate_elbo(model, x_test, y_test, eval_key)
    on_accelerator = jax.default_backend() != "cpu"
    eval_samples = args.eval_samples or (
        ACCELERATOR_EVAL_SAMPLES if on_accelerator else CPU_EVAL_SAMPLES
    )
    tic = time.perf_counter()
    nll = vae.evaluate_log_likelihood(
        model, x_test, y_test, jax.random.fold_in(eval_key, 1), num_samples=eval_samples
    )
    iwae_seconds = time.perf_counter() - tic

    # Representation learning: a linear probe on the encoder means.
    x_train_eval = evaluation_images(
        train_images, binarization=train_config.binarization, seed=args.eval_seed + 1
    )
    y_train = jnp.asarray(train_labels)
    train_features = vae.encoder_means(model, x_train_eval, y_train)
    test_features = vae.encoder_means(model, x_test, y_test)
    probe = fit_linear_probe(train_features, y_train, steps=args.probe_steps)

    pictures = _save_pictures(model, workdir, x_test, y_test, picture_key)
    curves = {"train −ELBO": ([r["epoch"] for r in history], [r["neg_elbo"] for r in history])}
    if any("test_neg_elbo" in r for r in history):
        tested = [r for r in history if "test_neg_elbo" in r]
        curves["test −ELBO"] = ([r["epoch"] for r in tested], [r["test_neg_elbo"] for r in tested])
    if model_config.objective == "iwae":
        curves[f"train −IWAE (K={model_config.num_samples})"] = (
            [r["epoch"] for r in history], [r["neg_iwae"] for r in history]
        )
    curve_path = os.path.join(workdir, "training_curve.png")
    reporting.plot_curves(
        curve_path, curves, xlabel="epoch", ylabel="nats per image",
        title=f"VAE on MNIST ({train_config.binarization} binarisation)",
    )

    neg_elbo = -terms["elbo"]
    metrics = {
        "model": "vae",
        "test_nll_nats": nll["nll_nats"],
        "test_bits_per_dim": nll["bits_per_dim"],
        "eval_samples": eval_samples,
        "test_neg_elbo_nats": neg_elbo,
        "test_neg_elbo_bits_per_dim": float(latent.bits_per_dim(neg_elbo, vae.NUM_PIXELS)),
        "test_reconstruction_nats": -terms["reconstruction"],
        "test_kl_nats": terms["kl"],
        "probe_test_accuracy": probe_accuracy(probe, test_features, y_test),
        "probe_train_accuracy": probe_accuracy(probe, train_features, y_train),
        "binarization": train_config.binarization,
        "evaluation_set": (
            f"first {x_test.shape[0]} test images, "
            + (f"fixed_binarization(seed={args.eval_seed})"
               if train_config.binarization == "dynamic" else f"{train_config.binarization}")
        ),
        "likelihood_note": (
            "log p(x|y) (the label is given)" if model_config.conditional else "log p(x)"
        ) + ("; a density on [0, 1]^784, not a probability" if
             model_config.likelihood == "gaussian" else ""),
        "seed": args.seed,
        "device": reporting.device_description(),
        "train_examples": int(train_images.shape[0]),
        "epochs": train_config.epochs,
        "epochs_run_now": epochs_run[0],
        "train_seconds_per_epoch": fit_seconds / epochs_run[0] if epochs_run[0] else None,
        "train_seconds_note": "mean over the epochs run in this process, compilation and "
        "checkpointing included, per-epoch test evaluation excluded",
        "iwae_eval_seconds": iwae_seconds,
        "wall_time_s": time.perf_counter() - start,
        "preset": args.preset,
        "config": dataclasses.asdict(model_config),
        "train_config": dataclasses.asdict(train_config),
        "history": history,
        "pictures": [os.path.basename(p) for p in [*pictures, curve_path]],
    }
    reporting.write_json(os.path.join(workdir, "metrics.json"), metrics)
    print(
        f"test -ELBO {neg_elbo:.2f} nats (reconstruction {-terms['reconstruction']:.2f}, "
        f"KL {terms['kl']:.2f}); test NLL (IWAE, K={eval_samples}) {nll['nll_nats']:.2f} nats "
        f"= {nll['bits_per_dim']:.4f} bits/dim; probe accuracy "
        f"{metrics['probe_test_accuracy']:.4f}; {fit_seconds:.1f} s training "
        f"({epochs_run[0]} epochs) on {metrics['device']}; outputs in {workdir}"
    )
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])

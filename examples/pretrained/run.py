"""Evaluates a shipped pretrained VAE with no training, and exports a trained run as one.

:func:`evaluate` loads ``models.pretrained.load_pretrained(name)``, computes the test
ELBO, the importance-sampled test NLL (with its standard error over the test images) and
the active units on the fixed test binarisation, and writes ``metrics.json``,
``samples.png`` and ``reconstructions.png``. :func:`export` turns the latest checkpoint of
a training run (``examples.vae.train.train_and_evaluate``'s workdir) into a pretrained
model with the same measurements in its record, plus a reproducibility check: the NLL at
a small K on the first test images, with its Monte Carlo error.
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

from examples.vae.configs import Config
from examples.vae.train import build, save_pictures
from models import mnist, pretrained, reporting, training, vae

#: The reproducibility check: K and the number of test images it uses.
CHECK_SAMPLES, CHECK_EXAMPLES = 10, 1000


def evaluation_settings(trained_with: dict | None) -> tuple[str, int]:
    """The test set's binarisation and seed for a model trained with ``trained_with`` (a
    record's ``dataclasses.asdict`` of its :class:`~examples.vae.configs.Config`): those of
    its training run, so that an 8-bit or grey-level model is not scored on binary images.
    A record without them was trained on dynamically binarised MNIST, tested on seed 0."""
    trained_with = trained_with or {}
    binarization = trained_with.get("train", {}).get("binarization", "dynamic")
    return binarization, int(trained_with.get("eval_seed", 0))


def measure(
    model: vae.VAE,
    data: mnist.Mnist,
    *,
    eval_samples: int,
    test_examples: int | None = None,
    binarization: str = "dynamic",
    eval_seed: int = 0,
) -> dict:
    """Test ELBO, NLL (K = ``eval_samples``) ± standard error, and active units, on the
    test images binarised as the model was trained (``binarization``, ``eval_seed``)."""
    images, labels = mnist.subset(
        data.test_images, data.test_labels, test_examples, name="test_examples"
    )
    x = mnist.evaluation_images(images, binarization=binarization, seed=eval_seed)
    y = jnp.asarray(labels)
    key = jax.random.key(0)
    terms = vae.evaluate_elbo(model, x, y, key)
    tic = time.perf_counter()
    nll = vae.evaluate_log_likelihood(
        model, x, y, jax.random.fold_in(key, 1), num_samples=eval_samples
    )
    seconds = time.perf_counter() - tic
    return {
        "test_nll_nats": nll["nll_nats"],
        "test_nll_stderr_nats": nll["nll_stderr_nats"],
        "test_bits_per_dim": nll["bits_per_dim"],
        "eval_samples": eval_samples,
        "eval_seconds": seconds,
        "test_neg_elbo_nats": -terms["elbo"],
        "test_reconstruction_nats": -terms["reconstruction"],
        "test_kl_nats": terms["kl"],
        # A conditional encoder is given the label: its means would count the label's
        # directions (left out, as in the VAE example).
        "active_units": None
        if model.conditional
        else vae.active_units(vae.encoder_means(model, x, y)),
        "evaluation_set": mnist.evaluation_note(x.shape[0], binarization, eval_seed),
        **reporting.run_stamp(),
    }


def reproducibility_check(
    model: vae.VAE,
    data: mnist.Mnist,
    *,
    binarization: str = "dynamic",
    eval_seed: int = 0,
    seeds=(0, 1),
) -> dict:
    """NLL at K = 10 on the first 1000 test images for two keys, and its Monte Carlo error.

    ``mc_stderr_nats`` is the standard error of the difference between two estimates with
    independent keys (the images are the same), so an estimate with a third key should
    lie within a few of it of ``nll_nats``.
    """
    x = mnist.evaluation_images(
        data.test_images[:CHECK_EXAMPLES], binarization=binarization, seed=eval_seed
    )
    # A conditional model is scored with each image's own label (log p(x | y)).
    y = jnp.asarray(data.test_labels[:CHECK_EXAMPLES])
    bounds = [
        np.asarray(
            vae.iwae_per_example(model, x, y, jax.random.key(seed), num_samples=CHECK_SAMPLES),
            np.float64,
        )
        for seed in seeds
    ]
    diff = bounds[0] - bounds[1]
    return {
        "num_samples": CHECK_SAMPLES,
        "test_examples": CHECK_EXAMPLES,
        "seed": seeds[0],
        "binarization": binarization,
        "eval_seed": eval_seed,
        "nll_nats": float(-bounds[0].mean()),
        "mc_stderr_nats": float(diff.std(ddof=1) / np.sqrt(diff.size)),
    }


def evaluate(
    name: str,
    workdir: str | os.PathLike,
    *,
    eval_samples: int = 100,
    test_examples: int | None = None,
    data: mnist.Mnist | None = None,
    data_dir: str | os.PathLike | None = None,
    directory: str | os.PathLike = pretrained.PRETRAINED_DIR,
) -> dict:
    """Evaluates the pretrained model ``name`` with no training; returns the metrics."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    model, record = pretrained.load_pretrained(name, directory=directory)
    binarization, eval_seed = evaluation_settings(record.get("trained_with"))
    data = mnist.load_mnist(data_dir) if data is None else data
    measured = measure(
        model,
        data,
        eval_samples=eval_samples,
        test_examples=test_examples,
        binarization=binarization,
        eval_seed=eval_seed,
    )
    metrics = {"model": name, **measured}
    metrics["recorded"] = {k: record.get(k) for k in ("epochs", "test", "check")}
    x = mnist.evaluation_images(data.test_images[:64], binarization=binarization, seed=eval_seed)
    metrics["pictures"] = save_pictures(
        model, os.fspath(workdir), x, jnp.asarray(data.test_labels[:64]), jax.random.key(1)
    )
    reporting.write_json(workdir / "metrics.json", metrics)
    return metrics


def export(
    run_dir: str | os.PathLike,
    config: Config,
    name: str,
    *,
    eval_samples: int = 5000,
    data: mnist.Mnist | None = None,
    data_dir: str | os.PathLike | None = None,
    directory: str | os.PathLike = pretrained.PRETRAINED_DIR,
) -> dict:
    """Exports the latest checkpoint of the run in ``run_dir`` (trained with ``config``).

    Raises:
      ValueError: the run's ``metrics.json`` (written when its training ended) records a
        configuration other than ``config``: its record would describe another model.
    """
    _check_run_config(run_dir, config)
    data = mnist.load_mnist(data_dir) if data is None else data
    trainer = build(config, data.train_images, workdir=run_dir)
    if not trainer.restore_latest():
        raise FileNotFoundError(f"export: no checkpoint in {Path(run_dir) / 'checkpoints'}.")
    model = nnx.merge(trainer.graphdef, trainer.state)[0]
    history = trainer.history
    settings = {"binarization": config.train.binarization, "eval_seed": config.eval_seed}
    record = {
        "epochs": trainer.epochs_done,
        "trained_with": dataclasses.asdict(config),
        "test": measure(model, data, eval_samples=eval_samples, **settings),
        "check": reproducibility_check(model, data, **settings),
        "test_curve": [
            {k: r[k] for k in r if k == "epoch" or k.startswith("test_")}
            for r in history
            if any(k.startswith("test_nll") for k in r)
        ],
    }
    pretrained.export_pretrained(model, config.model, name, record, directory=directory)
    return record


def _check_run_config(run_dir: str | os.PathLike, config: Config) -> None:
    """The configuration the run recorded (if its training ended) must be ``config``."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        return
    recorded = json.loads(path.read_text()).get("config")
    # Through JSON both ways, so that tuples and lists compare equal.
    expected = json.loads(json.dumps(dataclasses.asdict(config)))
    if recorded is not None and recorded != expected:
        differing = training.differing_fields(recorded, expected)
        raise ValueError(
            f"export: the run in {run_dir} was trained with another configuration than the "
            f"one given (differing fields: {', '.join(differing)}); export it with its own."
        )

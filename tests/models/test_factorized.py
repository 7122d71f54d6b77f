"""Factorized Bernoulli model: the shared likelihood helper, the closed-form optimum that optax
training must reach on real MNIST, determinism, sampling and the example end to end."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from examples import factorized_bernoulli as example
from models import factorized
from models import mnist as mnist_data  # `mnist` is the fixture with the arrays
from models.training import TrainConfig, Trainer


def tol(dtype) -> float:
    """Relative tolerance for sums of a few hundred log-probabilities in ``dtype``."""
    return 1e-5 if jnp.dtype(dtype) == jnp.float32 else 1e-12


@pytest.mark.parametrize(("grey", "num_components"), [(False, 7), (True, 1)])
def test_component_log_likelihoods_matches_bernoulli_log_prob(grey, num_components):
    from genmath import bernoulli

    key_x, key_l = jax.random.split(jax.random.key(0))
    x = jax.random.uniform(key_x, (5, 3, 784))
    x = x if grey else (x < 0.3).astype(x.dtype)
    logits = 3.0 * jax.random.normal(key_l, (num_components, 784))
    got = jax.jit(factorized.component_log_likelihoods)(x, logits)
    want = bernoulli.log_prob(x[..., None, :], logits=logits, axis=-1)
    assert got.shape == (5, 3, num_components)
    np.testing.assert_allclose(got, want, rtol=tol(got.dtype))


def test_component_log_likelihoods_nan_outside_unit_interval():
    x = jnp.zeros((2, 784)).at[1, 5].set(1.5)
    out = factorized.component_log_likelihoods(x, jnp.zeros((3, 784)))
    assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1]))


def test_bad_image_shape_is_a_clear_error():
    model = factorized.FactorizedBernoulli()
    with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., 28, 28\)"):
        model.log_prob(jnp.zeros((4, 27, 28)))
    with pytest.raises(ValueError, match="`logits` must be floating of shape"):
        factorized.FactorizedBernoulli(jnp.zeros((28, 28)))


def test_loss_gradient_vanishes_at_closed_form(mnist):
    """The derivation in the module docstring: the expected loss is stationary at the
    smoothed mean. Grey levels give the exact expectation over dynamic binarisations."""
    images = mnist.train_images[:2000]
    grey = mnist_data.binarize(images, mode="grey")
    logits = factorized.closed_form_logits(images, pseudo_count=2.0)
    loss_fn = factorized.make_loss_fn(images.shape[0], pseudo_count=2.0)

    def loss(logits):
        model = factorized.FactorizedBernoulli(logits)
        return loss_fn(model, grey, None, None)[0]

    grad = jax.jit(jax.grad(loss))(logits)
    # Each pixel's gradient is (mean - theta) + (alpha/N)(1 - 2 theta); float32 rounding of
    # theta and of the 2000-image mean limits how small it gets.
    assert float(jnp.max(jnp.abs(grad))) < 50 * jnp.finfo(jnp.float32).eps


def test_trained_nll_agrees_with_closed_form(mnist):
    """Adam with a cosine schedule on the full training set, dynamic binarisation: its test
    NLL is within 0.05 nats of the closed-form MLE (smoothed per-pixel training means)."""
    config = TrainConfig(epochs=3, batch_size=256, learning_rate=0.1, seed=0)
    n = mnist.train_images.shape[0]
    tx = factorized.make_optimizer(config.learning_rate, example.train_steps(n, config))
    trainer = Trainer(
        factorized.FactorizedBernoulli(), tx, factorized.make_loss_fn(n, pseudo_count=1.0), config
    )
    trainer.fit(mnist.train_images, mnist.train_labels, progress=False)
    x_test = mnist_data.fixed_binarization(mnist.test_images, seed=0)
    trained = float(factorized.evaluate_nll(trainer.model, x_test))
    closed_model = factorized.FactorizedBernoulli(
        factorized.closed_form_logits(mnist.train_images, pseudo_count=1.0)
    )
    closed = float(factorized.evaluate_nll(closed_model, x_test))
    assert abs(trained - closed) <= 0.05, (trained, closed)
    # The known figure for this model on MNIST, as a check of the data and evaluation path.
    assert abs(closed - 205.8) < 0.2, closed
    assert abs(factorized.bits_per_dim(closed) - closed / (784 * np.log(2.0))) < 1e-6


def test_training_is_deterministic(mnist):
    """Same seed, same parameters: an epoch rerun from the same initial state (and with the
    trainer's keys, which derive from (seed, epoch) alone) gives bit-identical logits."""
    images, labels = mnist.train_images[:4096], mnist.train_labels[:4096]
    config = TrainConfig(epochs=1, batch_size=128, learning_rate=0.1, seed=3)
    tx = factorized.make_optimizer(0.1, example.train_steps(4096, config))
    trainer = Trainer(factorized.FactorizedBernoulli(), tx, factorized.make_loss_fn(4096), config)
    initial = jax.tree.map(jnp.copy, trainer.state)
    runs = []
    for _ in range(2):
        trainer.state, trainer.epochs_done = jax.tree.map(jnp.copy, initial), 0
        trainer.fit(images, labels, resume=False, progress=False)
        runs.append(np.asarray(trainer.model.logits[...]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], 0.0)
    # A different seed draws other batches and binarisations.
    trainer.config = TrainConfig(epochs=1, batch_size=128, learning_rate=0.1, seed=4)
    trainer.state, trainer.epochs_done = initial, 0
    trainer.fit(images, labels, resume=False, progress=False)
    assert not np.array_equal(np.asarray(trainer.model.logits[...]), runs[0])


def test_samples_follow_theta():
    logits = jnp.linspace(-3.0, 3.0, 784)
    model = factorized.FactorizedBernoulli(logits)
    x = jax.jit(model.sample, static_argnums=1)(jax.random.key(1), 4000)
    assert x.shape == (4000, 28, 28) and x.dtype == logits.dtype
    assert set(np.unique(np.asarray(x))) <= {0.0, 1.0}
    theta = np.asarray(model.probs)
    # Squared errors in units of their variance average to 1 over the 784 pixels (standard
    # deviation about sqrt(2 / 784) = 0.05).
    ratio = np.mean((np.asarray(x.mean(0)) - theta) ** 2 / (theta * (1 - theta) / 4000))
    assert 0.7 < ratio < 1.3, ratio


def test_closed_form_rejects_zero_pseudo_count(mnist):
    with pytest.raises(ValueError, match="`pseudo_count` must be > 0"):
        factorized.closed_form_logits(mnist.test_images[:10], pseudo_count=0.0)
    with pytest.raises(ValueError, match="`binarization` must be one of"):
        factorized.closed_form_logits(mnist.test_images[:10], binarization="otsu")


# ----------------------------------------------------------------------------- examples

EXAMPLES = ["factorized_bernoulli", "mixture", "naive_bayes"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_reject_missing_data_dir(name, tmp_path):
    import importlib

    module = importlib.import_module(f"examples.{name}")
    missing = tmp_path / "no-such-mnist"
    argv = ["--data-dir", str(missing), "--workdir", str(tmp_path / "run"), "--no-progress"]
    with pytest.raises(FileNotFoundError, match=r"no-such-mnist.*does not exist"):
        module.main(argv)
    # From the command line: a one-line message instead of a traceback.
    with pytest.raises(SystemExit, match=r"error: MNIST data folder .*no-such-mnist"):
        example.run_cli(module.main, argv)


def test_example_end_to_end(mnist_dir, tfds_dir, tmp_path, monkeypatch, mnist):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    workdir = tmp_path / "run"
    metrics = example.main([
        "--data-dir", str(mnist_dir), "--workdir", str(workdir), "--epochs", "1",
        "--train-examples", "2048", "--test-examples", "500", "--no-progress",
    ])
    written = json.loads((workdir / "metrics.json").read_text())
    assert written["test_nll_nats"] == pytest.approx(metrics["test_nll_nats"])
    for key in ("test_bits_per_dim", "binarization", "seed", "device", "wall_time_s"):
        assert key in written
    assert written["binarization"] == "dynamic" and written["seed"] == 0
    # 16 Adam steps from uniform pixels (784 log 2 nats): a clear improvement already.
    assert written["test_nll_nats"] < 784 * np.log(2.0) - 50
    for picture in written["pictures"]:
        assert (workdir / picture).stat().st_size > 0
    assert (workdir / "checkpoints").is_dir()

"""Mixture of Bernoullis: exact likelihood against brute force, training with optax and EM on
real MNIST, sampling, argument checks and the example end to end."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from examples import mixture as example
from examples.factorized_bernoulli import train_steps
from models import factorized, mixture
from models import mnist as mnist_data  # `mnist` is the fixture with the arrays
from models.training import TrainConfig, Trainer


def tol(dtype) -> float:
    """Relative tolerance for log-likelihoods summed over 784 pixels in ``dtype``."""
    return 2e-6 if jnp.dtype(dtype) == jnp.float32 else 1e-12


def brute_force_log_prob(x: np.ndarray, logits: np.ndarray, mixture_logits: np.ndarray):
    """log p(x) by explicit float64 loops over components and pixels."""
    logits = logits.astype(np.float64)
    top = mixture_logits.max()
    log_weights = mixture_logits - top - math.log(np.sum(np.exp(mixture_logits - top)))
    out = []
    for image in x.reshape(x.shape[0], -1).astype(np.float64):
        log_joint = []
        for k in range(logits.shape[0]):
            total = log_weights[k]
            for i in range(logits.shape[1]):
                theta = 1.0 / (1.0 + math.exp(-logits[k, i]))
                total += math.log(theta) if image[i] == 1.0 else math.log1p(-theta)
            log_joint.append(total)
        top = max(log_joint)
        out.append(top + math.log(sum(math.exp(v - top) for v in log_joint)))
    return np.array(out)


@pytest.fixture(scope="module")
def small_mixture(mnist):
    images = mnist.train_images[:2000]
    model = mixture.MixtureOfBernoullis(5, key=jax.random.key(0), init_images=images)
    # Unequal weights, so that they matter in the check.
    model.mixture_logits.set_value(jnp.linspace(-1.0, 1.0, 5, dtype=model.logits.dtype))
    return model


def test_exact_log_likelihood_matches_brute_force(mnist, small_mixture):
    x = mnist_data.fixed_binarization(mnist.test_images[:3], seed=0)
    got = jax.jit(lambda m, x: m.log_prob(x))(small_mixture, x)
    want = brute_force_log_prob(
        np.asarray(x), np.asarray(small_mixture.logits[...]),
        np.asarray(small_mixture.mixture_logits[...], np.float64),
    )
    assert got.shape == (3,)
    np.testing.assert_allclose(np.asarray(got), want, rtol=tol(got.dtype))


def test_responsibilities_are_a_distribution(mnist, small_mixture):
    x = mnist_data.fixed_binarization(mnist.test_images[:50], seed=1)
    log_r = jax.jit(lambda m, x: m.log_responsibilities(x))(small_mixture, x)
    assert log_r.shape == (50, 5)
    np.testing.assert_allclose(jnp.sum(jnp.exp(log_r), axis=-1), 1.0, rtol=10 * tol(log_r.dtype))


def test_adam_training_beats_the_factorized_model(mnist):
    """One epoch of Adam on the exact likelihood (K = 20, 20000 training images) ends far
    below the factorized model's optimum (the K = 1 special case) on the same images."""
    images, labels = mnist.train_images[:20000], mnist.train_labels[:20000]
    config = TrainConfig(epochs=1, batch_size=128, learning_rate=0.03, seed=0)
    model = mixture.MixtureOfBernoullis(20, key=jax.random.key(0), init_images=images)
    x_test = mnist_data.fixed_binarization(mnist.test_images[:2000], seed=0)
    initial = float(factorized.evaluate_nll(model, x_test))
    tx = factorized.make_optimizer(config.learning_rate, train_steps(20000, config))
    trainer = Trainer(model, tx, factorized.make_loss_fn(20000), config)
    history = trainer.fit(images, labels, progress=False)
    trained = float(factorized.evaluate_nll(trainer.model, x_test))
    closed = factorized.FactorizedBernoulli(factorized.closed_form_logits(images))
    baseline = float(factorized.evaluate_nll(closed, x_test))
    assert math.isfinite(history[-1]["nll"])
    assert trained < initial - 10.0, (initial, trained)
    assert trained < baseline - 25.0, (baseline, trained)


def test_em_with_one_component_is_the_closed_form(mnist):
    """With K = 1 every responsibility is 1, so the M-step is the smoothed mean."""
    images = mnist.train_images[:5000]
    model = mixture.MixtureOfBernoullis(1, key=jax.random.key(0))
    mixture.fit_em(model, images, iterations=1, binarization="grey", progress=False)
    want = factorized.closed_form_logits(images, binarization="grey")
    np.testing.assert_allclose(model.logits[...][0], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.log_weights, [0.0], atol=1e-6)


def test_em_improves_and_is_deterministic(mnist):
    images = mnist.train_images[:2000]

    def run(seed):
        model = mixture.MixtureOfBernoullis(20, key=jax.random.key(1), init_images=images)
        history = mixture.fit_em(model, images, iterations=3, seed=seed, progress=False)
        return history, np.asarray(model.logits[...]), np.asarray(model.log_weights)

    history, logits, log_weights = run(0)
    assert history[-1] < history[0] - 10.0, history
    np.testing.assert_allclose(np.sum(np.exp(log_weights)), 1.0, rtol=1e-5)
    again = run(0)
    np.testing.assert_array_equal(logits, again[1])
    assert history == again[0]
    assert not np.array_equal(logits, run(1)[1])


def test_samples(small_mixture):
    images, z = jax.jit(lambda m, k: m.sample(k, 300))(small_mixture, jax.random.key(2))
    assert images.shape == (300, 28, 28) and z.shape == (300,)
    assert set(np.unique(np.asarray(images))) <= {0.0, 1.0}
    assert np.all((np.asarray(z) >= 0) & (np.asarray(z) < 5))
    # Component frequencies follow the weights (0.05 is > 4 standard errors at n = 300).
    counts = np.bincount(np.asarray(z), minlength=5) / 300
    np.testing.assert_allclose(counts, np.exp(small_mixture.log_weights), atol=0.1)


def test_argument_checks(mnist):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`num_components` must be >= 1"):
        mixture.MixtureOfBernoullis(0, key=key)
    with pytest.raises(TypeError, match="`num_components` must be an int"):
        mixture.MixtureOfBernoullis(2.5, key=key)
    with pytest.raises(ValueError, match=r"`num_components` must be in \[1, 10\]"):
        mixture.MixtureOfBernoullis(11, key=key, init_images=mnist.train_images[:10])
    with pytest.raises(ValueError, match="`smoothing` must be in"):
        mixture.MixtureOfBernoullis(
            2, key=key, init_images=mnist.train_images[:10], init_smoothing=0.0
        )
    model = mixture.MixtureOfBernoullis(2, key=key)
    with pytest.raises(ValueError, match="`binarization` must be one of"):
        mixture.fit_em(model, mnist.train_images[:10], iterations=1, binarization="otsu")
    with pytest.raises(ValueError, match="must be > 0"):
        mixture.fit_em(model, mnist.train_images[:10], iterations=1, pseudo_count=0.0)


@pytest.mark.parametrize("algorithm", ["adam", "em"])
def test_example_end_to_end(algorithm, mnist_dir, tfds_dir, tmp_path, monkeypatch, mnist):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    workdir = tmp_path / "run"
    example.main([
        "--data-dir", str(mnist_dir), "--workdir", str(workdir), "--epochs", "2",
        "--num-components", "10", "--algorithm", algorithm,
        "--train-examples", "2048", "--test-examples", "500", "--no-progress",
    ])
    metrics = json.loads((workdir / "metrics.json").read_text())
    for key in ("test_bits_per_dim", "binarization", "seed", "device", "wall_time_s"):
        assert key in metrics
    assert metrics["num_components"] == 10 and metrics["algorithm"] == algorithm
    assert math.isfinite(metrics["test_nll_nats"])
    assert metrics["test_nll_nats"] < metrics["initial_test_nll_nats"]
    for picture in metrics["pictures"]:
        assert (workdir / picture).stat().st_size > 0

"""Class-conditional factorized Bernoulli (naive Bayes): Bayes' rule, accuracy on real MNIST,
agreement of optax training with the closed form, conditional samples and the example."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from examples import naive_bayes as example
from examples.factorized_bernoulli import train_steps
from models import class_conditional, factorized
from models import mnist as mnist_data  # `mnist` is the fixture with the arrays
from models.training import TrainConfig, Trainer


def tol(dtype) -> float:
    return 1e-5 if jnp.dtype(dtype) == jnp.float32 else 1e-12


@pytest.fixture(scope="module")
def closed(mnist):
    return class_conditional.closed_form(mnist.train_images, mnist.train_labels)


@pytest.fixture(scope="module")
def x_test(mnist):
    return mnist_data.fixed_binarization(mnist.test_images, seed=0)


def test_posterior_is_bayes_rule(closed, x_test, mnist):
    x, y = x_test[:200], jnp.asarray(mnist.test_labels[:200])

    @jax.jit
    def parts(x, y):
        return (closed.log_posterior(x), closed.log_joint(x), closed.log_prob(x),
                closed.log_prob(x, y))

    log_post, log_joint, log_px, log_pxy = parts(x, y)
    assert log_post.shape == (200, 10) and log_px.shape == (200,)
    t = tol(log_post.dtype)
    np.testing.assert_allclose(jnp.sum(jnp.exp(log_post), axis=-1), 1.0, rtol=10 * t)
    # p(y|x) = p(x, y) / p(x), and log p(x, y) for the given labels is the log-joint's entry.
    # The difference of two ~-150-nat numbers carries their absolute rounding error.
    scale = float(jnp.max(jnp.abs(log_joint)))
    atol = 8 * float(jnp.finfo(log_post.dtype).eps) * scale
    np.testing.assert_allclose(log_post, log_joint - log_px[:, None], rtol=t, atol=atol)
    np.testing.assert_allclose(
        log_pxy, jnp.take_along_axis(log_joint, y[:, None], axis=-1)[:, 0], rtol=t
    )
    # p(x) >= p(x, y), up to rounding where p(y|x) is 1.
    assert np.all(np.asarray(log_px) >= np.asarray(log_pxy) * (1.0 + t))


def test_closed_form_accuracy(closed, x_test, mnist):
    scores = class_conditional.evaluate(closed, x_test, mnist.test_labels)
    # Bernoulli naive Bayes on binarised MNIST: about 84%; chance is 10%.
    assert 0.80 < scores["accuracy"] < 0.88, scores
    # Knowing the class can only help: -log p(x, y) > -log p(x), and the class-conditional
    # model is a better density than the factorized one (about 205.8 nats).
    assert scores["nll"] < scores["nll_joint"]
    single = factorized.FactorizedBernoulli(factorized.closed_form_logits(mnist.train_images))
    assert scores["nll"] < float(factorized.evaluate_nll(single, x_test)) - 20.0


def test_optax_training_agrees_with_closed_form(closed, x_test, mnist):
    config = TrainConfig(epochs=2, batch_size=256, learning_rate=0.1, seed=0)
    n = mnist.train_images.shape[0]
    tx = factorized.make_optimizer(config.learning_rate, train_steps(n, config))
    trainer = Trainer(
        class_conditional.ClassConditionalBernoulli(), tx, class_conditional.make_loss_fn(n),
        config,
    )
    trainer.fit(mnist.train_images, mnist.train_labels, progress=False)
    trained = class_conditional.evaluate(trainer.model, x_test, mnist.test_labels)
    reference = class_conditional.evaluate(closed, x_test, mnist.test_labels)
    assert abs(trained["accuracy"] - reference["accuracy"]) < 0.01, (trained, reference)
    assert abs(trained["nll"] - reference["nll"]) < 0.5, (trained, reference)
    # Both classify the test images alike, not merely equally often right.
    same = jnp.mean(trainer.model.predict(x_test) == closed.predict(x_test))
    assert float(same) > 0.98, float(same)


def test_conditional_samples(closed):
    labels = jnp.repeat(jnp.array([0, 1, 7]), 400)
    x = jax.jit(closed.sample)(jax.random.key(0), labels)
    assert x.shape == (1200, 28, 28)
    assert set(np.unique(np.asarray(x))) <= {0.0, 1.0}
    means = np.asarray(x).reshape(3, 400, 784).mean(axis=1)
    theta = np.asarray(closed.probs).reshape(10, 784)
    for row, digit in enumerate([0, 1, 7]):
        # Each class's sample mean is theta_y: the squared errors in units of their variance
        # theta (1 - theta) / n average to 1 over the 784 pixels (standard deviation about
        # sqrt(2 / 784) = 0.05), whatever the per-pixel distributions' tails.
        variance = theta[digit] * (1 - theta[digit]) / 400
        ratio = np.mean((means[row] - theta[digit]) ** 2 / variance)
        assert 0.7 < ratio < 1.3, ratio
        # ... and nearer to its own template than to any other class's.
        distances = np.sum((theta - means[row]) ** 2, axis=1)
        assert np.argmin(distances) == digit


def test_invalid_labels_give_nan(closed):
    x = closed.sample(jax.random.key(0), jnp.array([3, 10, -1]))
    assert np.all(np.isfinite(x[0])) and np.all(np.isnan(x[1:]))
    log_pxy = closed.log_prob(jnp.zeros((2, 28, 28)), jnp.array([2, 12]))
    assert np.isfinite(log_pxy[0]) and np.isnan(log_pxy[1])
    with pytest.raises(TypeError, match="`labels` must be integers"):
        closed.sample(jax.random.key(0), jnp.array([1.0]))


def test_argument_checks(mnist):
    with pytest.raises(ValueError, match="`labels` must be"):
        class_conditional.closed_form(mnist.test_images[:10], mnist.test_labels[:10] + 10)
    with pytest.raises(ValueError, match="must be > 0"):
        class_conditional.closed_form(
            mnist.test_images[:10], mnist.test_labels[:10], pseudo_count=0.0
        )
    with pytest.raises(ValueError, match="`num_classes` must be >= 2"):
        class_conditional.ClassConditionalBernoulli(1)
    with pytest.raises(ValueError, match="`logits` must be floating of shape"):
        class_conditional.ClassConditionalBernoulli(3, logits=jnp.zeros((10, 784)))


def test_example_end_to_end(mnist_dir, tfds_dir, tmp_path, monkeypatch, mnist):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    workdir = tmp_path / "run"
    example.main([
        "--data-dir", str(mnist_dir), "--workdir", str(workdir), "--epochs", "1",
        "--logreg-epochs", "1", "--train-examples", "2048", "--test-examples", "500",
        "--no-progress",
    ])
    metrics = json.loads((workdir / "metrics.json").read_text())
    for key in ("test_nll_nats", "test_bits_per_dim", "binarization", "seed", "device",
                "wall_time_s"):
        assert key in metrics
    assert math.isfinite(metrics["test_nll_nats"])
    # Even this short run classifies far above chance (10%), and so does the baseline.
    assert metrics["test_accuracy"] > 0.5
    assert metrics["logistic_regression_test_accuracy"] > 0.5
    for picture in metrics["pictures"]:
        assert (workdir / picture).stat().st_size > 0
    assert (workdir / example.LOGREG_DIR / "checkpoints").is_dir()

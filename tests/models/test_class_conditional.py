"""Class-conditional factorized Bernoulli (naive Bayes): Bayes' rule, evaluation (compiled
once), agreement of optax training with the closed form, conditional samples and the example.

Mechanism tests run on small synthetic MNIST-shaped data with class structure; the accuracy
of the closed form and of optax training is checked on real MNIST.
"""

from __future__ import annotations

import json
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from examples.naive_bayes import configs
from examples.naive_bayes import main as cli
from examples.naive_bayes import train as example
from models import class_conditional, factorized
from models import mnist as mnist_data  # `mnist` is the fixture with the arrays
from models.training import Batch, ConfigError, TrainConfig, Trainer
from tests.synthetic import compilations, make_synthetic_mnist


def tol(dtype) -> float:
    return 1e-5 if jnp.dtype(dtype) == jnp.float32 else 1e-12


@pytest.fixture(scope="module")
def synthetic() -> mnist_data.Mnist:
    return make_synthetic_mnist()


@pytest.fixture(scope="module")
def synthetic_closed(synthetic):
    return class_conditional.closed_form(synthetic.train_images, synthetic.train_labels)


@pytest.fixture(scope="module")
def synthetic_test(synthetic):
    x = mnist_data.fixed_binarization(synthetic.test_images, seed=0)
    return x, jnp.asarray(synthetic.test_labels)


@pytest.fixture(scope="module")
def closed(mnist):
    return class_conditional.closed_form(mnist.train_images, mnist.train_labels)


@pytest.fixture(scope="module")
def x_test(mnist):
    return mnist_data.fixed_binarization(mnist.test_images, seed=0)


# ------------------------------------------------------------------ the model


def test_posterior_is_bayes_rule(synthetic_closed, synthetic_test):
    closed = synthetic_closed
    x, y = synthetic_test[0][:200], synthetic_test[1][:200]

    @jax.jit
    def parts(x, y):
        return (
            closed.log_posterior(x),
            closed.log_joint(x),
            closed.log_prob(x),
            closed.log_prob(x, y),
        )

    log_post, log_joint, log_px, log_pxy = parts(x, y)
    assert log_post.shape == (200, 10) and log_px.shape == (200,)
    t = tol(log_post.dtype)
    np.testing.assert_allclose(jnp.sum(jnp.exp(log_post), axis=-1), 1.0, rtol=10 * t)
    # p(y|x) = p(x, y) / p(x), and log p(x, y) for the given labels is the log-joint's entry.
    # The difference of two large negative numbers carries their absolute rounding error.
    scale = float(jnp.max(jnp.abs(log_joint)))
    atol = 8 * float(jnp.finfo(log_post.dtype).eps) * scale
    np.testing.assert_allclose(log_post, log_joint - log_px[:, None], rtol=t, atol=atol)
    np.testing.assert_allclose(
        log_pxy, jnp.take_along_axis(log_joint, y[:, None], axis=-1)[:, 0], rtol=t
    )
    # p(x) >= p(x, y), up to rounding where p(y|x) is 1.
    assert np.all(np.asarray(log_px) >= np.asarray(log_pxy) * (1.0 + t))


def test_evaluate_matches_the_model_image_by_image(synthetic_closed, synthetic_test):
    """Batches that do not divide the images: every image counts exactly once."""
    x, y = synthetic_test[0][:257], synthetic_test[1][:257]
    scores = class_conditional.evaluate(synthetic_closed, x, y, batch_size=100)
    log_px = np.asarray(synthetic_closed.log_prob(x), np.float64)
    log_pxy = np.asarray(synthetic_closed.log_prob(x, y), np.float64)
    correct = np.asarray(synthetic_closed.predict(x)) == np.asarray(y)
    assert scores["accuracy"] == pytest.approx(np.mean(correct), abs=1e-12)
    assert scores["nll"] == pytest.approx(-np.mean(log_px), rel=tol(x.dtype))
    assert scores["nll_joint"] == pytest.approx(-np.mean(log_pxy), rel=tol(x.dtype))
    # The synthetic classes are separable: Bayes' rule finds them (p(y|x) is then about 1,
    # so -log p(x) is at most, and nearly, -log p(x, y)).
    assert scores["accuracy"] > 0.95 and scores["nll"] <= scores["nll_joint"]


def test_second_evaluation_compiles_nothing(synthetic, synthetic_closed, synthetic_test, caplog):
    x, y = synthetic_test[0][:300], synthetic_test[1][:300]
    other = class_conditional.closed_form(
        synthetic.train_images[:1000], synthetic.train_labels[:1000], pseudo_count=2.0
    )
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        first = class_conditional.evaluate(synthetic_closed, x, y)
        assert compilations(caplog), "the first evaluation of this shape should compile"
        caplog.clear()
        again = class_conditional.evaluate(synthetic_closed, x, y)
        # Another model of the same structure reuses the executable too.
        class_conditional.evaluate(other, x, y)
        assert compilations(caplog) == []
    assert again == first


def test_loss_takes_a_batch(synthetic, synthetic_closed):
    x = mnist_data.binarize(synthetic.train_images[:64], mode="threshold")
    y = jnp.asarray(synthetic.train_labels[:64])
    loss_fn = class_conditional.make_loss_fn(1000, 2.0, 3.0)
    loss, metrics = jax.jit(loss_fn)(synthetic_closed, Batch(x, y), jax.random.key(0), 0)
    nll = -jnp.mean(synthetic_closed.log_prob(x, y))
    prior = synthetic_closed.log_prior(2.0, 3.0)
    np.testing.assert_allclose(metrics["nll_joint"], nll, rtol=1e-5)
    np.testing.assert_allclose(loss, nll - prior / 1000, rtol=1e-5)
    np.testing.assert_allclose(metrics["accuracy"], jnp.mean(synthetic_closed.predict(x) == y))


def test_closed_form_accuracy(closed, x_test, mnist):
    scores = class_conditional.evaluate(closed, x_test, mnist.test_labels)
    # Bernoulli naive Bayes on binarised MNIST: about 84%; chance is 10%.
    assert 0.80 < scores["accuracy"] < 0.88, scores
    # Knowing the class can only help: -log p(x, y) > -log p(x), and the class-conditional
    # model is a better density than the factorized one (about 205.8 nats).
    assert scores["nll"] < scores["nll_joint"]
    single = factorized.FactorizedBernoulli(factorized.closed_form_logits(mnist.train_images))
    assert scores["nll"] < factorized.evaluate_nll(single, x_test) - 20.0


def test_optax_training_agrees_with_closed_form(closed, x_test, mnist):
    config = TrainConfig(epochs=2, batch_size=256, learning_rate=0.1, seed=0)
    n = mnist.train_images.shape[0]
    tx = factorized.make_optimizer(config.learning_rate, factorized.train_steps(n, config))
    trainer = Trainer(
        class_conditional.ClassConditionalBernoulli(),
        tx,
        class_conditional.make_loss_fn(n),
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


def test_optax_training_reaches_the_closed_form(synthetic, synthetic_closed, synthetic_test):
    """The same mechanism on synthetic data: the trained model approaches the closed form."""
    config = TrainConfig(epochs=3, batch_size=100, learning_rate=0.1, seed=0)
    n = synthetic.train_images.shape[0]
    tx = factorized.make_optimizer(config.learning_rate, factorized.train_steps(n, config))
    trainer = Trainer(
        class_conditional.ClassConditionalBernoulli(),
        tx,
        class_conditional.make_loss_fn(n),
        config,
    )
    history = trainer.fit(synthetic.train_images, synthetic.train_labels, progress=False)
    assert history[-1]["nll_joint"] < history[0]["nll_joint"]
    trained = class_conditional.evaluate(trainer.model, *synthetic_test)
    reference = class_conditional.evaluate(synthetic_closed, *synthetic_test)
    assert abs(trained["accuracy"] - reference["accuracy"]) < 0.02, (trained, reference)
    assert abs(trained["nll"] - reference["nll"]) < 2.0, (trained, reference)


def test_conditional_samples(synthetic_closed):
    closed = synthetic_closed
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


def test_invalid_labels_give_nan(synthetic_closed):
    closed = synthetic_closed
    x = closed.sample(jax.random.key(0), jnp.array([3, 10, -1]))
    assert np.all(np.isfinite(x[0])) and np.all(np.isnan(x[1:]))
    log_pxy = closed.log_prob(jnp.zeros((2, 28, 28)), jnp.array([2, 12]))
    assert np.isfinite(log_pxy[0]) and np.isnan(log_pxy[1])
    with pytest.raises(TypeError, match="`labels` must be integers"):
        closed.sample(jax.random.key(0), jnp.array([1.0]))


def test_argument_checks(synthetic, synthetic_closed):
    images, labels = synthetic.test_images[:10], synthetic.test_labels[:10]
    with pytest.raises(ValueError, match="`labels` must be"):
        class_conditional.closed_form(images, labels + 10)
    with pytest.raises(ValueError, match="must be > 0"):
        class_conditional.closed_form(images, labels, pseudo_count=0.0)
    with pytest.raises(ValueError, match="`num_classes` must be >= 2"):
        class_conditional.ClassConditionalBernoulli(1)
    with pytest.raises(ValueError, match="`logits` must be floating of shape"):
        class_conditional.ClassConditionalBernoulli(3, logits=jnp.zeros((10, 784)))
    x = jnp.zeros((4, 28, 28))
    with pytest.raises(ValueError, match=r"evaluate: `labels` must have shape \(4,\)"):
        class_conditional.evaluate(synthetic_closed, x, jnp.zeros((3,), jnp.int32))
    with pytest.raises(TypeError, match="evaluate: `labels` must be integers"):
        class_conditional.evaluate(synthetic_closed, x, jnp.zeros((4,)))
    with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., 28, 28\)"):
        class_conditional.evaluate(
            synthetic_closed, jnp.zeros((4, 27, 28)), jnp.zeros(4, jnp.int32)
        )


def test_logistic_regression_baseline(synthetic, synthetic_test):
    """The discriminative counterpart trains through the same Trainer and classifies."""
    config = TrainConfig(epochs=2, batch_size=100, learning_rate=0.01, seed=0)
    tx = factorized.make_optimizer(0.01, factorized.train_steps(2000, config), b2=0.999)
    trainer = Trainer(
        class_conditional.LogisticRegression(), tx, class_conditional.logistic_loss, config
    )
    history = trainer.fit(synthetic.train_images, synthetic.train_labels, progress=False)
    assert history[-1]["loss"] < history[0]["loss"]
    assert class_conditional.classifier_accuracy(trainer.model, *synthetic_test) > 0.9


# ----------------------------------------------------------------------------- example


def test_config_checks_every_field():
    assert configs.get_config() == configs.Config()
    assert configs.get_config().logreg_epochs == 5
    assert configs.Config(logreg_epochs=0).logreg_epochs == 0  # 0 skips the baseline
    for field, value in [
        ("pseudo_count", -1.0),
        ("class_pseudo_count", 0.0),
        ("logreg_epochs", -1),
        ("logreg_learning_rate", 0.0),
        ("eval_seed", "0"),
        ("test_examples", 0),
    ]:
        with pytest.raises(ConfigError, match=f"`{field}`") as error:
            configs.Config(**{field: value})
        assert error.value.field == field


@pytest.fixture
def fake_load(monkeypatch, synthetic):
    """``load_mnist`` returns the synthetic arrays, so the command line runs without MNIST."""
    monkeypatch.setattr(mnist_data, "load_mnist", lambda data_dir=None, **kwargs: synthetic)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--pseudo-count", "-1"], "--pseudo-count"),
        (["--class-pseudo-count", "0"], "--class-pseudo-count"),
        (["--logreg-epochs", "-1"], "--logreg-epochs"),
        (["--logreg-learning-rate", "0"], "--logreg-learning-rate"),
        (["--train-examples", "-5"], "--train-examples"),
        # Checked against the data: 2000 synthetic training images.
        (["--train-examples", "2001"], "--train-examples"),
    ],
)
def test_cli_rejects_bad_flag_values(argv, flag, fake_load, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--workdir", str(tmp_path / "run"), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}: " in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_example_end_to_end(synthetic, tmp_path):
    workdir = tmp_path / "run"
    config = configs.Config(
        train=TrainConfig(epochs=1, batch_size=128, learning_rate=0.1), logreg_epochs=1
    )
    example.train_and_evaluate(config, workdir, data=synthetic, progress=False)
    metrics = json.loads((workdir / "metrics.json").read_text())
    keys = """test_nll_nats test_bits_per_dim test_nll_joint_nats closed_form_test_accuracy
        closed_form_test_nll_nats logistic_regression_epochs logistic_regression_train_seconds
        pseudo_count class_pseudo_count evaluation_set device train_examples epochs batch_size
        learning_rate train_seconds wall_time_s load_average_1min history config"""
    for key in keys.split():
        assert key in metrics, key
    assert metrics["binarization"] == "dynamic" and metrics["seed"] == 0
    assert math.isfinite(metrics["test_nll_nats"])
    # Even this short run classifies far above chance (10%), and so does the baseline.
    assert metrics["test_accuracy"] > 0.5
    assert metrics["logistic_regression_test_accuracy"] > 0.5
    assert metrics["pictures"] == ["class_samples.png", "class_means.png", "training_curve.png"]
    for picture in metrics["pictures"]:
        assert (workdir / picture).stat().st_size > 0
    assert (workdir / "checkpoints").is_dir()
    assert (workdir / example.LOGREG_DIR / "checkpoints").is_dir()


def test_cli_end_to_end_without_baseline(fake_load, tmp_path, capsys):
    workdir = tmp_path / "run"
    flags = "--epochs 1 --logreg-epochs 0 --test-examples 200 --no-progress"
    metrics = cli.main(["--workdir", str(workdir), *flags.split()])
    assert metrics["logistic_regression_test_accuracy"] is None
    assert metrics["logistic_regression_epochs"] == 0
    assert metrics["config"]["train"]["learning_rate"] == 0.1  # not given: the default
    assert not (workdir / example.LOGREG_DIR).exists()
    assert "test accuracy" in capsys.readouterr().out
    # --no-resume deletes the checkpoints and trains afresh.
    again = cli.main(["--workdir", str(workdir), *flags.split(), "--no-resume"])
    assert again["epochs_run_now"] == 1
    assert again["test_nll_nats"] == metrics["test_nll_nats"]


def test_a_resume_with_fewer_baseline_epochs_names_logreg_epochs(fake_load, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    flags = ["--workdir", workdir, "--epochs", "1", "--test-examples", "100", "--no-progress"]
    cli.main([*flags, "--logreg-epochs", "2"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*flags, "--logreg-epochs", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --logreg-epochs: is 1, but the checkpoint" in err, err

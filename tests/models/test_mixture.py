"""Mixture of Bernoullis: exact likelihood against brute force, training with optax and EM,
sampling, argument checks and the example end to end.

Mechanism tests run on small synthetic MNIST-shaped data; only "a mixture beats the
factorized model" trains on real MNIST.
"""

from __future__ import annotations

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from examples.mixture import configs
from examples.mixture import main as cli
from examples.mixture import train as example
from models import factorized, mixture
from models import mnist as mnist_data  # `mnist` is the fixture with the arrays
from models.training import Batch, ConfigError, TrainConfig, Trainer
from tests.synthetic import make_synthetic_mnist


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
def synthetic() -> mnist_data.Mnist:
    return make_synthetic_mnist()


@pytest.fixture(scope="module")
def small_mixture(synthetic):
    images = synthetic.train_images
    model = mixture.MixtureOfBernoullis(5, key=jax.random.key(0), init_images=images)
    # Unequal weights, so that they matter in the check.
    model.mixture_logits.set_value(jnp.linspace(-1.0, 1.0, 5, dtype=model.logits.dtype))
    return model


def test_exact_log_likelihood_matches_brute_force(synthetic, small_mixture):
    x = mnist_data.fixed_binarization(synthetic.test_images[:3], seed=0)
    got = jax.jit(lambda m, x: m.log_prob(x))(small_mixture, x)
    want = brute_force_log_prob(
        np.asarray(x),
        np.asarray(small_mixture.logits[...]),
        np.asarray(small_mixture.mixture_logits[...], np.float64),
    )
    assert got.shape == (3,)
    np.testing.assert_allclose(np.asarray(got), want, rtol=tol(got.dtype))
    # The shared batched evaluation computes the same numbers.
    np.testing.assert_allclose(
        factorized.log_probs(small_mixture, x, batch_size=2), want, rtol=tol(got.dtype)
    )


def test_responsibilities_are_a_distribution(synthetic, small_mixture):
    x = mnist_data.fixed_binarization(synthetic.test_images[:50], seed=1)
    log_r = jax.jit(lambda m, x: m.log_responsibilities(x))(small_mixture, x)
    assert log_r.shape == (50, 5)
    np.testing.assert_allclose(jnp.sum(jnp.exp(log_r), axis=-1), 1.0, rtol=10 * tol(log_r.dtype))


def test_loss_takes_a_batch_and_adds_both_priors(synthetic, small_mixture):
    x = mnist_data.binarize(synthetic.train_images[:32], mode="threshold")
    batch = Batch(x, jnp.asarray(synthetic.train_labels[:32]))
    loss_fn = factorized.make_loss_fn(500, pseudo_count=2.0, weight_pseudo_count=3.0)
    loss, metrics = loss_fn(small_mixture, batch, jax.random.key(0), jnp.array(0))
    nll = -jnp.mean(small_mixture.log_prob(x))
    prior = small_mixture.log_prior(pseudo_count=2.0, weight_pseudo_count=3.0)
    np.testing.assert_allclose(metrics["nll"], nll, rtol=1e-6)
    np.testing.assert_allclose(loss, nll - prior / 500, rtol=1e-6)


def test_adam_training_beats_the_factorized_model(mnist):
    """One epoch of Adam on the exact likelihood (K = 20, 20000 training images) ends far
    below the factorized model's optimum (the K = 1 special case) on the same images."""
    images, labels = mnist.train_images[:20000], mnist.train_labels[:20000]
    config = TrainConfig(epochs=1, batch_size=128, learning_rate=0.03, seed=0)
    model = mixture.MixtureOfBernoullis(20, key=jax.random.key(0), init_images=images)
    x_test = mnist_data.fixed_binarization(mnist.test_images[:2000], seed=0)
    initial = factorized.evaluate_nll(model, x_test)
    tx = factorized.make_optimizer(config.learning_rate, factorized.train_steps(20000, config))
    trainer = Trainer(model, tx, factorized.make_loss_fn(20000), config)
    history = trainer.fit(images, labels, progress=False)
    trained = factorized.evaluate_nll(trainer.model, x_test)
    closed = factorized.FactorizedBernoulli(factorized.closed_form_logits(images))
    baseline = factorized.evaluate_nll(closed, x_test)
    assert math.isfinite(history[-1]["nll"])
    assert trained < initial - 10.0, (initial, trained)
    assert trained < baseline - 25.0, (baseline, trained)


def test_adam_training_lowers_the_nll(synthetic):
    """The same mechanism on synthetic data: Adam on the exact likelihood improves on the
    initial templates and on the factorized model."""
    images, labels = synthetic.train_images, synthetic.train_labels
    config = TrainConfig(epochs=2, batch_size=100, learning_rate=0.03, seed=0)
    model = mixture.MixtureOfBernoullis(10, key=jax.random.key(0), init_images=images)
    x_test = mnist_data.fixed_binarization(synthetic.test_images, seed=0)
    initial = factorized.evaluate_nll(model, x_test)
    tx = factorized.make_optimizer(config.learning_rate, factorized.train_steps(2000, config))
    trainer = Trainer(model, tx, factorized.make_loss_fn(2000), config)
    history = trainer.fit(images, labels, progress=False)
    trained = factorized.evaluate_nll(trainer.model, x_test)
    closed = factorized.FactorizedBernoulli(factorized.closed_form_logits(images))
    assert history[-1]["nll"] < history[0]["nll"]
    assert trained < initial - 5.0, (initial, trained)
    assert trained < factorized.evaluate_nll(closed, x_test) - 25.0


def test_em_with_one_component_is_the_closed_form(synthetic):
    """With K = 1 every responsibility is 1, so the M-step is the smoothed mean."""
    images = synthetic.train_images
    model = mixture.MixtureOfBernoullis(1, key=jax.random.key(0))
    mixture.fit_em(model, images, iterations=1, binarization="grey", progress=False)
    want = factorized.closed_form_logits(images, binarization="grey")
    np.testing.assert_allclose(model.logits[...][0], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.log_weights, [0.0], atol=1e-6)


def test_em_improves_and_is_deterministic(synthetic):
    images = synthetic.train_images

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
    # Component frequencies follow the weights: a chi-square test on 20000 draws.
    _, z = jax.jit(lambda m, k: m.sample(k, 20_000))(small_mixture, jax.random.key(3))
    counts = np.bincount(np.asarray(z), minlength=5)
    weights = np.exp(np.asarray(small_mixture.log_weights, np.float64))
    expected = counts.sum() * weights / weights.sum()
    assert stats.chisquare(counts, expected).pvalue > 1e-4, (counts, expected)


def test_argument_checks(synthetic):
    key = jax.random.key(0)
    images = synthetic.train_images[:10]
    with pytest.raises(ValueError, match="`num_components` must be >= 1"):
        mixture.MixtureOfBernoullis(0, key=key)
    with pytest.raises(TypeError, match="`num_components` must be an int"):
        mixture.MixtureOfBernoullis(2.5, key=key)
    with pytest.raises(ValueError, match=r"`num_components` must be in \[1, 10\]"):
        mixture.MixtureOfBernoullis(11, key=key, init_images=images)
    with pytest.raises(ValueError, match="`smoothing` must be in"):
        mixture.MixtureOfBernoullis(2, key=key, init_images=images, init_smoothing=0.0)
    model = mixture.MixtureOfBernoullis(2, key=key)
    with pytest.raises(ValueError, match="`binarization` must be one of"):
        mixture.fit_em(model, images, iterations=1, binarization="otsu")
    with pytest.raises(ValueError, match="must be > 0"):
        mixture.fit_em(model, images, iterations=1, pseudo_count=0.0)
    with pytest.raises(ValueError, match="fit_em: `x` must have shape"):
        mixture.fit_em(model, np.zeros((10, 27, 28), np.uint8), iterations=1, progress=False)


# ----------------------------------------------------------------------------- example


def test_config_checks_every_field():
    assert configs.get_config() == configs.Config()
    assert configs.get_config().num_components == 100
    for field, value in [
        ("num_components", 0),
        ("algorithm", "gibbs"),
        ("pseudo_count", -1.0),
        ("weight_pseudo_count", 0.0),
        ("init_smoothing", 0.0),
        ("init_smoothing", 1.5),
        ("eval_seed", None),
        ("train_examples", 0),
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
        (["--num-components", "0"], "--num-components"),
        (["--pseudo-count", "-1"], "--pseudo-count"),
        (["--weight-pseudo-count", "0"], "--weight-pseudo-count"),
        (["--init-smoothing", "2"], "--init-smoothing"),
        (["--test-examples", "0"], "--test-examples"),
        # Checked against the data: 2000 synthetic training images.
        (["--num-components", "2001"], "--num-components"),
        (["--test-examples", "501"], "--test-examples"),
        # EM uses neither: given, they would be recorded but change nothing.
        (["--algorithm", "em", "--batch-size", "50"], "--batch-size"),
        (["--algorithm", "em", "--learning-rate", "0.5"], "--learning-rate"),
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


@pytest.mark.parametrize("algorithm", ["adam", "em"])
def test_example_end_to_end(algorithm, synthetic, tmp_path):
    workdir = tmp_path / "run"
    config = configs.Config(
        train=TrainConfig(epochs=2, batch_size=128, learning_rate=0.03),
        num_components=10,
        algorithm=algorithm,
    )
    example.train_and_evaluate(config, workdir, data=synthetic, progress=False)
    metrics = json.loads((workdir / "metrics.json").read_text())
    keys = """test_bits_per_dim last_epoch_train_nll_nats last_epoch_train_nll_note pseudo_count
        weight_pseudo_count init_smoothing mixture_weights_max mixture_weights_min evaluation_set
        device date train_examples epochs batch_size learning_rate train_seconds wall_time_s
        load_average_1min history config"""
    for key in keys.split():
        assert key in metrics, key
    assert metrics["binarization"] == "dynamic" and metrics["seed"] == 0
    assert metrics["num_components"] == 10 and metrics["algorithm"] == algorithm
    assert len(metrics["history"]) == 2 and metrics["epochs_run_now"] == 2
    assert math.isfinite(metrics["test_nll_nats"])
    assert metrics["test_nll_nats"] < metrics["initial_test_nll_nats"]
    assert metrics["mixture_weights_min"] <= 0.1 <= metrics["mixture_weights_max"]
    assert metrics["pictures"] == ["samples.png", "components.png", "training_curve.png"]
    for picture in metrics["pictures"]:
        assert (workdir / picture).stat().st_size > 0
    # EM keeps no checkpoints; Adam goes through the trainer, which does.
    assert (workdir / "checkpoints").is_dir() == (algorithm == "adam")
    if algorithm == "em":
        assert metrics["batch_size"] == 2000 and metrics["learning_rate"] is None


def test_em_refuses_a_workdir_with_adam_checkpoints(synthetic, tmp_path):
    workdir = tmp_path / "run"
    train = TrainConfig(epochs=1, batch_size=128, learning_rate=0.03)
    adam = configs.Config(train=train, num_components=5, test_examples=100)
    example.train_and_evaluate(adam, workdir, data=synthetic, progress=False)
    em = dataclasses.replace(adam, algorithm="em")
    with pytest.raises(ConfigError, match="Adam run") as error:
        example.train_and_evaluate(em, workdir, data=synthetic, progress=False)
    assert error.value.field == "workdir"
    assert json.loads((workdir / "metrics.json").read_text())["algorithm"] == "adam"
    # Starting afresh deletes the checkpoints, and the Adam logs go with them.
    example.train_and_evaluate(em, workdir, data=synthetic, resume=False, progress=False)
    assert json.loads((workdir / "metrics.json").read_text())["algorithm"] == "em"
    assert not (workdir / "train_log.csv").exists() and not (workdir / "history.json").exists()


def test_cli_end_to_end(fake_load, tmp_path, capsys):
    """The README's command line (`--num-components K --algorithm em`) on synthetic data."""
    workdir = tmp_path / "run"
    flags = "--num-components 5 --algorithm em --epochs 2 --test-examples 200 --no-progress"
    metrics = cli.main(["--workdir", str(workdir), *flags.split()])
    assert metrics["num_components"] == 5 and metrics["algorithm"] == "em"
    assert metrics["config"]["init_smoothing"] == 0.5  # not given: the default
    assert "K=5 (em)" in capsys.readouterr().out
    assert (workdir / "components.png").is_file()

"""Factorized Bernoulli model: the shared likelihood helper, the loss and its closed-form optimum,
evaluation (compiled once), determinism, sampling, and the example end to end.

Mechanism tests run on small synthetic MNIST-shaped data (:mod:`tests.synthetic`); only the
agreement of optax training with the closed form on real MNIST needs the real data.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from examples.factorized_bernoulli import configs
from examples.factorized_bernoulli import main as cli
from examples.factorized_bernoulli import train as example
from models import factorized
from models import mnist as mnist_data  # `mnist` is the fixture with the arrays
from models.training import Batch, ConfigError, TrainConfig, Trainer
from tests.synthetic import compilations, make_synthetic_mnist


def tol(dtype) -> float:
    """Relative tolerance for sums of a few hundred log-probabilities in ``dtype``."""
    return 1e-5 if jnp.dtype(dtype) == jnp.float32 else 1e-12


@pytest.fixture(scope="module")
def synthetic() -> mnist_data.Mnist:
    return make_synthetic_mnist()


def small_config(**train) -> configs.Config:
    return configs.Config(train=TrainConfig(**{"epochs": 1, "learning_rate": 0.1, **train}))


# ------------------------------------------------------------------ likelihood and loss


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
    with pytest.raises(ValueError, match=r"log_probs: `x` must have shape \(\.\.\., 28, 28\)"):
        factorized.evaluate_nll(model, jnp.zeros((4, 27, 28)))
    with pytest.raises(ValueError, match="must be a non-empty batch of images"):
        factorized.evaluate_nll(model, jnp.zeros((784,)))


def test_loss_gradient_vanishes_at_closed_form(synthetic):
    """The derivation in the module docstring: the expected loss is stationary at the
    smoothed mean. Grey levels give the exact expectation over dynamic binarisations."""
    images = synthetic.train_images
    grey = mnist_data.binarize(images, mode="grey")
    batch = Batch(grey, jnp.asarray(synthetic.train_labels))
    logits = factorized.closed_form_logits(images, pseudo_count=2.0)
    loss_fn = factorized.make_loss_fn(images.shape[0], pseudo_count=2.0)

    def loss(logits):
        model = factorized.FactorizedBernoulli(logits)
        return loss_fn(model, batch, jax.random.key(0), jnp.array(0))[0]

    grad_fn = jax.jit(jax.grad(loss))
    grad = grad_fn(logits)
    # Each pixel's gradient is (mean - theta) + (alpha/N)(1 - 2 theta); float32 rounding of
    # theta and of the 2000-image mean limits how small it gets.
    assert float(jnp.max(jnp.abs(grad))) < 50 * jnp.finfo(jnp.float32).eps
    # Away from the optimum it is not small: the check above has teeth.
    assert float(jnp.max(jnp.abs(grad_fn(logits + 0.5)))) > 1e-2


def test_loss_is_the_nll_minus_a_share_of_the_prior(synthetic):
    x = mnist_data.binarize(synthetic.train_images[:64], mode="threshold")
    batch = Batch(x, jnp.asarray(synthetic.train_labels[:64]))
    model = factorized.FactorizedBernoulli(jnp.linspace(-2.0, 2.0, 784))
    loss, metrics = factorized.make_loss_fn(1000, pseudo_count=3.0)(
        model, batch, jax.random.key(0), jnp.array(7)
    )
    nll = -jnp.mean(model.log_prob(x))
    np.testing.assert_allclose(metrics["nll"], nll, rtol=1e-6)
    np.testing.assert_allclose(loss, nll - model.log_prior(3.0) / 1000, rtol=1e-6)


# ------------------------------------------------------------------ evaluation


def test_evaluate_nll_is_the_mean_over_every_image(synthetic):
    """Batches that do not divide the images: the padding is trimmed, nothing is dropped."""
    x = mnist_data.fixed_binarization(synthetic.test_images[:257], seed=0)
    model = factorized.FactorizedBernoulli(factorized.closed_form_logits(synthetic.train_images))
    per_image = factorized.log_probs(model, x, batch_size=100)
    assert per_image.shape == (257,)
    np.testing.assert_allclose(per_image, model.log_prob(x), rtol=tol(per_image.dtype))
    np.testing.assert_allclose(
        factorized.evaluate_nll(model, x, batch_size=100),
        -np.mean(np.asarray(model.log_prob(x), np.float64)),
        rtol=tol(per_image.dtype),
    )


def test_second_evaluation_compiles_nothing(synthetic, caplog):
    x = mnist_data.fixed_binarization(synthetic.test_images[:300], seed=0)
    model = factorized.FactorizedBernoulli()
    closed = factorized.FactorizedBernoulli(factorized.closed_form_logits(synthetic.train_images))
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        first = factorized.evaluate_nll(model, x)
        assert compilations(caplog), "the first evaluation of this shape should compile"
        caplog.clear()
        again = factorized.evaluate_nll(model, x)
        # Another model of the same structure reuses the executable too.
        other = factorized.evaluate_nll(closed, x)
        assert compilations(caplog) == []
    assert again == first and other < first


# ------------------------------------------------------------------ training


def test_trained_nll_agrees_with_closed_form(mnist):
    """Adam with a cosine schedule on the full training set, dynamic binarisation: its test
    NLL is within 0.05 nats of the closed-form MLE (smoothed per-pixel training means)."""
    config = TrainConfig(epochs=3, batch_size=256, learning_rate=0.1, seed=0)
    n = mnist.train_images.shape[0]
    tx = factorized.make_optimizer(config.learning_rate, factorized.train_steps(n, config))
    trainer = Trainer(
        factorized.FactorizedBernoulli(), tx, factorized.make_loss_fn(n, pseudo_count=1.0), config
    )
    trainer.fit(mnist.train_images, mnist.train_labels, progress=False)
    x_test = mnist_data.fixed_binarization(mnist.test_images, seed=0)
    trained = factorized.evaluate_nll(trainer.model, x_test)
    closed_model = factorized.FactorizedBernoulli(
        factorized.closed_form_logits(mnist.train_images, pseudo_count=1.0)
    )
    closed = factorized.evaluate_nll(closed_model, x_test)
    assert abs(trained - closed) <= 0.05, (trained, closed)
    # The data and evaluation path against numpy in float64: the smoothed pixel means of the
    # grey levels (dynamic binarisation's expected pixels) and the Bernoulli NLL of x_test.
    theta = (np.sum(mnist.train_images.reshape(n, 784) / 255.0, axis=0) + 1.0) / (n + 2.0)
    x = np.asarray(x_test, np.float64).reshape(-1, 784)
    expected = -np.mean(x @ np.log(theta) + (1.0 - x) @ np.log1p(-theta))
    np.testing.assert_allclose(closed, expected, rtol=1e-5)
    assert abs(factorized.bits_per_dim(closed) - closed / (784 * np.log(2.0))) < 1e-6


def test_training_is_deterministic(synthetic):
    """Same seed, same parameters: an epoch rerun from the same initial state (and with the
    trainer's keys, which derive from (seed, epoch) alone) gives bit-identical logits."""
    images, labels = synthetic.train_images, synthetic.train_labels
    config = TrainConfig(epochs=1, batch_size=128, learning_rate=0.1, seed=3)
    tx = factorized.make_optimizer(0.1, factorized.train_steps(images.shape[0], config))
    loss_fn = factorized.make_loss_fn(images.shape[0])
    trainer = Trainer(factorized.FactorizedBernoulli(), tx, loss_fn, config)
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


def test_train_steps():
    config = TrainConfig(epochs=3, batch_size=128)
    assert factorized.train_steps(1000, config) == 3 * 7


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


def test_closed_form_rejects_zero_pseudo_count(synthetic):
    with pytest.raises(ValueError, match="`pseudo_count` must be > 0"):
        factorized.closed_form_logits(synthetic.test_images[:10], pseudo_count=0.0)
    with pytest.raises(ValueError, match="`binarization` must be one of"):
        factorized.closed_form_logits(synthetic.test_images[:10], binarization="otsu")


# ----------------------------------------------------------------------------- example


def test_config_checks_every_field():
    assert configs.get_config() == configs.Config()
    assert configs.get_config().train.epochs == 5
    for field, value in [
        ("pseudo_count", 0.0),
        ("pseudo_count", float("nan")),
        ("eval_seed", 1.5),
        ("train_examples", 0),
        ("test_examples", -3),
        ("num_samples", 0),
    ]:
        with pytest.raises(ConfigError, match=f"`{field}`") as error:
            configs.Config(**{field: value})
        assert error.value.field == field
    with pytest.raises(ConfigError, match="`binarization` must be one of") as error:
        configs.Config(train=TrainConfig(binarization="grey"))
    assert error.value.field == "binarization"


EXAMPLES = ["factorized_bernoulli", "mixture", "naive_bayes"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_reject_missing_data_dir(name, tmp_path):
    import importlib

    from examples import _cli

    module = importlib.import_module(f"examples.{name}.main")
    missing = tmp_path / "no-such-mnist"
    argv = ["--data-dir", str(missing), "--workdir", str(tmp_path / "run"), "--no-progress"]
    with pytest.raises(FileNotFoundError, match=r"no-such-mnist.*does not exist"):
        module.main(argv)
    # From the command line: a one-line message instead of a traceback.
    with pytest.raises(SystemExit, match=r"error: MNIST data folder .*no-such-mnist"):
        _cli.run_or_exit(module.main, argv)


@pytest.fixture
def fake_load(monkeypatch, synthetic):
    """``load_mnist`` returns the synthetic arrays, so the command line runs without MNIST."""
    monkeypatch.setattr(mnist_data, "load_mnist", lambda data_dir=None, **kwargs: synthetic)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--learning-rate", "-1"], "--learning-rate"),
        (["--pseudo-count", "-1"], "--pseudo-count"),
        (["--pseudo-count", "0"], "--pseudo-count"),
        (["--train-examples", "0"], "--train-examples"),
        (["--num-samples", "0"], "--num-samples"),
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
    metrics = example.train_and_evaluate(small_config(), workdir, data=synthetic, progress=False)
    written = json.loads((workdir / "metrics.json").read_text())
    assert written["test_nll_nats"] == pytest.approx(metrics["test_nll_nats"])
    keys = """test_bits_per_dim closed_form_test_nll_nats closed_form_test_bits_per_dim
        trained_minus_closed_form_nats max_abs_logit_difference pseudo_count evaluation_set
        device train_examples epochs batch_size learning_rate optimizer train_seconds
        wall_time_s load_average_1min history config"""
    for key in keys.split():
        assert key in written, key
    assert written["binarization"] == "dynamic" and written["seed"] == 0
    assert written["train_examples"] == 2000 and written["epochs_run_now"] == 1
    assert written["evaluation_set"] == "first 500 test images, fixed_binarization(seed=0)"
    # 15 Adam steps from uniform pixels (784 log 2 nats): a clear improvement already.
    assert written["test_nll_nats"] < 784 * np.log(2.0) - 50
    assert written["pictures"] == ["samples.png", "theta.png", "training_curve.png"]
    for picture in written["pictures"]:
        assert (workdir / picture).stat().st_size > 0
    assert (workdir / "checkpoints").is_dir() and (workdir / "train_log.csv").is_file()


def test_example_resumes_and_is_deterministic(synthetic, tmp_path):
    config = small_config(epochs=2, seed=1)
    first = example.train_and_evaluate(config, tmp_path / "a", data=synthetic, progress=False)
    assert first["epochs_run_now"] == 2 and len(first["history"]) == 2
    # A rerun finds the run finished in its checkpoints: nothing trained, the same model.
    resumed = example.train_and_evaluate(config, tmp_path / "a", data=synthetic, progress=False)
    assert resumed["epochs_run_now"] == 0
    assert resumed["history"] == first["history"]
    assert resumed["test_nll_nats"] == first["test_nll_nats"]
    # Without resuming it trains afresh, and the same seed gives the same model.
    again = example.train_and_evaluate(
        config, tmp_path / "a", data=synthetic, resume=False, progress=False
    )
    assert again["epochs_run_now"] == 2
    assert again["test_nll_nats"] == first["test_nll_nats"]


def test_example_resumes_only_the_run_it_is_configured_as(synthetic, tmp_path):
    config = small_config(epochs=1, seed=1)
    first = example.train_and_evaluate(config, tmp_path / "a", data=synthetic, progress=False)
    # What is measured may change on resumption; what was trained may not.
    fewer_tests = dataclasses.replace(config, test_examples=100)
    rerun = example.train_and_evaluate(fewer_tests, tmp_path / "a", data=synthetic, progress=False)
    assert rerun["epochs_run_now"] == 0 and rerun["history"] == first["history"]
    other_data = dataclasses.replace(
        config, train=dataclasses.replace(config.train, binarization="threshold")
    )
    with pytest.raises(ConfigError, match=r"train\.binarization"):
        example.train_and_evaluate(other_data, tmp_path / "a", data=synthetic, progress=False)
    # The cosine decay spans the run: a longer run is another schedule, not an extension.
    longer = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=2))
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        example.train_and_evaluate(longer, tmp_path / "a", data=synthetic, progress=False)


def test_cli_end_to_end(fake_load, tmp_path, capsys):
    """Only the flags given override the configuration; the rest keep its defaults."""
    workdir = tmp_path / "run"
    flags = "--epochs 1 --batch-size 250 --binarization threshold --test-examples 100"
    metrics = cli.main(
        ["--workdir", str(workdir), *flags.split(), "--num-samples", "16", "--no-progress"]
    )
    config = metrics["config"]
    assert config["train"]["epochs"] == 1 and config["train"]["batch_size"] == 250
    assert config["train"]["learning_rate"] == 0.1 and config["pseudo_count"] == 1.0
    assert metrics["binarization"] == "threshold"
    assert metrics["evaluation_set"] == "first 100 test images, threshold"
    assert "test NLL" in capsys.readouterr().out
    assert (workdir / "metrics.json").is_file()

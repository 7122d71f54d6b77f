"""MADE: the autoregressive property, exact normalisation, the sampler, the ensemble, the
class-conditional variant, the loss and the batched evaluation.

Exactness is checked on tiny models (``D = 8`` binary pixels, so all ``2**D`` images can be
enumerated) against brute force in float64 numpy; the MNIST-sized model only for shapes.
"""

from __future__ import annotations

import functools
import itertools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy.special import logsumexp

from models import made, mnist
from models.made import MADE, MADEConfig
from models.training import (
    Batch,
    ConfigError,
    OptimizerConfig,
    TrainConfig,
    Trainer,
    make_optimizer,
)

D = 8
ALL_IMAGES = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=D)), jnp.float32)


def tiny(**kwargs) -> MADE:
    options = {"num_masks": 4, "condition_on_mask": True, "mask_seed": 3}
    options.update(kwargs)
    hidden = options.pop("hidden", (16, 12))
    return MADE(D, hidden, rngs=nnx.Rngs(options.pop("seed", 0)), **options)


def randomise(model: MADE, seed: int = 1) -> MADE:
    """Every parameter moved off its initial value (biases and label rows start at zero).

    In numpy: eager jax ops would compile one small kernel per shape.
    """
    rng = np.random.default_rng(seed)
    for _, value in nnx.iter_graph(model):
        if isinstance(value, nnx.Param):
            current = np.asarray(value[...])
            value[...] = (current + 0.3 * rng.standard_normal(current.shape)).astype(np.float32)
    return model


@pytest.fixture(scope="module")
def model() -> MADE:
    """Two hidden layers, four masks, connectivity conditioning, direct connections."""
    return randomise(tiny())


@pytest.fixture(scope="module")
def conditional() -> MADE:
    """The same with three classes."""
    return randomise(tiny(num_classes=3))


# Jitted once per model structure: eager dispatch of the many small ops is slow on a CPU.
@nnx.jit
def logits(model, x, mask_index):
    return model.logits(x, mask_index=mask_index)


@nnx.jit
def jacobian(model, x, mask_index):
    return jax.jacobian(lambda x: model.logits(x, mask_index=mask_index))(x)


@nnx.jit
def log_prob(model, x, labels=None, mask_index=0):
    return model.log_prob(x, labels, mask_index=mask_index)


@functools.partial(nnx.jit, static_argnames="num_masks")
def ensemble_log_prob(model, x, labels=None, num_masks=None):
    return model.ensemble_log_prob(x, labels, num_masks=num_masks)


@functools.partial(nnx.jit, static_argnames="num_masks")
def mask_log_probs(model, x, num_masks=None):
    return model.mask_log_probs(x, num_masks=num_masks)


@nnx.jit
def bayes_parts(model, x):
    return model.log_joint(x), model.log_posterior(x), model.log_marginal(x), model.predict(x)


def positions(model: MADE, mask_index: int) -> np.ndarray:
    """Position of each pixel in the mask's ordering (0 = drawn first)."""
    order = np.asarray(model.ordering(mask_index))
    position = np.empty(D, int)
    position[order] = np.arange(D)
    return position


# ---------------------------------------------------------------------- structure


@pytest.mark.parametrize(("hidden", "direct"), [((16, 12), True), ((16, 12, 10), False)])
def test_autoregressive_property(hidden, direct):
    """d logit_d / d x_d' is zero unless d' comes before d in the mask's ordering."""
    model = randomise(tiny(hidden=hidden, direct=direct, num_masks=5))
    x = jax.random.bernoulli(jax.random.key(0), 0.5, (D,)).astype(jnp.float32)
    orders = set()
    for k in range(model.num_masks):
        jac = np.asarray(jacobian(model, x, k))
        position = positions(model, k)
        allowed = position[None, :] < position[:, None]  # [output d, input d']
        assert np.all(jac[~allowed] == 0.0), k
        if direct:
            # Direct connections make every allowed dependence present.
            assert np.all(jac[allowed] != 0.0), k
        else:
            assert np.any(jac[allowed] != 0.0), k
        orders.add(tuple(np.argsort(position)))
    # Order-agnostic: the masks have different orderings; mask 0 is the raster order.
    assert len(orders) == model.num_masks
    np.testing.assert_array_equal(model.ordering(0), np.arange(D))


def test_natural_order_keeps_the_ordering_and_varies_the_connectivity():
    model = tiny(order_agnostic=False)  # same shapes as the fixture: no new compilation
    for k in range(model.num_masks):
        np.testing.assert_array_equal(model.ordering(k), np.arange(D))
    connectivities = {np.asarray(model.masks(k).hidden[0]).tobytes() for k in range(4)}
    assert len(connectivities) == 4
    # Mask 0 does not depend on order_agnostic or on the number of masks.
    other = tiny(order_agnostic=True, num_masks=2)
    for a, b in zip(jax.tree.leaves(model.masks(0)), jax.tree.leaves(other.masks(0)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_degrees_follow_the_paper():
    inputs, layers = made.make_degrees(10, (50, 40), 6, seed=0)
    for k in range(6):
        assert sorted(inputs[k]) == list(range(1, 11))
        low = 1
        for degrees in layers:
            assert degrees[k].min() >= low and degrees[k].max() <= 9
            low = degrees[k].min()


# -------------------------------------------------------------------- exactness


@pytest.mark.parametrize("mask_index", [0, 1, 3])
def test_log_prob_is_the_sum_of_its_conditionals(model, mask_index):
    """Brute force: log p(x) = sum_t log p(x_{o_t} | x_{o_<t}), each conditional from its
    own pass with every later pixel replaced by noise."""
    x = np.asarray(jax.random.bernoulli(jax.random.key(1), 0.4, (5, D)), np.float32)
    order = np.asarray(model.ordering(mask_index))
    noise = np.asarray(jax.random.bernoulli(jax.random.key(2), 0.5, (D, 5, D)), np.float32)
    total = np.zeros(5)
    for t, pixel in enumerate(order):
        probe = noise[t].copy()
        probe[:, order[:t]] = x[:, order[:t]]
        logit = np.asarray(logits(model, probe, mask_index), np.float64)[:, pixel]
        log_p1 = -np.logaddexp(0.0, -logit)
        log_p0 = -np.logaddexp(0.0, logit)
        total += np.where(x[:, pixel] == 1.0, log_p1, log_p0)
    np.testing.assert_allclose(log_prob(model, x, None, mask_index), total, rtol=1e-5)


def test_probabilities_of_all_images_sum_to_one(model):
    for k in range(model.num_masks):
        log_p = np.asarray(log_prob(model, ALL_IMAGES, None, k), np.float64)
        assert logsumexp(log_p) == pytest.approx(0.0, abs=1e-5)
    log_p = np.asarray(ensemble_log_prob(model, ALL_IMAGES), np.float64)
    assert logsumexp(log_p) == pytest.approx(0.0, abs=1e-5)


def test_ensemble_is_logsumexp_minus_log_m(model):
    x = ALL_IMAGES[::7]
    per_mask = np.stack([np.asarray(log_prob(model, x, None, k), np.float64) for k in range(3)])
    expected = logsumexp(per_mask, axis=0) - np.log(3)
    ensemble = ensemble_log_prob(model, x, num_masks=3)
    np.testing.assert_allclose(ensemble, expected, rtol=1e-5)
    np.testing.assert_allclose(mask_log_probs(model, x, num_masks=3), per_mask, rtol=1e-5)
    # Jensen: the ensemble beats the mean of its members, image by image.
    assert np.all(np.asarray(ensemble) >= per_mask.mean(axis=0) - 1e-5)
    np.testing.assert_allclose(made.ensemble(jnp.log(jnp.ones((5, 2)) / 7.0)), np.log(1 / 7.0))


def test_sampler_matches_the_model(model):
    """Empirical frequencies of all 2**D images against the model's exact probabilities."""
    n = 40_000
    for mask_index in (0, 2):
        samples = np.asarray(made.generate(model, jax.random.key(mask_index), n, None, mask_index))
        assert samples.shape == (n, D) and set(np.unique(samples)) <= {0.0, 1.0}
        codes = samples.astype(int) @ (2 ** np.arange(D - 1, -1, -1))  # ALL_IMAGES row order
        counts = np.bincount(codes, minlength=2**D)
        probs = np.exp(np.asarray(log_prob(model, ALL_IMAGES, None, mask_index), np.float64))
        # Pearson's chi-square over the 256 cells (255 degrees of freedom: mean 255, sd 23).
        chi2 = np.sum((counts - n * probs) ** 2 / (n * probs))
        assert chi2 < 255 + 5 * 23, (mask_index, chi2)
        # The test has power: another mask's distribution is rejected by far.
        other = np.exp(np.asarray(log_prob(model, ALL_IMAGES, None, 1), np.float64))
        assert np.sum((counts - n * other) ** 2 / (n * other)) > 10 * (255 + 5 * 23)


def test_mnist_sized_shapes_and_jit():
    model = MADE(hidden=(20, 10), num_masks=2, rngs=nnx.Rngs(0))
    x = jnp.zeros((3, 28, 28))
    assert logits(model, x, 0).shape == (3, 784)
    assert log_prob(model, x, None, 1).shape == (3,)
    assert ensemble_log_prob(model, x.reshape(3, 784)).shape == (3,)
    samples = made.generate(model, jax.random.key(0), 4)
    assert samples.shape == (4, 28, 28)
    with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., 28, 28\)"):
        model.log_prob(jnp.zeros((2, 27, 28)))


# ------------------------------------------------------------- the conditional model


def test_conditional_model_is_normalised_and_classifies_by_bayes_rule(conditional):
    model = conditional
    for label in range(3):
        labels = jnp.full(ALL_IMAGES.shape[0], label)
        for k in range(model.num_masks):
            log_p = np.asarray(log_prob(model, ALL_IMAGES, labels, k), np.float64)
            assert logsumexp(log_p) == pytest.approx(0.0, abs=1e-5)
    log_joint, posterior, marginal, predicted = bayes_parts(model, ALL_IMAGES)
    log_joint = np.asarray(log_joint, np.float64)  # (256, 3)
    assert logsumexp(log_joint) == pytest.approx(0.0, abs=1e-5)
    # log p(x, y) = log p(y) + ensemble log p(x | y), class by class.
    for label in range(3):
        labels = jnp.full(ALL_IMAGES.shape[0], label)
        expected = model.log_class_probs[label] + ensemble_log_prob(model, ALL_IMAGES, labels)
        np.testing.assert_allclose(log_joint[:, label], expected, rtol=1e-5, atol=1e-5)
    expected = log_joint - logsumexp(log_joint, axis=1, keepdims=True)
    np.testing.assert_allclose(posterior, expected, atol=1e-5)
    np.testing.assert_allclose(marginal, logsumexp(log_joint, axis=1), rtol=1e-5)
    np.testing.assert_array_equal(predicted, np.argmax(log_joint, axis=1))


def test_conditional_sampler_follows_the_label(conditional):
    model, n = conditional, 20_000
    labels = jnp.repeat(jnp.arange(2), n)
    samples = np.asarray(made.generate(model, jax.random.key(0), 2 * n, labels, 1))
    codes = samples.astype(int) @ (2 ** np.arange(D - 1, -1, -1))
    for label in range(2):
        counts = np.bincount(codes[label * n : (label + 1) * n], minlength=2**D)
        log_p = log_prob(model, ALL_IMAGES, jnp.full(2**D, label), 1)
        probs = np.exp(np.asarray(log_p, np.float64))
        chi2 = np.sum((counts - n * probs) ** 2 / (n * probs))
        assert chi2 < 255 + 5 * 23, (label, chi2)


def test_invalid_labels_and_arguments(conditional):
    model = conditional
    log_p = log_prob(model, ALL_IMAGES[:2], jnp.array([1, 3]))
    assert np.isfinite(log_p[0]) and np.isnan(log_p[1])
    samples = made.generate(model, jax.random.key(0), 2, jnp.array([0, -1]))
    assert np.all(np.isfinite(samples[0])) and np.all(np.isnan(samples[1]))
    with pytest.raises(ValueError, match="needs `labels`"):
        model.log_prob(ALL_IMAGES)
    with pytest.raises(TypeError, match="`labels` must be integers"):
        model.log_prob(ALL_IMAGES[:1], jnp.array([1.0]))
    with pytest.raises(ValueError, match=r"`mask_index` must lie in \[0, 4\)"):
        model.log_prob(ALL_IMAGES[:1], jnp.array([0]), mask_index=4)
    with pytest.raises(ValueError, match=r"`num_masks` must lie in \[1, 4\]"):
        model.log_joint(ALL_IMAGES, num_masks=5)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 8\)"):
        model.logits(jnp.zeros((2, 7)), jnp.array([0, 0]))
    with pytest.raises(ValueError, match="only a class-conditional MADE"):
        tiny().log_joint(ALL_IMAGES)


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hidden", (0,)),
        ("hidden", ()),
        ("num_masks", 0),
        ("num_dims", 1),
        ("num_classes", 1),
        ("activation", "swish"),
        ("mask_seed", -1),
        ("order_agnostic", 1),
        ("conditional", "yes"),
    ],
)
def test_bad_config_values_raise_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"`{field}`") as error:
        MADEConfig(**{field: value})
    assert error.value.field == field


def test_make_made_starts_at_the_pixel_marginals():
    means = np.linspace(0.0, 1.0, D)
    config = MADEConfig(num_dims=D, hidden=(6,), num_masks=2)
    model = made.make_made(config, rngs=nnx.Rngs(0), pixel_means=means)
    probs = jax.nn.sigmoid(model.output_layer.bias[...])
    np.testing.assert_allclose(probs, np.clip(means, 1e-3, 1 - 1e-3), rtol=1e-5)
    with pytest.raises(ValueError, match="`pixel_means` must have 8 entries"):
        made.make_made(config, rngs=nnx.Rngs(0), pixel_means=np.zeros(9))
    conditional = made.make_made(
        MADEConfig(num_dims=D, hidden=(6,), conditional=True, num_classes=4), rngs=nnx.Rngs(0)
    )
    assert conditional.num_classes == 4 and made.num_parameters(conditional) > made.num_parameters(
        made.make_made(config, rngs=nnx.Rngs(0))
    )


# ----------------------------------------------------------- training and evaluation


def test_loss_draws_one_mask_per_step(model):
    x = ALL_IMAGES[:16]
    batch = Batch(x, jnp.zeros(16, jnp.int32))
    per_mask = np.asarray(-mask_log_probs(model, x).mean(axis=1))
    seen = set()
    loss_fn = nnx.jit(made.loss_fn)
    for seed in range(12):
        loss, metrics = loss_fn(model, batch, jax.random.key(seed), 0)
        matches = np.flatnonzero(np.isclose(per_mask, float(loss), rtol=1e-5))
        assert len(matches) == 1 and metrics["nll"] == loss
        seen.add(int(matches[0]))
    assert len(seen) >= 3  # different steps use different masks


def test_conditional_loss_is_the_joint_nll(conditional):
    model = conditional
    x, y = ALL_IMAGES[:10], jnp.arange(10) % 3
    loss, metrics = nnx.jit(made.loss_fn)(model, Batch(x, y), jax.random.key(0), 0)
    # The mask the step drew: the one whose -log p(x | y) is the reported nll.
    per_mask = [-float(jnp.mean(log_prob(model, x, y, k))) for k in range(model.num_masks)]
    (mask,) = np.flatnonzero(np.isclose(per_mask, float(metrics["nll"]), rtol=1e-5))
    nll = -jnp.mean(log_prob(model, x, y, int(mask)))
    np.testing.assert_allclose(metrics["nll"], nll, rtol=1e-6)
    np.testing.assert_allclose(loss, nll - jnp.mean(model.log_class_probs[y]), rtol=1e-6)
    assert metrics["nll_joint"] == loss


def test_training_lowers_the_test_nll(synthetic_mnist):
    """A short run through the shared Trainer, on MNIST-shaped synthetic data."""
    config = MADEConfig(hidden=(32,), num_masks=2)
    images = synthetic_mnist.train_images
    pixel_means = images.reshape(len(images), -1).mean(0) / 255.0
    model = made.make_made(config, rngs=nnx.Rngs(0), pixel_means=pixel_means)
    x_test = mnist.evaluation_images(synthetic_mnist.test_images, binarization="dynamic")
    before = made.evaluate(model, x_test)["nll"]
    train = TrainConfig(epochs=2, batch_size=100)
    tx = make_optimizer(OptimizerConfig(), train, len(images) // 100)
    trainer = Trainer(model, tx, made.loss_fn, train)
    history = trainer.fit(images, synthetic_mnist.train_labels, progress=False)
    assert history[-1]["nll"] < history[0]["nll"]
    assert made.evaluate(trainer.model, x_test)["nll"] < before - 10.0


def test_evaluate_matches_the_model_image_by_image(model, conditional):
    """Batches that do not divide the images: every image counts exactly once."""
    x = ALL_IMAGES[:37]
    scores = made.evaluate(model, x, num_masks=2, batch_size=10)
    ensemble = np.asarray(ensemble_log_prob(model, x, num_masks=2), np.float64)
    assert scores["nll"] == pytest.approx(-ensemble.mean(), rel=1e-5)
    assert scores["bits_per_dim"] == pytest.approx(-ensemble.mean() / (D * np.log(2)), rel=1e-5)
    per_mask = [-float(np.mean(log_prob(model, x, None, k))) for k in range(2)]
    np.testing.assert_allclose(scores["nll_per_mask"], per_mask, rtol=1e-5)
    assert scores["num_masks"] == 2 and scores["nll"] <= scores["nll_mean_single_mask"] + 1e-5

    labels = jnp.arange(37) % 3
    scores = made.evaluate(conditional, x, labels, batch_size=10)
    log_joint = np.asarray(bayes_parts(conditional, x)[0], np.float64)
    picked = log_joint[np.arange(37), np.asarray(labels)]
    assert scores["nll"] == pytest.approx(-logsumexp(log_joint, axis=1).mean(), rel=1e-5)
    assert scores["nll_joint"] == pytest.approx(-picked.mean(), rel=1e-5)
    assert scores["accuracy"] == pytest.approx(
        np.mean(np.argmax(log_joint, axis=1) == np.asarray(labels))
    )
    conditional_nll = -np.asarray(ensemble_log_prob(conditional, x, labels), np.float64).mean()
    assert scores["nll_conditional"] == pytest.approx(conditional_nll, rel=1e-5)


def test_second_evaluation_compiles_nothing(model, caplog):
    other = tiny(seed=5)
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        first = made.evaluate(model, ALL_IMAGES, batch_size=64)
        caplog.clear()
        again = made.evaluate(model, ALL_IMAGES, batch_size=64)
        made.evaluate(other, ALL_IMAGES, batch_size=64)  # same structure: same executable
        assert [r for r in caplog.records if "Compiling" in r.getMessage()] == []
    assert again == first


def test_evaluation_argument_checks(conditional):
    model = conditional
    with pytest.raises(ValueError, match="needs `labels`"):
        made.evaluate(model, ALL_IMAGES)
    with pytest.raises(ValueError, match=r"`labels` must have shape \(256,\)"):
        made.evaluate(model, ALL_IMAGES, jnp.zeros(3, jnp.int32))
    with pytest.raises(TypeError, match="`labels` must be integers"):
        made.evaluate(model, ALL_IMAGES, jnp.zeros(256))

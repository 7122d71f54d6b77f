"""genmath.relaxed_categorical against an independent float64 formula of the Concrete density,
the binary case, a quadrature of the density over the simplex, and Monte Carlo."""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util
from scipy import special as sp

from genmath import relaxed_bernoulli as rb
from genmath import relaxed_categorical as rc
from tests.genmath.helpers import DTYPE, DTYPES, X64, f64, grad_tol


def concrete_density(y, logits, temperature):
    """Maddison et al.'s Concrete density, written with the powers (float64, moderate values);
    ``temperature`` has a class axis of size 1."""
    k = y.shape[-1]
    alpha = np.exp(logits)
    factors = (
        alpha * y ** (-temperature - 1) / np.sum(alpha * y ** (-temperature), -1, keepdims=True)
    )
    prefactor = math.factorial(k - 1) * np.squeeze(temperature, -1) ** (k - 1)
    return prefactor * np.prod(factors, -1)


def _simplex_points(rng, shape, dtype):
    y = rng.dirichlet(np.ones(shape[-1]), shape[:-1])
    return y.astype(dtype)


# --- densities ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_classes", [2, 3, 6])
def test_log_prob_is_the_concrete_density(rng, dtype, num_classes):
    y = _simplex_points(rng, (4, num_classes), np.float64)
    y = np.clip(y, 0.02, None)
    y = (y / y.sum(-1, keepdims=True)).astype(dtype)
    logits = rng.normal(0, 1.5, (4, num_classes)).astype(dtype)
    temperature = rng.uniform(0.3, 2.0, 4).astype(dtype)
    value = jax.jit(rc.log_prob)(y, logits=logits, temperature=temperature)
    chex.assert_shape(value, (4,))
    assert value.dtype == dtype
    expected = np.log(concrete_density(f64(y), f64(logits), f64(temperature)[:, None]))
    atol = 300 * np.finfo(dtype).eps * num_classes  # terms of size |l| + 3 |log y| each
    np.testing.assert_allclose(value, expected, rtol=0, atol=atol)
    # The two densities differ by the Jacobian sum_k log y_k.
    log_form = rc.log_sample_log_prob(
        np.log(f64(y)).astype(dtype), logits=logits, temperature=temperature
    )
    np.testing.assert_allclose(
        f64(value), f64(log_form) - np.sum(np.log(f64(y)), -1), rtol=0, atol=atol
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_classes_are_the_binary_concrete(rng, dtype):
    y1 = rng.uniform(0.05, 0.95, 5)
    y = np.stack([y1, 1 - y1], -1).astype(dtype)
    logits = rng.normal(0, 2, (5, 2)).astype(dtype)
    temperature = rng.uniform(0.2, 3.0, 5).astype(dtype)
    difference = (f64(logits[:, 0]) - f64(logits[:, 1])).astype(dtype)
    np.testing.assert_allclose(
        rc.log_prob(y, logits=logits, temperature=temperature),
        rb.log_prob(y[:, 0], logits=difference, temperature=temperature, axis=()),
        rtol=1e-5 if dtype == np.float32 else 1e-12,
        atol=1e-5 if dtype == np.float32 else 1e-12,
    )
    # Log form: the density of the log-ratio x_1 - x_2 is the logit density, and adding a
    # constant to log y changes nothing.
    log_y = np.log(f64(y)) + 3.0
    ratio = (log_y[:, 0] - log_y[:, 1]).astype(dtype)
    np.testing.assert_allclose(
        rc.log_sample_log_prob(log_y.astype(dtype), logits=logits, temperature=temperature),
        rb.logit_log_prob(ratio, logits=difference, temperature=temperature, axis=()),
        rtol=1e-5 if dtype == np.float32 else 1e-12,
        atol=1e-5 if dtype == np.float32 else 1e-12,
    )


def _grid_density(logits, temperature, step=0.04, half_width=24.0):
    """The K = 3 log-form density on a grid of the log-ratios (r_1, r_2) = (x_1 - x_3,
    x_2 - x_3), and the grid; it decays like exp(-lambda |r|), so the box holds all but
    ~exp(-lambda * 24) of the mass."""
    r = np.arange(-half_width, half_width + step / 2, step)
    r1, r2 = np.meshgrid(r, r, indexing="ij")
    log_y = np.stack([r1, r2, np.zeros_like(r1)], -1)
    density = np.exp(
        f64(rc.log_sample_log_prob(jnp.asarray(log_y), logits=logits, temperature=temperature))
    )
    return density, log_y, step


@pytest.mark.parametrize("temperature", [0.7, 1.0, 2.5])
def test_density_integrates_to_one_over_the_simplex(temperature):
    # The trapezoid rule on a smooth, exponentially decaying integrand is accurate far beyond
    # the float32 rounding of the density (~1e-6 relative).
    logits = jnp.array([0.5, -1.0, 0.3])
    density, _, step = _grid_density(logits, temperature)
    total = np.trapezoid(np.trapezoid(density, dx=step, axis=1), dx=step)
    np.testing.assert_allclose(total, 1.0, atol=2e-5)


# --- samplers -------------------------------------------------------------------------

NUM_DRAWS = 100_000


@pytest.mark.parametrize("temperature", [0.7, 2.5])
def test_sample_means_match_the_density(temperature):
    # E[y_k] by quadrature of softmax(log y) against the density, and from 100k samples,
    # within 5 standard errors.
    logits = jnp.array([0.5, -1.0, 0.3])
    density, log_y, step = _grid_density(logits, temperature)
    y_grid = sp.softmax(log_y, -1)
    weights = density * step**2
    expected = np.sum(weights[..., None] * y_grid, (0, 1)) / np.sum(weights)
    y = f64(
        rc.sample(jax.random.key(0), logits=logits, temperature=temperature, sample_shape=NUM_DRAWS)
    )
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-6)
    standard_error = y.std(0, ddof=1) / np.sqrt(NUM_DRAWS)
    assert np.all(np.abs(y.mean(0) - expected) < 5 * standard_error), (y.mean(0), expected)
    # And the same draws in log form.
    log_draws = rc.log_sample(
        jax.random.key(0), logits=logits, temperature=temperature, sample_shape=NUM_DRAWS
    )
    np.testing.assert_allclose(np.exp(f64(log_draws)), y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("temperature", [1e-3, 1.0, 10.0])
def test_hard_samples_are_categorical(temperature):
    # P(argmax = k) = softmax(l)_k (the Gumbel-max trick), whatever the temperature; within 5
    # standard errors sqrt(p (1 - p) / N). A class of logit -inf is never drawn.
    logits = jnp.array([1.0, -0.5, -jnp.inf, 0.2, -2.0])
    hard = f64(
        rc.straight_through_sample(
            jax.random.key(1), logits=logits, temperature=temperature, sample_shape=NUM_DRAWS
        )
    )
    np.testing.assert_array_equal(hard.sum(-1), 1.0)
    p = sp.softmax(f64(logits))
    assert hard[:, 2].sum() == 0
    standard_error = np.sqrt(p * (1 - p) / NUM_DRAWS)
    assert np.all(np.abs(hard.mean(0) - p) <= 5 * standard_error), (hard.mean(0), p)


def test_straight_through_forward_is_hard_and_backward_relaxed(rng):
    key = jax.random.key(2)
    logits = jnp.asarray(rng.normal(size=(2, 4)), jnp.float32)
    weights = jnp.asarray(rng.normal(size=(3, 2, 4)), jnp.float32)

    def loss(fn):
        return lambda lg, t: jnp.sum(weights * fn(key, logits=lg, temperature=t, sample_shape=3))

    hard = rc.straight_through_sample(key, logits=logits, temperature=0.5, sample_shape=3)
    log_y = rc.log_sample(key, logits=logits, temperature=0.5, sample_shape=3)
    np.testing.assert_array_equal(hard, jax.nn.one_hot(jnp.argmax(log_y, -1), 4))
    for expected, actual in zip(
        jax.grad(loss(rc.sample), (0, 1))(logits, 0.5),
        jax.grad(loss(rc.straight_through_sample), (0, 1))(logits, 0.5),
        strict=True,
    ):
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)
    # straight_through on its own, classes on axis 0: one-hot forward, identity backward.
    y = jnp.array([[0.2, 0.6], [0.5, 0.1], [0.3, 0.3]])
    np.testing.assert_array_equal(rc.straight_through(y, axis=0), [[0, 1], [1, 0], [0, 0]])
    grad = jax.grad(lambda v: jnp.sum(weights[0, :, :3].T * rc.straight_through(v, axis=0)))(y)
    np.testing.assert_array_equal(grad, weights[0, :, :3].T)


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_grads(rng, dtype):
    y = _simplex_points(rng, (2, 3), np.float64)
    y = np.clip(y, 0.1, None)
    y = (y / y.sum(-1, keepdims=True)).astype(dtype)
    logits = rng.normal(0, 1, (2, 3)).astype(dtype)
    temperature = rng.uniform(0.5, 2.0, 2).astype(dtype)
    settings = grad_tol(dtype)
    eps = settings.pop("eps")
    # y moves off the simplex under finite differences: differentiate the log form in log y
    # and the y form in the parameters only.
    test_util.check_grads(
        lambda lg, t, x: rc.log_sample_log_prob(x, logits=lg, temperature=t),
        (logits, temperature, np.log(f64(y)).astype(dtype)),
        order=2,
        modes=["rev"],
        eps=eps,
        **settings,
    )
    test_util.check_grads(
        lambda lg, t: rc.log_prob(y, logits=lg, temperature=t),
        (logits, temperature),
        order=2,
        modes=["rev"],
        eps=eps,
        **settings,
    )
    key = jax.random.key(3)
    for fn in (rc.sample, rc.log_sample):
        test_util.check_grads(
            lambda lg, t, fn=fn: fn(key, logits=lg, temperature=t),
            (logits, temperature),
            order=1,
            modes=["rev"],
            eps=eps,
            **settings,
        )


@pytest.mark.parametrize("temperature", [1e-3, 1.0, 1e3])
def test_extreme_logits_stay_finite(temperature):
    logits = jnp.array([[-1e4, 0.0, 1e4], [-jnp.inf, 3.0, -1e4], [-30.0, 30.0, 0.0]])
    key = jax.random.key(4)

    def loss(lg, t):
        log_y = rc.log_sample(key, logits=lg, temperature=t)
        y = rc.sample(key, logits=lg, temperature=t)
        return jnp.sum(rc.log_sample_log_prob(log_y, logits=lg, temperature=t)) + jnp.sum(y * y)

    value, grads = jax.value_and_grad(loss, (0, 1))(logits, temperature)
    assert np.isfinite(value)
    assert np.all(np.isfinite(grads[0])) and np.isfinite(grads[1])
    log_y = rc.log_sample(key, logits=logits, temperature=temperature, sample_shape=50)
    np.testing.assert_array_equal(log_y[:, 1, 0], -np.inf)  # the dropped class
    kept = np.ones((3, 3), bool)
    kept[1, 0] = False
    assert np.all(np.isfinite(f64(log_y)[:, kept]))
    np.testing.assert_allclose(np.exp(f64(log_y)).sum(-1), 1.0, atol=1e-5)
    if temperature == 1e-3:
        # The logit 1e4 wins every draw; at small temperatures the sample is one-hot.
        np.testing.assert_array_equal(
            rc.sample(key, logits=logits[0], temperature=temperature), [0.0, 0.0, 1.0]
        )


def test_dropped_classes_and_undefined_logits():
    logits = jnp.array([0.4, -jnp.inf, -0.2])
    y = jnp.array([0.3, 0.0, 0.7])
    # A class of logit -inf is dropped: the density is the two-class one.
    np.testing.assert_allclose(
        rc.log_prob(y, logits=logits, temperature=0.7),
        rc.log_prob(y[jnp.array([0, 2])], logits=logits[jnp.array([0, 2])], temperature=0.7),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        rc.log_sample_log_prob(jnp.log(y), logits=logits, temperature=0.7),
        rc.log_sample_log_prob(
            jnp.log(y[jnp.array([0, 2])]), logits=logits[jnp.array([0, 2])], temperature=0.7
        ),
        rtol=1e-6,
    )
    # ... and must have y = 0; one class left is a point mass of log-density 0 at its vertex.
    assert rc.log_prob(jnp.array([0.3, 0.1, 0.6]), logits=logits, temperature=0.7) == -np.inf
    one = jnp.array([-jnp.inf, 2.0, -jnp.inf])
    assert rc.log_prob(jnp.array([0.0, 1.0, 0.0]), logits=one, temperature=0.7) == 0.0
    # A kept class at y = 0 is the boundary (undefined: NaN); in log form, density 0.
    assert np.isnan(rc.log_prob(jnp.array([0.0, 0.0, 1.0]), logits=logits, temperature=0.7))
    lp = rc.log_sample_log_prob(
        jnp.array([-jnp.inf, -jnp.inf, 0.0]), logits=logits, temperature=0.7
    )
    assert lp == -np.inf
    # Off the simplex: NaN. A logit +inf or NaN: NaN.
    assert np.isnan(rc.log_prob(jnp.array([0.3, 0.0, 0.6]), logits=logits, temperature=0.7))
    assert np.isnan(rc.log_prob(jnp.array([-0.1, 0.0, 1.1]), logits=logits, temperature=0.7))
    assert np.isnan(rc.log_prob(y, logits=jnp.array([jnp.inf, 0.0, 0.0]), temperature=0.7))
    assert np.isnan(
        rc.log_sample_log_prob(y, logits=jnp.array([jnp.nan, 0.0, 0.0]), temperature=0.7)
    )
    assert np.all(
        np.isnan(rc.sample(jax.random.key(5), logits=jnp.array([jnp.inf, 0.0]), temperature=0.7))
    )


_NAN, _INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("y", "logits", "expected"),
    [
        # No dropped class: the undefined cases come out of the arithmetic as NaN.
        ([0.0, 0.4, 0.6], [0.1, 0.2, 0.3], _NAN),  # a kept class at y = 0 (boundary)
        ([-0.1, 0.5, 0.6], [0.1, 0.2, 0.3], _NAN),  # negative y on the simplex
        ([_NAN, 0.5, 0.5], [0.1, 0.2, 0.3], _NAN),
        ([0.2, 0.3, 0.5], [_NAN, 0.2, 0.3], _NAN),
        ([0.2, 0.3, 0.5], [_INF, 0.2, 0.3], _NAN),
        ([0.2, 0.3, 0.4], [0.1, 0.2, 0.3], _NAN),  # off the simplex
        # Dropped classes (logit -inf).
        ([0.0, 0.0, 1.0], [-_INF, -_INF, 0.3], 0.0),  # one class left: its vertex
        ([0.0, 0.0, 1.0], [-_INF, -_INF, -_INF], _NAN),  # no class left
        ([0.1, 0.0, 0.9], [-_INF, 0.2, 0.3], _NAN),  # mass on a dropped class, kept at 0
        ([0.1, 0.2, 0.7], [-_INF, 0.2, 0.3], -_INF),  # mass on a dropped class
        ([-0.1, 0.0, 1.1], [0.1, -_INF, 0.3], _NAN),
    ],
)
def test_log_prob_special_values_under_jit(y, logits, expected):
    fn = jax.jit(lambda y, logits: rc.log_prob(y, logits=logits, temperature=0.7))
    value = fn(jnp.array(y), jnp.array(logits))
    np.testing.assert_array_equal(value, expected)
    # The gradient with respect to the logits is finite wherever the value is.
    if np.isfinite(expected):
        grad = jax.grad(lambda lg: fn(jnp.array(y), lg))(jnp.array(logits))
        assert np.all(np.isfinite(grad))


def test_axis_and_shapes():
    key = jax.random.key(6)
    logits, temperature = jnp.zeros((3, 1, 5)), jnp.full((4,), 0.5)
    for fn in (rc.sample, rc.log_sample, rc.straight_through_sample):
        chex.assert_shape(fn(key, logits=logits, temperature=temperature), (3, 4, 5))
        chex.assert_shape(
            fn(key, logits=logits, temperature=temperature, sample_shape=(2, 7)), (2, 7, 3, 4, 5)
        )
    y = rc.sample(key, logits=logits, temperature=temperature, sample_shape=2)
    value = rc.log_prob(y, logits=logits, temperature=temperature)
    chex.assert_shape(value, (2, 3, 4))
    # Classes on another axis: the same numbers.
    moved = rc.log_prob(
        jnp.moveaxis(y, -1, 1), logits=jnp.moveaxis(logits, -1, 0), temperature=temperature, axis=1
    )
    np.testing.assert_allclose(moved, value, rtol=1e-6)
    # A temperature with batch axes on both sides of the class axis: the Concrete density.
    per_sample = jnp.asarray(np.random.default_rng(0).uniform(0.3, 2.0, (2, 3, 4)), y.dtype)
    moved = jax.jit(rc.log_prob, static_argnames="axis")(
        jnp.moveaxis(y, -1, 1), logits=jnp.moveaxis(logits, -1, 0), temperature=per_sample, axis=1
    )
    chex.assert_shape(moved, (2, 3, 4))
    expected = np.log(concrete_density(f64(y), f64(logits), f64(per_sample)[..., None]))
    np.testing.assert_allclose(moved, expected, rtol=0, atol=300 * np.finfo(np.float32).eps * 5)
    # A scalar temperature with classes on axis 0.
    chex.assert_shape(
        rc.log_sample_log_prob(
            jnp.zeros((5, 2)), logits=jnp.zeros((5, 1)), temperature=0.5, axis=0
        ),
        (2,),
    )


@pytest.mark.parametrize("axis", [-1, 0])
def test_temperature_with_batch_axes_the_data_lacks(rng, axis):
    """One point, several temperatures: each value is that of the temperature alone (and
    the Concrete density), in both densities, with gradients, for classes first or last."""
    y = _simplex_points(rng, (5,), np.float32)
    logits = rng.normal(0.0, 1.0, 5).astype(np.float32)
    temperatures = rng.uniform(0.3, 2.0, (2, 3)).astype(np.float32)
    # Classes on axis 0: the data has a batch axis of 1 after them, which the
    # temperatures' last axis broadcasts.
    data, lg = (y, logits) if axis == -1 else (y[:, None], logits[:, None])
    fns = {
        "log_prob": lambda t: rc.log_prob(data, logits=lg, temperature=t, axis=axis),
        "log_sample_log_prob": lambda t: rc.log_sample_log_prob(
            jnp.log(data), logits=lg, temperature=t, axis=axis
        ),
    }
    for name, fn in fns.items():
        value, grad = jax.jit(lambda t, fn=fn: (fn(t), jax.grad(lambda u: jnp.sum(fn(u)))(t)))(
            temperatures
        )
        chex.assert_shape(value, (2, 3))
        for index in np.ndindex(2, 3):
            alone = float(temperatures[index])
            np.testing.assert_allclose(value[index], fn(alone).squeeze(), rtol=1e-6, err_msg=name)
            np.testing.assert_allclose(
                grad[index], jax.grad(lambda u, fn=fn: jnp.sum(fn(u)))(alone), rtol=1e-5
            )
    expected = np.log(concrete_density(f64(y), f64(logits), f64(temperatures)[..., None]))
    value = jax.jit(fns["log_prob"])(temperatures)
    np.testing.assert_allclose(value, expected, rtol=0, atol=300 * np.finfo(np.float32).eps * 5)


# --- dtypes and errors ----------------------------------------------------------------


def test_dtypes():
    bf = jnp.full((3,), 1 / 3, jnp.bfloat16)
    key = jax.random.key(7)
    assert rc.log_prob(jnp.full(3, 1 / 3), logits=bf, temperature=1.0).dtype == np.float32
    assert rc.log_sample_log_prob(bf, logits=bf, temperature=bf[0]).dtype == np.float32
    assert rc.sample(key, logits=bf, temperature=1.0).dtype == np.float32
    assert rc.straight_through(bf).dtype == np.float32
    if X64:
        assert rc.log_sample(key, logits=np.zeros(3), temperature=1.0).dtype == np.float64
        assert (
            rc.log_prob(np.full(3, 1 / 3), logits=np.zeros(3), temperature=1.0).dtype == np.float64
        )


def test_errors_name_the_argument():
    key = jax.random.key(8)
    logits = np.zeros((2, 3), np.float32)
    y = np.full((2, 3), 1 / 3, np.float32)
    for bad in (0.0, -1.0, np.array([1.0, -0.5]), np.nan):
        with pytest.raises(ValueError, match="temperature"):
            rc.log_prob(y, logits=logits, temperature=bad)
        with pytest.raises(ValueError, match="temperature"):
            rc.sample(key, logits=logits, temperature=bad)
    with pytest.raises(TypeError, match="temperature"):
        rc.log_sample(key, logits=logits, temperature=np.ones(2, np.int32))
    with pytest.raises(TypeError, match="logits"):
        rc.straight_through_sample(key, logits=np.zeros(3, np.int32), temperature=1.0)
    with pytest.raises(ValueError, match="temperature"):
        rc.log_prob(y, logits=logits, temperature=np.ones(3, np.float32))  # batch is (2,)
    with pytest.raises(ValueError, match="temperature"):
        rc.sample(key, logits=logits, temperature=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="shapes do not broadcast"):
        rc.log_prob(y, logits=np.zeros((2, 4), np.float32), temperature=1.0)
    with pytest.raises(TypeError, match="axis"):
        rc.log_prob(y, logits=logits, temperature=1.0, axis=(0, 1))
    with pytest.raises(ValueError, match="axis 2"):
        rc.straight_through(y, axis=2)
    with pytest.raises(ValueError, match="class axis"):
        rc.log_sample(key, logits=np.float32(0.0), temperature=1.0)
    with pytest.raises(TypeError, match="sample_shape"):
        rc.sample(key, logits=logits, temperature=1.0, sample_shape=(2, 1.5))
    # Under jit the temperature is not known at trace time: NaN, documented.
    traced = jax.jit(lambda t: rc.log_prob(y, logits=logits, temperature=t))
    assert np.all(np.isnan(traced(-1.0)))
    traced_sample = jax.jit(lambda t: rc.sample(key, logits=logits, temperature=t))
    assert np.all(np.isnan(traced_sample(0.0)))


def test_dropped_class_gradients_are_finite():
    # A class of logit -inf has y = 0 exactly; no 1/0 of its log may reach the gradient,
    # neither with respect to y nor through a reparameterised sample to the logits.
    logits = jnp.array([0.3, -jnp.inf, 0.1])
    y = jnp.array([0.4, 0.0, 0.6])
    grad_y = jax.jit(jax.grad(lambda y: rc.log_prob(y, logits=logits, temperature=0.7)))(y)
    assert np.all(np.isfinite(grad_y)), grad_y
    kept = jnp.array([0, 2])
    expected = jax.grad(lambda y: rc.log_prob(y, logits=logits[kept], temperature=0.7))(y[kept])
    np.testing.assert_allclose(grad_y[kept], expected, rtol=1e-5)

    def sampled_log_prob(logits):
        sample = rc.sample(jax.random.key(0), logits=logits, temperature=0.7)
        return rc.log_prob(sample, logits=logits, temperature=0.7)

    grad_logits = jax.jit(jax.grad(sampled_log_prob))(logits)
    assert np.all(np.isfinite(grad_logits[kept])), grad_logits


@pytest.mark.parametrize("dtype", DTYPES)
def test_plain_and_masked_forms_agree_without_dropped_classes(dtype, rng):
    # log_prob runs an unmasked form whenever no logit is -inf (forward, whenever all its
    # results are finite); with no logit of -inf it must agree with the masked form
    # everywhere, specials included, in the value and in what the derivatives read.
    from genmath.relaxed_categorical import _masked_parts, _plain_parts

    logits = rng.normal(0.0, 2.0, (64, 4)).astype(dtype)
    y = rng.dirichlet(np.ones(4), 64).astype(dtype)
    y[0] = [0.0, 0.3, 0.3, 0.4]  # boundary
    y[1] = [-0.1, 0.4, 0.3, 0.4]  # negative
    y[2] = [np.nan, 0.4, 0.3, 0.3]
    y[3] = [0.2, 0.2, 0.2, 0.2]  # off the simplex
    logits[4, 0], logits[5, 1] = np.nan, np.inf
    temperature = np.full((64, 1), 0.7, dtype)
    temperature[6] = -1.0
    tolerance = float(np.finfo(dtype).eps) ** 0.5  # y's own dtype is the compute dtype
    args = (jnp.asarray(y), jnp.asarray(logits), jnp.asarray(temperature), -1, tolerance)
    plain, masked = _plain_parts(*args), _masked_parts(*args)
    np.testing.assert_array_equal(np.isnan(plain.value), np.isnan(masked.value))
    assert np.isnan(plain.value[:7]).all() and np.isfinite(plain.value[7:]).all()
    tol = 4 * np.finfo(dtype).eps
    for name in plain._fields:
        # The parts of the defined rows; the derivatives of undefined ones are not used.
        np.testing.assert_allclose(
            getattr(plain, name)[7:], getattr(masked, name)[7:], rtol=tol, atol=0, err_msg=name
        )
    assert not np.signbit(plain.exps[7:]).any()


@pytest.mark.parametrize("dropped", [True, False], ids=["dropped", "none-dropped"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_derivative_rule_matches_autodiff_of_the_formula(dtype, dropped, rng):
    """log_prob's closed-form derivatives (each argument alone, and all three together)
    against autodiff of the textbook formula with a double-where for dropped classes; with
    no dropped class the rule takes its unmasked branch."""

    def formula(y, logits, temperature):
        dropped = logits == -jnp.inf
        safe_y = jnp.where(dropped, 1.0, y)
        log_y = jnp.log(safe_y)
        own = jnp.where(dropped, 0.0, jnp.where(dropped, 0.0, logits) - (temperature + 1.0) * log_y)
        shared = jnp.where(dropped, -jnp.inf, logits - temperature * log_y)
        count = jnp.sum(~dropped, axis=-1)
        return (
            jax.scipy.special.gammaln(count.astype(y.dtype))
            + (count - 1.0) * jnp.log(temperature[..., 0])
            + jnp.sum(own, axis=-1)
            - count * jax.nn.logsumexp(shared, axis=-1)
        )

    logits = rng.normal(0.0, 2.0, (16, 5)).astype(dtype)
    y = rng.dirichlet(np.ones(5), 16)
    if dropped:
        logits[:4, 1] = -np.inf  # dropped classes, at y = 0 as the density needs
        y[:4, 1] = 0.0
    y = (y / y.sum(-1, keepdims=True)).astype(dtype)
    temperature = rng.uniform(0.3, 2.0, (16, 1)).astype(dtype)
    primals = (jnp.asarray(y), jnp.asarray(logits), jnp.asarray(temperature))
    directions = [jnp.asarray(rng.normal(size=a.shape).astype(dtype)) for a in primals]
    directions[1] = jnp.where(jnp.isfinite(primals[1]), directions[1], 0.0)

    def log_prob(y, logits, temperature):
        return rc.log_prob(y, logits=logits, temperature=temperature[..., 0])

    tol = 64 * np.finfo(dtype).eps
    for live in ((0,), (1,), (2,), (0, 1, 2)):
        # Only the live arguments are differentiated: the others get symbolic zero tangents.
        def restricted(fn, *args, live=live):
            full = list(primals)
            for i, arg in zip(live, args, strict=True):
                full[i] = arg
            return fn(*full)

        live_primals = tuple(primals[i] for i in live)
        live_tangents = tuple(directions[i] for i in live)
        value, tangent = jax.jit(
            lambda p, t: jax.jvp(functools.partial(restricted, log_prob), p, t)
        )(live_primals, live_tangents)
        expected_value, expected = jax.jvp(
            functools.partial(restricted, formula), live_primals, live_tangents
        )
        np.testing.assert_allclose(value, expected_value, rtol=tol, atol=tol)
        scale = np.max(np.abs(np.asarray(expected)))
        np.testing.assert_allclose(tangent, expected, rtol=0, atol=tol * scale)
    # Reverse mode: the same numbers, and a zero gradient at the dropped logits.
    grads = jax.jit(jax.grad(lambda *a: jnp.sum(log_prob(*a)), argnums=(0, 1, 2)))(*primals)
    expected = jax.grad(lambda *a: jnp.sum(formula(*a)), argnums=(0, 1, 2))(*primals)
    for grad, reference in zip(grads, expected, strict=True):
        scale = np.max(np.abs(np.asarray(reference)))
        np.testing.assert_allclose(grad, reference, rtol=0, atol=tol * scale)
    if dropped:
        np.testing.assert_array_equal(grads[1][:4, 1], 0.0)


def test_empty_batch_has_a_zero_temperature_gradient():
    def total(temperature):
        y = jnp.ones((0, 3)) / 3
        return jnp.sum(rc.log_prob(y, logits=jnp.zeros((0, 3)), temperature=temperature))

    assert float(jax.jit(jax.grad(total))(1.0)) == 0.0


@pytest.mark.parametrize("classes", [3, 10, 100])
def test_a_sample_of_lower_precision_than_the_logits_is_on_the_simplex(classes):
    # A float32 sample scored against float64 logits (or a bfloat16 one against float32)
    # keeps its own rounding: judged at the finer dtype's sqrt(eps), most rows were NaN.
    logits = jax.random.normal(jax.random.key(0), (500, classes), DTYPE)
    y = rc.sample(jax.random.key(1), logits=logits, temperature=0.5)
    coarse = jnp.float32 if X64 else jnp.bfloat16
    y_coarse = y.astype(coarse)
    got = jax.jit(lambda y: rc.log_prob(y, logits=logits, temperature=0.5))(y_coarse)
    assert got.dtype == DTYPE
    # The density of the rounded sample itself, computed from its own values in float64.
    y64 = np.asarray(y_coarse.astype(jnp.float32), np.float64)
    log_y = np.log(y64)
    l64 = np.asarray(logits, np.float64)
    scaled = l64 - 0.5 * log_y
    reference = (
        sp.gammaln(classes)
        + (classes - 1) * np.log(0.5)
        + np.sum(scaled - log_y, axis=-1)
        - classes * sp.logsumexp(scaled, axis=-1)
    )
    on_simplex = np.abs(y64.sum(-1) - 1.0) <= np.sqrt(np.finfo(np.dtype(coarse)).eps)
    assert on_simplex.mean() > 0.99
    np.testing.assert_allclose(
        np.asarray(got, np.float64)[on_simplex],
        reference[on_simplex],
        rtol=1e-10 if X64 else 1e-5,
        # float32 rounding of the O(1) terms summed, where the sum is near 0
        atol=0.0 if X64 else 1e-5,
    )

"""genmath.relaxed_bernoulli against scipy's logistic distribution, quadrature, an independent
float64 formula of the binary Concrete density, and Monte Carlo."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util
from scipy import integrate, stats
from scipy import special as sp

from genmath import relaxed_bernoulli as rb
from tests.genmath.helpers import DTYPES, X64, f64, grad_tol, tol


def concrete_density(y, logit, temperature):
    """The binary Concrete density as Maddison et al. write it (float64, moderate values)."""
    alpha = np.exp(logit)
    numerator = temperature * alpha * y ** (-temperature - 1) * (1 - y) ** (-temperature - 1)
    return numerator / (alpha * y ** (-temperature) + (1 - y) ** (-temperature)) ** 2


# --- densities ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_logit_log_prob_is_scipys_logistic(rng, dtype):
    # x = (l + L) / lambda is logistic with location l / lambda and scale 1 / lambda.
    logits = rng.normal(0, 3, (4, 5)).astype(dtype)
    temperature = rng.uniform(0.1, 3.0, (4, 1)).astype(dtype)
    x = (f64(logits) / f64(temperature) + rng.normal(0, 4, (4, 5))).astype(dtype)
    value = jax.jit(rb.logit_log_prob)(x, logits=logits, temperature=temperature)
    expected = stats.logistic.logpdf(
        f64(x), loc=f64(logits) / f64(temperature), scale=1 / f64(temperature)
    ).sum(-1)
    chex.assert_shape(value, (4,))
    assert value.dtype == dtype
    np.testing.assert_allclose(value, expected, rtol=tol(dtype)["rtol"], atol=0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_prob_is_the_concrete_density(rng, dtype):
    y = rng.uniform(0.02, 0.98, (3, 6)).astype(dtype)
    logits = rng.normal(0, 2, (3, 6)).astype(dtype)
    temperature = rng.uniform(0.3, 3.0, (3, 6)).astype(dtype)
    value = jax.jit(rb.log_prob, static_argnames="axis")(
        y, logits=logits, temperature=temperature, axis=()
    )
    expected = np.log(concrete_density(f64(y), f64(logits), f64(temperature)))
    # The log-density is a sum of terms of size up to |l| + 4 |log y|: their rounding.
    np.testing.assert_allclose(value, expected, rtol=0, atol=200 * np.finfo(dtype).eps)
    # The two densities differ by the Jacobian of the logit: log p(y) = log p(x) - log y(1-y).
    x = np.log(f64(y)) - np.log1p(-f64(y))
    logit_value = rb.logit_log_prob(x.astype(dtype), logits=logits, temperature=temperature)
    np.testing.assert_allclose(
        f64(rb.log_prob(y, logits=logits, temperature=temperature)),
        f64(logit_value) - np.sum(np.log(f64(y)) + np.log1p(-f64(y)), -1),
        rtol=0,
        atol=200 * np.finfo(dtype).eps,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("logit", "temperature"), [(0.3, 0.5), (-2.0, 1.0), (1.5, 2.0), (4.0, 0.1)]
)
def test_densities_integrate_to_one(dtype, logit, temperature):
    logit, temperature = np.asarray(logit, dtype), np.asarray(temperature, dtype)

    def density(fn, point):
        return float(np.exp(fn(np.asarray([point], dtype), logits=logit, temperature=temperature)))

    # Quadrature error ~1e-10; the float32 density carries its own rounding (~1e-6).
    accuracy = 1e-8 if dtype == np.float64 else 1e-5
    centre = float(logit / temperature)
    total, _ = integrate.quad(lambda x: density(rb.logit_log_prob, x), -np.inf, np.inf)
    np.testing.assert_allclose(total, 1.0, atol=accuracy)
    if temperature >= 1 or (temperature >= 0.5 and dtype == np.float64):
        # On (0, 1) the density of y has integrable singularities at the ends for lambda < 1
        # (y^(lambda - 1)), which quad handles at lambda = 0.5 in float64; in float32 its
        # points next to 0 round to 0 (density +inf), and at lambda = 0.1 they defeat it in
        # any dtype. The logit form covers those cases.
        total, _ = integrate.quad(
            lambda y: density(rb.log_prob, y), 0, 1, points=[sp.expit(centre)], limit=200
        )
        np.testing.assert_allclose(total, 1.0, atol=10 * accuracy)


def test_log_prob_at_and_beyond_the_ends():
    logits = jnp.array([0.5, 0.5])
    y = jnp.array([0.0, 1.0])
    # The limits log(lambda) -/+ l + (lambda - 1) log(y or 1 - y): +inf, finite, -inf.
    np.testing.assert_array_equal(rb.log_prob(y, logits=logits, temperature=0.5, axis=()), np.inf)
    np.testing.assert_allclose(rb.log_prob(y, logits=logits, temperature=1.0, axis=()), [-0.5, 0.5])
    np.testing.assert_array_equal(rb.log_prob(y, logits=logits, temperature=2.0, axis=()), -np.inf)
    # Close to the ends the density approaches the lambda = 1 limit: 1 / alpha and alpha.
    near = jnp.array([1e-6, 1 - 1e-6])
    np.testing.assert_allclose(
        rb.log_prob(near, logits=logits, temperature=1.0, axis=()), [-0.5, 0.5], atol=1e-4
    )
    outside = rb.log_prob(jnp.array([-0.1, 1.1, jnp.nan]), logits=0.0, temperature=1.0, axis=())
    np.testing.assert_array_equal(outside, [-np.inf, -np.inf, np.nan])


def test_point_masses():
    # Logit +inf: a point mass at y = 1 (x = +inf); -inf at y = 0 (x = -inf).
    y = jnp.array([0.0, 0.5, 1.0])
    np.testing.assert_array_equal(
        rb.log_prob(y, logits=jnp.inf, temperature=0.5, axis=()), [-np.inf, -np.inf, np.inf]
    )
    np.testing.assert_array_equal(
        rb.log_prob(y, logits=-jnp.inf, temperature=2.0, axis=()), [np.inf, -np.inf, -np.inf]
    )
    x = jnp.array([-jnp.inf, 0.5, jnp.inf])
    np.testing.assert_array_equal(
        rb.logit_log_prob(x, logits=jnp.inf, temperature=0.5, axis=()), [-np.inf, -np.inf, np.inf]
    )
    grads = jax.grad(
        lambda lg, t: rb.logit_log_prob(jnp.array([0.5]), logits=lg, temperature=t), (0, 1)
    )(jnp.array([jnp.inf]), 0.5)
    np.testing.assert_array_equal(grads[0], 0.0)
    np.testing.assert_array_equal(grads[1], 0.0)
    key = jax.random.key(0)
    draws = rb.sample(key, logits=jnp.array([jnp.inf, -jnp.inf]), temperature=0.3, sample_shape=5)
    np.testing.assert_array_equal(draws, np.tile([1.0, 0.0], (5, 1)))


@pytest.mark.parametrize("atom", [jnp.inf, -jnp.inf])
def test_infinite_points_have_zero_gradients(atom):
    # x = +-inf, at a point mass's atom and off every atom: the temperature, the logit and x
    # itself get zero gradients (inf * 0 must not reach them).
    def total(x, logits, temperature):
        value = rb.logit_log_prob(x, logits=logits, temperature=temperature, axis=())
        return jnp.sum(jnp.where(jnp.isfinite(value), value, 0.0))

    x, logits = jnp.array([atom, atom, 0.3]), jnp.array([atom, 0.5, 0.5])
    grads = jax.jit(jax.grad(total, (0, 1, 2)))(x, logits, 0.5)
    np.testing.assert_array_equal(grads[0][:2], 0.0)
    np.testing.assert_array_equal(grads[1][:2], 0.0)
    assert np.isfinite(grads[2]) and np.isfinite(grads[0][2]) and grads[1][2] != 0.0
    # The sampler: a point mass does not move with its logit or the temperature.
    key = jax.random.key(1)
    jacobian = jax.jacobian(lambda lg, t: rb.logit_sample(key, logits=lg, temperature=t), (0, 1))(
        jnp.array([atom, 1.0]), 0.5
    )
    np.testing.assert_array_equal(jacobian[0], [[0.0, 0.0], [0.0, 2.0]])
    assert jacobian[1][0] == 0.0 and np.isfinite(jacobian[1][1])


@pytest.mark.parametrize("temperature", [1e-3, 1.0, 1e3])
def test_extreme_logits_stay_finite(temperature):
    logits = jnp.array([-1e4, -30.0, 0.0, 30.0, 1e4])
    key = jax.random.key(1)

    def loss(lg, t):
        x = rb.logit_sample(key, logits=lg, temperature=t)
        return rb.logit_log_prob(x, logits=lg, temperature=t) + jnp.sum(
            rb.sample(key, logits=lg, temperature=t)
        )

    value, grads = jax.value_and_grad(loss, (0, 1))(logits, temperature)
    assert np.isfinite(value)
    assert np.all(np.isfinite(grads[0])) and np.isfinite(grads[1])
    x = rb.logit_sample(key, logits=logits, temperature=temperature, sample_shape=100)
    assert np.all(np.isfinite(x))
    # Far from 0 the sign of x is the sign of the logit (|L| < 100 in float32 and float64).
    np.testing.assert_array_equal(np.sign(x[:, [0, 4]]), np.tile([-1.0, 1.0], (100, 1)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_grads(rng, dtype):
    y = rng.uniform(0.1, 0.9, 4).astype(dtype)
    x = rng.normal(0, 2, 4).astype(dtype)
    logits = rng.normal(0, 1.5, 4).astype(dtype)
    temperature = rng.uniform(0.5, 2.0, 4).astype(dtype)
    settings = grad_tol(dtype)
    eps = settings.pop("eps")
    for fn, data in ((rb.log_prob, y), (rb.logit_log_prob, x)):
        test_util.check_grads(
            lambda lg, t, d, fn=fn: fn(d, logits=lg, temperature=t),
            (logits, temperature, data),
            order=2,
            modes=["rev"],
            eps=eps,
            **settings,
        )
    key = jax.random.key(2)
    for fn in (rb.sample, rb.logit_sample):
        test_util.check_grads(
            lambda lg, t, fn=fn: fn(key, logits=lg, temperature=t),
            (logits, temperature),
            order=1,
            modes=["rev"],
            eps=eps,
            **settings,
        )


# --- samplers -------------------------------------------------------------------------

NUM_DRAWS = 100_000


@pytest.mark.parametrize(("logit", "temperature"), [(0.7, 0.5), (-1.5, 2.0)])
def test_samples_follow_the_density(logit, temperature):
    key = jax.random.key(3)
    x = f64(rb.logit_sample(key, logits=logit, temperature=temperature, sample_shape=NUM_DRAWS))
    y = f64(rb.sample(key, logits=logit, temperature=temperature, sample_shape=NUM_DRAWS))
    # The same draws: y = sigma(x).
    np.testing.assert_allclose(y, sp.expit(x), rtol=1e-6, atol=1e-7)
    # The logit's distribution function sigma(lambda x - l) (Kolmogorov-Smirnov; with fixed
    # keys the statistic is fixed: p-values above 1e-3 for a correct sampler).
    ks = stats.kstest(x, lambda v: sp.expit(temperature * v - logit))
    assert ks.pvalue > 1e-3, ks

    # The mean of y against the quadrature of sigma(x) p(x) (in the logit form: the density
    # of y is singular at the ends for lambda < 1), within 5 standard errors.
    def weighted(v):
        log_p = rb.logit_log_prob(np.array([v]), logits=logit, temperature=temperature)
        return sp.expit(v) * float(np.exp(log_p))

    mean, _ = integrate.quad(weighted, -np.inf, np.inf)
    standard_error = y.std(ddof=1) / np.sqrt(NUM_DRAWS)
    assert abs(y.mean() - mean) < 5 * standard_error, (y.mean(), mean, standard_error)


@pytest.mark.parametrize("logit", [-3.0, -0.5, 0.0, 2.0])
def test_hard_samples_are_bernoulli(logit):
    # P(hard = 1) = sigma(l) (the logistic-max trick), at any temperature; within 5 standard
    # errors sqrt(p (1 - p) / N).
    key = jax.random.key(4)
    hard = {
        t: f64(rb.straight_through_sample(key, logits=logit, temperature=t, sample_shape=NUM_DRAWS))
        for t in (0.1, 1.0, 10.0)
    }
    # The temperature does not change the hard value of a draw.
    np.testing.assert_array_equal(hard[0.1], hard[1.0])
    np.testing.assert_array_equal(hard[0.1], hard[10.0])
    p = sp.expit(logit)
    assert abs(hard[1.0].mean() - p) < 5 * np.sqrt(p * (1 - p) / NUM_DRAWS)


def test_straight_through_forward_is_hard_and_backward_relaxed(rng):
    key = jax.random.key(5)
    logits = jnp.asarray(rng.normal(size=6), jnp.float32)
    weights = jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)

    def relaxed_loss(lg, t):
        return jnp.sum(weights * rb.sample(key, logits=lg, temperature=t, sample_shape=3))

    def hard_loss(lg, t):
        return jnp.sum(
            weights * rb.straight_through_sample(key, logits=lg, temperature=t, sample_shape=3)
        )

    hard = rb.straight_through_sample(key, logits=logits, temperature=0.5, sample_shape=3)
    x = rb.logit_sample(key, logits=logits, temperature=0.5, sample_shape=3)
    np.testing.assert_array_equal(hard, np.where(f64(x) > 0, 1.0, 0.0))
    for expected, actual in zip(
        jax.grad(relaxed_loss, (0, 1))(logits, 0.5),
        jax.grad(hard_loss, (0, 1))(logits, 0.5),
        strict=True,
    ):
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)
    # straight_through on its own: y > 1/2 forward, identity backward.
    y = jnp.array([0.1, 0.5, 0.51, 0.9])
    np.testing.assert_array_equal(rb.straight_through(y), [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(
        jax.grad(lambda v: jnp.sum(weights[0, :4] * rb.straight_through(v)))(y), weights[0, :4]
    )


def test_shapes_and_broadcasting():
    key = jax.random.key(6)
    logits, temperature = jnp.zeros((3, 1)), jnp.full((4,), 0.5)
    for fn in (rb.sample, rb.logit_sample, rb.straight_through_sample):
        chex.assert_shape(fn(key, logits=logits, temperature=temperature), (3, 4))
        chex.assert_shape(
            fn(key, logits=logits, temperature=temperature, sample_shape=(2, 5)), (2, 5, 3, 4)
        )
    y = jnp.full((2, 3, 4), 0.5)
    chex.assert_shape(rb.log_prob(y, logits=logits, temperature=temperature), (2, 3))
    chex.assert_shape(rb.log_prob(y, logits=logits, temperature=0.5, axis=(0, 2)), (3,))
    chex.assert_shape(rb.logit_log_prob(y, logits=0.0, temperature=0.5, axis=()), (2, 3, 4))


# --- dtypes and errors ----------------------------------------------------------------


def test_dtypes():
    bf = jnp.full((3,), 0.5, jnp.bfloat16)
    key = jax.random.key(7)
    assert rb.log_prob(bf, logits=bf, temperature=bf).dtype == np.float32
    assert rb.logit_log_prob(bf, logits=bf, temperature=1.0).dtype == np.float32
    assert rb.sample(key, logits=bf, temperature=1.0).dtype == np.float32
    assert rb.straight_through(bf).dtype == np.float32
    if X64:
        f64_logits = np.zeros(3)
        assert rb.sample(key, logits=f64_logits, temperature=1.0).dtype == np.float64
        assert rb.log_prob(np.full(3, 0.5), logits=f64_logits, temperature=1.0).dtype == np.float64


def test_errors_name_the_argument():
    key = jax.random.key(8)
    logits = np.zeros(3, np.float32)
    for bad in (0.0, -1.0, np.array([1.0, -0.5]), np.nan):
        with pytest.raises(ValueError, match="temperature"):
            rb.log_prob(np.full(3, 0.5), logits=logits, temperature=bad)
        with pytest.raises(ValueError, match="temperature"):
            rb.sample(key, logits=logits, temperature=bad)
    with pytest.raises(TypeError, match="temperature"):
        rb.logit_sample(key, logits=logits, temperature=np.ones(3, np.int32))
    with pytest.raises(TypeError, match="logits"):
        rb.straight_through_sample(key, logits=np.zeros(3, np.int32), temperature=1.0)
    with pytest.raises(ValueError, match="shapes do not broadcast"):
        rb.log_prob(np.full(3, 0.5), logits=np.zeros(4, np.float32), temperature=1.0)
    with pytest.raises(ValueError, match="axis 1"):
        rb.logit_log_prob(np.zeros(3, np.float32), logits=logits, temperature=1.0, axis=1)
    with pytest.raises(TypeError, match="sample_shape"):
        rb.logit_sample(key, logits=logits, temperature=1.0, sample_shape=2.0)
    with pytest.raises(TypeError, match="`y`"):
        rb.straight_through(np.ones(3, np.int32))
    # Under jit the temperature is not known at trace time: NaN, documented.
    traced = jax.jit(lambda t: rb.log_prob(np.full(3, 0.5), logits=logits, temperature=t))
    assert np.isnan(traced(-1.0))
    traced_sample = jax.jit(lambda t: rb.sample(key, logits=logits, temperature=t))
    assert np.all(np.isnan(traced_sample(0.0)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, -1.0])
def test_plain_forward_and_differentiated_form_agree_everywhere(dtype, temperature):
    # log_prob runs a plain form forward and differentiates a guarded one: both must give
    # the same value on every kind of input, specials included.
    from genmath.relaxed_bernoulli import _differentiable_terms, _log_prob_terms

    inf, nan = np.inf, np.nan
    y = np.array([0.0, 1e-30, 0.3, 0.5, 1.0 - 1e-7, 1.0, -0.5, 1.5, nan], dtype)
    logits = np.array([-inf, -1e4, -3.0, 0.0, 2.0, 1e4, inf, nan], dtype)
    y, logits = (jnp.asarray(a) for a in np.meshgrid(y, logits))
    t = jnp.asarray(temperature, dtype)
    plain = jax.jit(_log_prob_terms)(y, logits, t)
    guarded = jax.jit(_differentiable_terms)(y, logits, t)
    np.testing.assert_array_equal(plain, guarded)

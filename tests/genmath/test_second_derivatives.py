"""Second derivatives at the ties of the hand-written rules' branches, and reverse-over-reverse
Hessians where a value is infinite with a documented zero gradient.

``jnp.abs`` has derivative +1 at 0; a formula that switches branches on ``t > 0`` (or
``t >= 0``) and writes ``|t|`` with it takes the wrong sign there in the second derivative.
A ``where`` that drops an infinite factor after the product still sends ``0 * inf`` through
the reverse pass of the derivative rule. Each case here failed before its fix, except the
plain discretised logistic (another code path), kept beside its mixture as a guard.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special as sp

from genmath import bernoulli, categorical, discretized_logistic, discretized_normal
from genmath import relaxed_categorical as rc
from tests.genmath.helpers import DTYPE


def second(f):
    """d^2 f as a function, eager and under jit stacked (XLA has flipped a tie's branch
    under jit that the eager run kept, and the other way round)."""
    rule = jax.grad(jax.grad(f))
    return lambda *args: jnp.stack([rule(*args), jax.jit(rule)(*args)])


def _continuous_sample(key, logit):
    return bernoulli.continuous_sample(key, logits=logit)


def test_continuous_sample_at_logit_zero():
    # At logit 0 the sample is the uniform u itself, and d^2x/deta^2 = u (1 - u)(1 - 2u) / 3
    # (the limit from both sides); the mirrored branch starts just above 0.
    for seed in range(8):
        key = jax.random.key(seed)
        draw = functools.partial(_continuous_sample, key)
        u = np.float64(draw(jnp.zeros((), DTYPE)))
        expected = u * (1.0 - u) * (1.0 - 2.0 * u) / 3.0
        np.testing.assert_allclose(second(draw)(jnp.zeros((), DTYPE)), expected, rtol=1e-5)


def _bin_second_derivative(cdf, density, density_slope, x, loc, scale):
    """d^2/dloc^2 log(F(b) - F(a)), a and b the standardised edges of pixel x, in float64
    (``density`` is F', ``density_slope`` F'')."""
    upper = np.where(x == 255, np.inf, (x + 0.5) / 255.0)
    lower = np.where(x == 0, -np.inf, (x - 0.5) / 255.0)
    b, a = (upper - loc) / scale, (lower - loc) / scale
    mass = cdf(b) - cdf(a)
    slope = -(density(b) - density(a)) / scale
    curvature = (density_slope(b) - density_slope(a)) / scale**2
    return curvature / mass - (slope / mass) ** 2


def _logistic(t):
    s = sp.expit(t)
    return s, s * (1 - s), s * (1 - s) * (1 - 2 * s)


@pytest.mark.parametrize("mixture", [False, True])
def test_discretized_logistic_with_a_bin_edge_at_the_location(mixture):
    # x = 128 has its lower edge 127.5/255 = 0.5: at loc = 0.5 the edge is exactly 0.
    x, loc, log_scale = 128, 0.5, -3.0

    def log_prob(loc):
        if mixture:
            return discretized_logistic.mixture_log_prob(
                jnp.array([x]),
                logits=jnp.zeros((1, 1), DTYPE),
                loc=jnp.reshape(loc, (1, 1)),
                log_scale=jnp.full((1, 1), log_scale, DTYPE),
            )
        return discretized_logistic.log_prob(
            jnp.array([x]), loc=jnp.reshape(loc, (1,)), log_scale=jnp.full(1, log_scale, DTYPE)
        )

    expected = _bin_second_derivative(
        lambda t: _logistic(t)[0],
        lambda t: _logistic(t)[1],
        lambda t: _logistic(t)[2],
        np.float64(x),
        loc,
        np.exp(log_scale),
    )
    np.testing.assert_allclose(second(log_prob)(jnp.asarray(loc, DTYPE)), expected, rtol=1e-5)


def test_discretized_normal_at_bin_centres():
    # loc = x / 255 puts the bin's centre at 0 (exactly, for many pixels in each dtype),
    # where the bin is not reflected.
    pixels = np.arange(1, 255)
    locs = (pixels / 255.0).astype(DTYPE)
    log_scale = -5.0

    def log_prob(loc, x):
        return discretized_normal.log_prob(
            x[None], loc=loc[None], log_scale=jnp.full(1, log_scale, DTYPE)
        )

    got = jax.vmap(jax.grad(jax.grad(log_prob)))
    args = (jnp.asarray(locs), jnp.asarray(pixels))
    got = jnp.stack([got(*args), jax.jit(got)(*args)])
    phi = lambda t: np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi)
    expected = _bin_second_derivative(
        sp.ndtr,
        phi,
        lambda t: -t * phi(t),
        pixels.astype(np.float64),
        locs.astype(np.float64),
        np.exp(log_scale),
    )
    np.testing.assert_allclose(
        got, np.stack([expected, expected]), rtol=1e-5 if DTYPE == np.float32 else 1e-9
    )


def _reverse_over_reverse_matches_hessian(f, point):
    reverse = jax.jit(jax.jacrev(jax.jacrev(f)))(point)
    mixed = jax.jit(jax.hessian(f))(point)
    assert np.isfinite(np.asarray(reverse)).all(), reverse
    np.testing.assert_allclose(reverse, mixed, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["kl", "cross_entropy"])
def test_bernoulli_divergence_with_a_support_mismatch(kind):
    divergence = getattr(bernoulli, kind)
    logits_q = jnp.array([jnp.inf, 1.0], DTYPE)  # q = 1 where p < 1: the value is +inf
    f = lambda logits_p: divergence(logits_p=logits_p, logits_q=logits_q)
    assert f(jnp.array([1.0, 0.5], DTYPE)) == jnp.inf
    _reverse_over_reverse_matches_hessian(f, jnp.array([1.0, 0.5], DTYPE))


@pytest.mark.parametrize("kind", ["kl", "cross_entropy"])
def test_categorical_divergence_with_a_class_q_cannot_draw(kind):
    divergence = getattr(categorical, kind)
    logits_q = jnp.array([0.1, -jnp.inf, 0.3], DTYPE)
    f = lambda logits_p: divergence(logits_p=logits_p, logits_q=logits_q)
    assert f(jnp.array([0.5, 0.2, -1.0], DTYPE)) == jnp.inf
    _reverse_over_reverse_matches_hessian(f, jnp.array([0.5, 0.2, -1.0], DTYPE))


def test_relaxed_categorical_with_a_dropped_class():
    logits = jnp.array([0.3, -jnp.inf, 1.0, -0.5], DTYPE)
    y = jnp.exp(rc.log_sample(jax.random.key(1), logits=logits, temperature=0.7))
    assert y[1] == 0
    f = lambda y: rc.log_prob(y, logits=logits, temperature=0.7)
    _reverse_over_reverse_matches_hessian(f, y)

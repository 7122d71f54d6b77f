"""Tests for genmath.normal against scipy float64, identities, Monte Carlo and gradients."""

from __future__ import annotations

import decimal
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import stats

from genmath import normal
from tests.genmath.helpers import DTYPE, X64, assert_close
from tests.genmath.helpers import rounding_tol as tol


def _array(rng, shape, low=-1.0, high=1.0):
    """Random inputs in the test dtype, and the same values in float64 for references."""
    value = jnp.asarray(rng.uniform(low, high, shape), DTYPE)
    return value, np.asarray(value, np.float64)


def _axes(axis, ndim):
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


# (x shape, loc shape, log_scale shape, axis)
LOG_PROB_CASES = [
    ((6, 5), (6, 5), (6, 5), -1),
    ((6, 5), (5,), (), -1),  # isotropic: one scalar log-scale for every pixel
    ((3, 4, 5), (4, 5), (3, 1, 5), (1, 2)),
    ((4, 3), (), (4, 1), 0),
]


@pytest.mark.parametrize(("x_shape", "loc_shape", "scale_shape", "axis"), LOG_PROB_CASES)
def test_log_prob_and_terms_match_scipy(rng, x_shape, loc_shape, scale_shape, axis):
    x, x64 = _array(rng, x_shape, -3.0, 3.0)
    loc, loc64 = _array(rng, loc_shape)
    log_scale, log_scale64 = _array(rng, scale_shape)
    shape = np.broadcast_shapes(x_shape, loc_shape, scale_shape)
    axes = _axes(axis, len(shape))
    batch_shape = tuple(n for i, n in enumerate(shape) if i not in axes)

    elementwise = stats.norm.logpdf(x64, loc64, np.exp(log_scale64))
    expected = np.sum(np.broadcast_to(elementwise, shape), axis=axes)
    value = jax.jit(functools.partial(normal.log_prob, axis=axis))(x, loc=loc, log_scale=log_scale)
    chex.assert_shape(value, batch_shape)
    assert value.dtype == DTYPE
    assert_close(value, expected, scale=np.max(np.sum(np.abs(elementwise), axis=axes)))

    terms = jax.jit(functools.partial(normal.log_prob_terms, axis=axis))(
        x, loc=loc, log_scale=log_scale
    )
    d = math.prod(shape[a] for a in axes)
    z = (x64 - loc64) / np.exp(log_scale64)
    assert_close(terms.constant, np.full(batch_shape, -0.5 * d * np.log(2 * np.pi)))
    assert_close(
        terms.log_scale_term,
        -np.sum(np.broadcast_to(log_scale64, shape), axis=axes),
        scale=d,
    )
    assert_close(terms.squared_error, -0.5 * np.sum(np.broadcast_to(z * z, shape), axis=axes))
    for term in terms:
        chex.assert_shape(term, batch_shape)
        assert term.dtype == DTYPE
    assert_close(sum(terms), value, scale=np.max(np.sum(np.abs(elementwise), axis=axes)))


def test_log_prob_is_affine_in_mse_for_fixed_scale(rng):
    """With a fixed sigma, log p = -D/2 log(2 pi) - D log(sigma) - D/(2 sigma^2) MSE."""
    d, log_sigma = 10, 0.3
    x, x64 = _array(rng, (8, d), -2.0, 2.0)
    loc, loc64 = _array(rng, (8, d))
    mse = np.mean((x64 - loc64) ** 2, axis=-1)
    terms = normal.log_prob_terms(x, loc=loc, log_scale=log_sigma)
    sigma2 = np.exp(2 * np.float64(np.asarray(jnp.asarray(log_sigma, DTYPE))))
    assert_close(terms.squared_error, -d / (2 * sigma2) * mse)
    assert_close(terms.log_scale_term, np.full(8, -d * log_sigma))
    value = normal.log_prob(x, loc=loc, log_scale=log_sigma)
    intercept = -0.5 * d * np.log(2 * np.pi) - d * log_sigma
    assert_close(value, intercept - d / (2 * sigma2) * mse)


@pytest.mark.parametrize("mask_shape", [(4, 6), (1, 6), (4, 1)])
def test_masked_log_prob(rng, mask_shape):
    x, x64 = _array(rng, (4, 6), -2.0, 2.0)
    loc, loc64 = _array(rng, (6,))
    log_scale, log_scale64 = _array(rng, (4, 6))
    mask = rng.random(mask_shape) < 0.6
    mask[..., 0] = True
    full_mask = np.broadcast_to(mask, (4, 6))
    elementwise = stats.norm.logpdf(x64, loc64, np.exp(log_scale64))
    expected = np.sum(np.where(full_mask, elementwise, 0.0), axis=-1)

    value = jax.jit(normal.log_prob)(x, loc=loc, log_scale=log_scale, where=mask)
    assert_close(value, expected, scale=np.max(np.sum(np.abs(elementwise), -1)))
    terms = normal.log_prob_terms(x, loc=loc, log_scale=log_scale, where=mask)
    count = full_mask.sum(-1)
    assert_close(terms.constant, -0.5 * count * np.log(2 * np.pi))
    assert_close(terms.log_scale_term, -np.sum(np.where(full_mask, log_scale64, 0.0), -1), scale=6)
    assert_close(sum(terms), value, scale=np.max(np.sum(np.abs(elementwise), -1)))

    # Masked-out entries may be NaN or infinite: neither values nor gradients see them.
    poisoned_x = jnp.where(full_mask, x, jnp.nan)
    poisoned_scale = jnp.where(full_mask, log_scale, jnp.inf)
    grads = jax.grad(
        lambda x, s: jnp.sum(normal.log_prob(x, loc=loc, log_scale=s, where=mask)),
        argnums=(0, 1),
    )(poisoned_x, poisoned_scale)
    assert_close(
        normal.log_prob(poisoned_x, loc=loc, log_scale=poisoned_scale, where=mask),
        expected,
        scale=np.max(np.sum(np.abs(elementwise), -1)),
    )
    for grad in grads:
        assert np.all(np.isfinite(grad))
        assert np.all(np.asarray(grad)[~full_mask] == 0.0)


@pytest.mark.parametrize(("shape", "axis"), [((5,), -1), ((3, 4), -1), ((3, 4), (0, 1))])
def test_entropy_matches_scipy(rng, shape, axis):
    log_scale, log_scale64 = _array(rng, shape, -3.0, 3.0)
    expected = np.sum(stats.norm(scale=np.exp(log_scale64)).entropy(), axis=axis)
    value = jax.jit(functools.partial(normal.entropy, axis=axis))(log_scale=log_scale)
    chex.assert_shape(value, np.shape(expected))
    assert_close(value, expected, scale=np.max(np.sum(np.abs(log_scale64) + 1.5, axis=axis)))


def _reference_kl(loc_p, log_scale_p, loc_q, log_scale_q):
    """Textbook closed form with explicit variances, in float64."""
    var_p, var_q = np.exp(2 * log_scale_p), np.exp(2 * log_scale_q)
    return log_scale_q - log_scale_p + (var_p + (loc_p - loc_q) ** 2) / (2 * var_q) - 0.5


# (p shapes, q shapes, axis)
KL_CASES = [
    ((7, 4), (7, 4), -1),
    ((7, 4), (4,), -1),  # one q for every p
    ((2, 3, 4), (3, 1), (1, 2)),
]


@pytest.mark.parametrize(("p_shape", "q_shape", "axis"), KL_CASES)
def test_kl_matches_closed_form_and_cross_entropy(rng, p_shape, q_shape, axis):
    loc_p, loc_p64 = _array(rng, p_shape, -2.0, 2.0)
    log_scale_p, log_scale_p64 = _array(rng, p_shape, -2.0, 1.0)
    loc_q, loc_q64 = _array(rng, q_shape, -2.0, 2.0)
    log_scale_q, log_scale_q64 = _array(rng, q_shape, -2.0, 1.0)
    shape = np.broadcast_shapes(p_shape, q_shape)
    axes = _axes(axis, len(shape))

    value = jax.jit(functools.partial(normal.kl, axis=axis))(
        loc_p=loc_p, log_scale_p=log_scale_p, loc_q=loc_q, log_scale_q=log_scale_q
    )
    elementwise = _reference_kl(loc_p64, log_scale_p64, loc_q64, log_scale_q64)
    assert_close(value, np.sum(elementwise, axis=axes))
    assert value.dtype == DTYPE

    # KL = H(p, q) - H(p), with the cross-entropy E_p[-log q(x)] computed independently:
    # log q is quadratic, so E_p[-log q] = -log q(mu_p) + var_p / (2 var_q).
    cross = -stats.norm.logpdf(loc_p64, loc_q64, np.exp(log_scale_q64)) + 0.5 * np.exp(
        2 * (log_scale_p64 - log_scale_q64)
    )
    own = stats.norm(scale=np.exp(log_scale_p64)).entropy()
    expected = np.sum(np.broadcast_to(cross - own, shape), axis=axes)
    assert_close(value, expected, scale=np.max(np.sum(np.broadcast_to(cross, shape), axis=axes)))
    assert np.all(np.asarray(value) >= 0.0)


@pytest.mark.parametrize(("p_shape", "q_shape", "axis"), KL_CASES)
def test_cross_entropy_matches_scipy_and_is_entropy_plus_kl(rng, p_shape, q_shape, axis):
    loc_p, loc_p64 = _array(rng, p_shape, -2.0, 2.0)
    log_scale_p, log_scale_p64 = _array(rng, p_shape, -2.0, 1.0)
    loc_q, loc_q64 = _array(rng, q_shape, -2.0, 2.0)
    log_scale_q, log_scale_q64 = _array(rng, q_shape, -2.0, 1.0)
    shape = np.broadcast_shapes(p_shape, q_shape)
    axes = _axes(axis, len(shape))
    args = dict(loc_p=loc_p, log_scale_p=log_scale_p, loc_q=loc_q, log_scale_q=log_scale_q)
    value = jax.jit(functools.partial(normal.cross_entropy, axis=axis))(**args)
    assert value.dtype == DTYPE
    # E_p[-log q(x)] by scipy: -log q(mu_p) + var_p / (2 var_q) (log q is quadratic) ...
    cross = -stats.norm.logpdf(loc_p64, loc_q64, np.exp(log_scale_q64)) + 0.5 * np.exp(
        2 * (log_scale_p64 - log_scale_q64)
    )
    cross = np.broadcast_to(cross, shape)
    scale = np.max(np.sum(np.abs(cross), axis=axes))
    assert_close(value, np.sum(cross, axis=axes), scale=scale)
    # ... and by numerical integration for one element (scipy's expectation).
    p_index, q_index = (0,) * len(p_shape), (0,) * len(q_shape)
    by_quad = stats.norm(loc_p64[p_index], np.exp(log_scale_p64[p_index])).expect(
        lambda x: -stats.norm.logpdf(x, loc_q64[q_index], np.exp(log_scale_q64[q_index]))
    )
    np.testing.assert_allclose(cross[(0,) * len(shape)], by_quad, rtol=1e-9)
    # H(p, q) = H(p) + KL(p || q), with genmath's own entropy and KL.
    entropy = normal.entropy(log_scale=jnp.broadcast_to(log_scale_p, shape), axis=axis)
    kl = normal.kl(**args, axis=axis)
    np.testing.assert_allclose(value, entropy + kl, rtol=tol(DTYPE), atol=tol(DTYPE) * scale)
    # H(q, q) = H(q).
    same = normal.cross_entropy(
        loc_p=loc_q, log_scale_p=log_scale_q, loc_q=loc_q, log_scale_q=log_scale_q
    )
    np.testing.assert_allclose(same, normal.entropy(log_scale=log_scale_q), rtol=tol(DTYPE))


@pytest.mark.parametrize("delta", [1e-1, 1e-3, 1e-5, 1e-8])
def test_kl_of_nearby_distributions_is_within_a_few_ulps_and_never_negative(rng, delta):
    """The documented accuracy: absolute error of a few ulps of max(1, KL_i) per element."""
    log_scale_q, log_scale_q64 = _array(rng, (50,), -2.0, 2.0)
    log_scale_p = log_scale_q + jnp.asarray(delta * rng.uniform(-1, 1, 50), DTYPE)
    log_scale_p64 = np.asarray(log_scale_p, np.float64)
    zeros = jnp.zeros(50, DTYPE)
    value = jax.jit(functools.partial(normal.kl, axis=()))(
        loc_p=zeros, log_scale_p=log_scale_p, loc_q=zeros, log_scale_q=log_scale_q
    )
    # Independent reference: 50-digit decimal arithmetic (float64 itself would cancel).
    with decimal.localcontext() as context:
        context.prec = 50
        expected = np.array(
            [
                float((2 * decimal.Decimal(p - q)).exp() - 1 - 2 * decimal.Decimal(p - q)) / 2
                for p, q in zip(log_scale_p64, log_scale_q64, strict=True)
            ]
        )
    eps = float(jnp.finfo(DTYPE).eps)
    error = np.abs(np.asarray(value, np.float64) - expected)
    assert np.all(error <= 2.0 * eps * np.maximum(expected, 1.0)), error.max() / eps
    assert np.all(np.asarray(value) >= 0.0)


@pytest.mark.parametrize("kind", ["kl", "kl_standard"])
def test_gradient_of_nearby_distributions_is_the_true_one(rng, kind):
    """Where rounding takes a tiny divergence below 0 the value is clamped, not the gradient:
    d/d log_scale_p = e^r - 1 and d/d loc_p = (mu_p - mu_q) / sigma_q^2 stay exact there
    (the clamp's derivative had zeroed whole rows near p == q)."""
    n = 400
    loc_p = jnp.asarray(rng.uniform(-3e-4, 3e-4, (n, 2)), DTYPE)
    log_scale_p = jnp.asarray(rng.uniform(-3e-4, 3e-4, (n, 2)), DTYPE)
    zeros = jnp.zeros((n, 2), DTYPE)
    if kind == "kl":
        f = lambda m, s: normal.kl(loc_p=m, log_scale_p=s, loc_q=zeros, log_scale_q=zeros)
    else:
        f = lambda m, s: normal.kl_standard(loc=m, log_scale=s)
    d_loc, d_log_scale = jax.jit(jax.grad(lambda m, s: jnp.sum(f(m, s)), argnums=(0, 1)))(
        loc_p, log_scale_p
    )
    assert np.all(np.asarray(f(loc_p, log_scale_p)) >= 0.0)
    m64, s64 = np.asarray(loc_p, np.float64), np.asarray(log_scale_p, np.float64)
    # Absolute errors: float32 rounding of e^r - 1 near r = 0 (about eps) and of the rest.
    np.testing.assert_allclose(d_loc, m64, rtol=tol(DTYPE), atol=4 * float(jnp.finfo(DTYPE).eps))
    np.testing.assert_allclose(
        d_log_scale, np.expm1(2 * s64), rtol=tol(DTYPE), atol=4 * float(jnp.finfo(DTYPE).eps)
    )


def test_kl_standard_matches_kl_and_formula(rng):
    loc, loc64 = _array(rng, (5, 8), -2.0, 2.0)
    log_scale, log_scale64 = _array(rng, (5, 8), -2.0, 1.0)
    value = jax.jit(normal.kl_standard)(loc=loc, log_scale=log_scale)
    expected = 0.5 * np.sum(np.exp(2 * log_scale64) + loc64**2 - 1 - 2 * log_scale64, axis=-1)
    assert_close(value, expected)
    general = normal.kl(loc_p=loc, log_scale_p=log_scale, loc_q=0.0, log_scale_q=0.0)
    np.testing.assert_allclose(value, general, rtol=tol(DTYPE))


def test_kl_of_identical_distributions_is_exactly_zero_with_zero_gradient(rng):
    loc, _ = _array(rng, (3, 6), -2.0, 2.0)
    log_scale, _ = _array(rng, (3, 6), -30.0, 30.0)

    def kl_pp(loc_p, log_scale_p):
        return jnp.sum(
            normal.kl(loc_p=loc_p, log_scale_p=log_scale_p, loc_q=loc, log_scale_q=log_scale)
        )

    value, grads = jax.jit(jax.value_and_grad(kl_pp, argnums=(0, 1)))(loc, log_scale)
    assert float(value) == 0.0
    for grad in grads:
        np.testing.assert_array_equal(np.asarray(grad), 0.0)
    standard_value, standard_grads = jax.jit(
        jax.value_and_grad(
            lambda m, s: jnp.sum(normal.kl_standard(loc=m, log_scale=s)), argnums=(0, 1)
        )
    )(jnp.zeros(4, DTYPE), jnp.zeros(4, DTYPE))
    assert float(standard_value) == 0.0
    for grad in standard_grads:
        np.testing.assert_array_equal(np.asarray(grad), 0.0)


def _standard_errors_apart(samples, expected):
    mean = np.mean(samples, axis=0)
    standard_error = np.std(samples, axis=0, ddof=1) / math.sqrt(samples.shape[0])
    return np.abs(mean - expected) / standard_error


def test_monte_carlo_kl_and_moments(rng):
    n = 20000
    loc_p, loc_p64 = _array(rng, (4,), -1.0, 1.0)
    log_scale_p, log_scale_p64 = _array(rng, (4,), -1.0, 0.5)
    loc_q, _ = _array(rng, (4,), -1.0, 1.0)
    log_scale_q, _ = _array(rng, (4,), -1.0, 0.5)
    x = normal.sample(jax.random.key(0), loc=loc_p, log_scale=log_scale_p, sample_shape=n)
    chex.assert_shape(x, (n, 4))
    log_ratio = normal.log_prob(x, loc=loc_p, log_scale=log_scale_p) - normal.log_prob(
        x, loc=loc_q, log_scale=log_scale_q
    )
    kl = normal.kl(loc_p=loc_p, log_scale_p=log_scale_p, loc_q=loc_q, log_scale_q=log_scale_q)
    x64 = np.asarray(x, np.float64)
    assert _standard_errors_apart(np.asarray(log_ratio, np.float64)[:, None], float(kl)) < 5
    assert np.all(_standard_errors_apart(x64, loc_p64) < 5)
    # Var of the sample variance of a Gaussian is 2 sigma^4 / n.
    std_error_var = np.sqrt(2.0 / n) * np.exp(2 * log_scale_p64)
    assert np.all(np.abs(np.var(x64, axis=0) - np.exp(2 * log_scale_p64)) < 5 * std_error_var)


@pytest.mark.parametrize(
    ("sample_shape", "param_shape", "expected"),
    [
        ((), (3,), (3,)),
        (5, (3,), (5, 3)),
        ((5,), (3,), (5, 3)),
        ([2, 5], (4, 1), (2, 5, 4, 1)),
        ((2, 5), (4, 1), (2, 5, 4, 1)),
    ],
)
def test_sample_shape_and_dtype(sample_shape, param_shape, expected):
    loc = jnp.zeros(param_shape, DTYPE)
    x = normal.sample(jax.random.key(1), loc=loc, log_scale=0.0, sample_shape=sample_shape)
    chex.assert_shape(x, expected)
    assert x.dtype == DTYPE


def _grad_eps(dtype):
    # Central differences: float32 needs a larger step for the rounding noise to stay small.
    return 1e-3 if jnp.dtype(dtype) == jnp.float32 else 1e-6


def test_gradients(rng):
    x, _ = _array(rng, (3, 4), -2.0, 2.0)
    loc, _ = _array(rng, (3, 4))
    log_scale, _ = _array(rng, (3, 4))
    loc_q, _ = _array(rng, (3, 4))
    log_scale_q, _ = _array(rng, (3, 4))
    mask = jnp.asarray(rng.random((3, 4)) < 0.5)
    eps = _grad_eps(DTYPE)

    def check(f, args, order=1, modes=("fwd", "rev")):
        # jit: one compilation per transformation instead of one per primitive.
        check_grads(jax.jit(f), args, order=order, modes=modes, eps=eps)

    check(lambda x, m, s: normal.log_prob(x, loc=m, log_scale=s), (x, loc, log_scale), order=2)
    check(lambda x, m, s: normal.log_prob(x, loc=m, log_scale=s, where=mask), (x, loc, log_scale))
    check(lambda s: normal.entropy(log_scale=s), (log_scale,))
    check(
        lambda a, b, c, d: normal.kl(loc_p=a, log_scale_p=b, loc_q=c, log_scale_q=d),
        (loc, log_scale, loc_q, log_scale_q),
    )
    check(lambda m, s: normal.kl_standard(loc=m, log_scale=s), (loc, log_scale))
    check(
        lambda a, b, c, d: normal.cross_entropy(loc_p=a, log_scale_p=b, loc_q=c, log_scale_q=d),
        (loc, log_scale, loc_q, log_scale_q),
        order=2,
    )
    # Reparameterised sampling: the sample is a differentiable function of the parameters.
    key = jax.random.key(2)
    # (Reverse mode only: every transformation recompiles the random-bit generator.)
    check(
        lambda m, s: normal.sample(key, loc=m, log_scale=s, sample_shape=(2,)),
        (loc, log_scale),
        modes=("rev",),
    )
    noise = jax.random.normal(key, (2, 3, 4), DTYPE)
    grad_scale = jax.grad(
        lambda s: jnp.sum(normal.sample(key, loc=loc, log_scale=s, sample_shape=(2,)))
    )
    np.testing.assert_allclose(
        grad_scale(log_scale), jnp.sum(noise, 0) * jnp.exp(log_scale), rtol=tol(DTYPE)
    )


def test_jit_and_vmap_agree_with_batched_call(rng):
    x, _ = _array(rng, (5, 3, 4), -2.0, 2.0)
    loc, _ = _array(rng, (5, 3, 4))
    log_scale, _ = _array(rng, (5, 1, 4))
    batched = normal.log_prob(x, loc=loc, log_scale=log_scale, axis=(1, 2))
    mapped = jax.vmap(lambda a, b, c: normal.log_prob(a, loc=b, log_scale=c, axis=(0, 1)))(
        x, loc, log_scale
    )
    jitted = jax.jit(functools.partial(normal.log_prob, axis=(1, 2)))(
        x, loc=loc, log_scale=log_scale
    )
    np.testing.assert_allclose(mapped, batched, rtol=tol(DTYPE))
    np.testing.assert_allclose(jitted, batched, rtol=tol(DTYPE))
    kl_batched = normal.kl(loc_p=loc, log_scale_p=log_scale, loc_q=x, log_scale_q=0.0)
    kl_mapped = jax.vmap(
        lambda a, b, c: normal.kl(loc_p=a, log_scale_p=b, loc_q=c, log_scale_q=0.0)
    )(loc, log_scale, x)
    np.testing.assert_allclose(kl_mapped, kl_batched, rtol=tol(DTYPE))


EXTREMES = [-30.0, 0.0, 30.0]


@pytest.mark.parametrize("log_scale_value", EXTREMES)
def test_log_prob_extreme_log_scales(rng, log_scale_value):
    x, x64 = _array(rng, (2, 3), -2.0, 2.0)
    loc, loc64 = _array(rng, (3,))
    log_scale = jnp.full((2, 3), log_scale_value, DTYPE)
    value, grads = jax.value_and_grad(
        lambda *a: jnp.sum(normal.log_prob(a[0], loc=a[1], log_scale=a[2])), argnums=(0, 1, 2)
    )(x, loc, log_scale)
    z2 = ((x64 - loc64) * np.exp(-log_scale_value)) ** 2
    expected = np.sum(-0.5 * z2 - log_scale_value - 0.5 * np.log(2 * np.pi))
    assert_close(value, expected, scale=np.sum(0.5 * z2 + abs(log_scale_value) + 1))
    for grad in grads:
        assert np.all(np.isfinite(np.asarray(grad)))
    # d/d(log sigma) = z^2 - 1, about 1e26 at log sigma = -30: still representable.
    np.testing.assert_allclose(
        np.asarray(grads[2], np.float64), z2 - 1.0, rtol=tol(DTYPE), atol=tol(DTYPE)
    )


@pytest.mark.parametrize("log_scale_p", EXTREMES)
@pytest.mark.parametrize("log_scale_q", EXTREMES)
def test_kl_extreme_log_scales(rng, log_scale_p, log_scale_q):
    loc_p, loc_p64 = _array(rng, (3,))
    loc_q, loc_q64 = _array(rng, (3,))
    args = dict(
        loc_p=loc_p,
        log_scale_p=jnp.full(3, log_scale_p, DTYPE),
        loc_q=loc_q,
        log_scale_q=jnp.full(3, log_scale_q, DTYPE),
    )
    value = normal.kl(**args)
    r = 2.0 * (log_scale_p - log_scale_q)
    expected = 0.5 * np.sum(np.expm1(r) - r + ((loc_p64 - loc_q64) * np.exp(-log_scale_q)) ** 2)
    grads = jax.grad(lambda kw: normal.kl(**kw))(args)
    if expected > float(jnp.finfo(DTYPE).max) / 10:
        # Only KL(sigma_p = e^30 || sigma_q = e^-30) = e^120 / 2 in float32: not representable.
        assert not X64
        assert float(value) == np.inf
        return
    assert_close(value, expected)
    for grad in jax.tree.leaves(grads):
        assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("log_scale_p", EXTREMES)
@pytest.mark.parametrize("log_scale_q", EXTREMES)
def test_cross_entropy_extreme_log_scales(rng, log_scale_p, log_scale_q):
    loc_p, loc_p64 = _array(rng, (3,))
    loc_q, loc_q64 = _array(rng, (3,))
    args = dict(
        loc_p=loc_p,
        log_scale_p=jnp.full(3, log_scale_p, DTYPE),
        loc_q=loc_q,
        log_scale_q=jnp.full(3, log_scale_q, DTYPE),
    )
    value = normal.cross_entropy(**args)
    r = 2.0 * (log_scale_p - log_scale_q)
    z = (loc_p64 - loc_q64) * np.exp(-log_scale_q)
    elementwise = 0.5 * np.log(2 * np.pi) + log_scale_q + 0.5 * (np.exp(r) + z**2)
    grads = jax.grad(lambda kw: normal.cross_entropy(**kw))(args)
    if np.sum(elementwise) > float(jnp.finfo(DTYPE).max) / 10:
        # sigma_p^2 / sigma_q^2 = e^120 is beyond float32.
        assert not X64
        assert float(value) == np.inf
        return
    assert_close(value, np.sum(elementwise), scale=np.sum(np.abs(elementwise)))
    for grad in jax.tree.leaves(grads):
        assert np.all(np.isfinite(np.asarray(grad)))
    # d/d(log sigma_p) = e^r, d/d(log sigma_q) = 1 - e^r - z^2.
    np.testing.assert_allclose(
        np.asarray(grads["log_scale_p"], np.float64),
        np.exp(r),
        rtol=tol(DTYPE),
        atol=float(jnp.finfo(DTYPE).tiny),  # e^-120 underflows in float32
    )


@pytest.mark.parametrize("in_dtype", [jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64])
def test_dtypes(rng, in_dtype):
    if in_dtype == jnp.float64 and not X64:
        pytest.skip("float64 needs JAX_ENABLE_X64=1")
    expected_dtype = jnp.float64 if in_dtype == jnp.float64 else jnp.float32
    x = jnp.asarray(rng.normal(size=(2, 8)), in_dtype)
    loc = jnp.asarray(rng.normal(size=(2, 8)), in_dtype)
    log_scale = jnp.asarray(rng.uniform(-1, 1, (2, 8)), in_dtype)
    x64, loc64, log_scale64 = (np.asarray(v, np.float64) for v in (x, loc, log_scale))
    value = normal.log_prob(x, loc=loc, log_scale=log_scale)
    assert value.dtype == expected_dtype
    expected = np.sum(stats.norm.logpdf(x64, loc64, np.exp(log_scale64)), -1)
    # Half-precision inputs are exact in float32, so the float32 tolerance applies.
    assert_close(value, expected, dtype=expected_dtype)
    outputs = [
        normal.entropy(log_scale=log_scale),
        normal.kl(loc_p=loc, log_scale_p=log_scale, loc_q=x, log_scale_q=log_scale),
        normal.kl_standard(loc=loc, log_scale=log_scale),
        normal.cross_entropy(loc_p=loc, log_scale_p=log_scale, loc_q=x, log_scale_q=0.0),
        normal.sample(jax.random.key(0), loc=loc, log_scale=log_scale),
        *normal.log_prob_terms(x, loc=loc, log_scale=log_scale),
    ]
    for output in outputs:
        assert output.dtype == expected_dtype


def test_integer_and_boolean_observations_are_accepted():
    x = jnp.array([[0, 1, 1]], jnp.int32)
    value = normal.log_prob(x, loc=jnp.zeros(3, DTYPE), log_scale=0.0)
    assert value.dtype == DTYPE
    expected = np.sum(stats.norm.logpdf([0.0, 1.0, 1.0]))
    assert_close(value, [expected])
    assert_close(
        normal.log_prob(x.astype(bool), loc=jnp.zeros(3, DTYPE), log_scale=0.0), [expected]
    )


def test_errors():
    x = jnp.zeros((2, 3), DTYPE)
    with pytest.raises(TypeError, match="loc"):
        normal.log_prob(x, loc=jnp.zeros(3, jnp.int32), log_scale=0.0)
    with pytest.raises(TypeError, match="log_scale"):
        normal.kl_standard(loc=x, log_scale=jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match="`loc`"):
        normal.log_prob(x, loc=jnp.zeros(4, DTYPE), log_scale=0.0)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        normal.log_prob(x, loc=0.0, log_scale=0.0, axis=2)
    with pytest.raises(ValueError, match="repeated axis"):
        normal.entropy(log_scale=x, axis=(1, -1))
    with pytest.raises(TypeError, match="boolean mask"):
        normal.log_prob(x, loc=0.0, log_scale=0.0, where=jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="where"):
        normal.log_prob(x, loc=0.0, log_scale=0.0, where=jnp.ones((4,), bool))
    with pytest.raises(ValueError, match="log_scale_q"):
        normal.kl(loc_p=x, log_scale_p=x, loc_q=x, log_scale_q=jnp.zeros(5, DTYPE))
    with pytest.raises(ValueError, match="log_scale_q"):
        normal.cross_entropy(loc_p=x, log_scale_p=x, loc_q=x, log_scale_q=jnp.zeros(5, DTYPE))
    with pytest.raises(TypeError, match="loc_q"):
        normal.cross_entropy(loc_p=x, log_scale_p=x, loc_q=jnp.zeros(3, jnp.int32), log_scale_q=x)
    # The checks are static, so they fire while tracing under jit.
    with pytest.raises(ValueError, match="`loc`"):
        jax.jit(normal.log_prob)(x, loc=jnp.zeros(4, DTYPE), log_scale=0.0)

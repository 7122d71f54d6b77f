"""Tests for genmath.mvn against scipy / numpy float64 with explicit inverses."""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from jax.scipy.linalg import solve_triangular
from jax.test_util import check_grads
from scipy import stats

from genmath import mvn, normal
from genmath._src.triangular import (
    _block_inverses,
    _solve_transposed,
    solve_lower,
    strict_lower_squares,
)
from tests.genmath.helpers import DTYPE, X64, assert_close
from tests.genmath.helpers import rounding_tol as tol


def _as(value, dtype=DTYPE):
    """The value in the test dtype, and exactly the same numbers in float64."""
    value = jnp.asarray(value, dtype)
    return value, np.asarray(value, np.float64)


def _random_tril(rng, batch_shape, d, dtype=DTYPE):
    """Well-conditioned Cholesky factors with a positive diagonal."""
    strict = np.tril(rng.normal(0.0, 0.5 / math.sqrt(d), (*batch_shape, d, d)), k=-1)
    diagonal = np.exp(rng.uniform(-0.5, 0.5, (*batch_shape, d)))
    return _as(strict + diagonal[..., None] * np.eye(d), dtype)


def _covariance(tril64):
    return tril64 @ np.swapaxes(tril64, -1, -2)


def _reference_log_prob(x64, loc64, tril64):
    d = tril64.shape[-1]
    batch = np.broadcast_shapes(x64.shape[:-1], np.shape(loc64)[:-1], tril64.shape[:-2])
    x64 = np.broadcast_to(x64, (*batch, d))
    loc64 = np.broadcast_to(loc64, (*batch, d))
    tril64 = np.broadcast_to(tril64, (*batch, d, d))
    out = np.empty(batch)
    for index in np.ndindex(*batch):
        out[index] = stats.multivariate_normal.logpdf(
            x64[index], loc64[index], _covariance(tril64[index])
        )
    return out


def _reference_kl(loc_p, tril_p, loc_q, tril_q):
    """Textbook closed form with explicit inverses and log-determinants, in float64."""
    cov_p, cov_q = _covariance(tril_p), _covariance(tril_q)
    inv_q = np.linalg.inv(cov_q)
    diff = (np.asarray(loc_p) - np.asarray(loc_q))[..., None]
    d = cov_p.shape[-1]
    trace = np.trace(inv_q @ cov_p, axis1=-2, axis2=-1)
    mahalanobis = (np.swapaxes(diff, -1, -2) @ inv_q @ diff)[..., 0, 0]
    log_det = np.linalg.slogdet(cov_q)[1] - np.linalg.slogdet(cov_p)[1]
    return 0.5 * (trace - d + mahalanobis + log_det)


# (x shape, loc shape, scale_tril batch shape), D = 3
LOG_PROB_CASES = [
    ((64, 3), (3,), ()),  # one distribution, many points
    ((16, 8, 3), (8, 3), (8,)),  # 8 distributions, 16 points each
    ((6, 3), (6, 3), (6,)),  # one point per distribution
    ((5, 1, 3), (), (4,)),  # scalar loc
    ((3,), (4, 3), ()),  # one point, several means
    ((2, 1, 4, 3), (3, 1, 3), (4,)),  # mixed column and batch axes
]


@pytest.mark.parametrize(("x_shape", "loc_shape", "tril_batch"), LOG_PROB_CASES)
def test_log_prob_matches_scipy(rng, x_shape, loc_shape, tril_batch):
    x, x64 = _as(rng.normal(0.0, 1.5, x_shape))
    loc, loc64 = _as(rng.normal(0.0, 1.0, loc_shape))
    tril, tril64 = _random_tril(rng, tril_batch, 3)
    expected = _reference_log_prob(x64, loc64, tril64)
    value = jax.jit(mvn.log_prob)(x, loc=loc, scale_tril=tril)
    chex.assert_shape(value, expected.shape)
    assert value.dtype == DTYPE
    assert_close(value, expected)


def _equations(jaxpr, names):
    """Every equation of the given primitives, including those inside nested jaxprs."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in names:
            found.append(eqn)
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", None)
            if inner is not None:
                found.extend(_equations(getattr(inner, "jaxpr", inner), names))
    return found


def _triangular_solves(jaxpr):
    return _equations(jaxpr, ("triangular_solve",))


def _operation_on_points(jaxpr, a_shape, rows_shape):
    """The one equation applied to the points, as rows ``rows_shape`` ``(..., K, D)``: LAPACK's
    solve from the right (fewer points than D) or the product with the transposed inverse of
    the factor (at least as many); the factor (or its inverse) has ``a_shape``."""
    (eqn,) = [
        e
        for e in _equations(jaxpr, ("triangular_solve", "dot_general"))
        if rows_shape in [v.aval.shape for v in e.invars]
    ]
    assert a_shape in [v.aval.shape for v in eqn.invars]
    if rows_shape[-2] >= rows_shape[-1]:
        assert eqn.primitive.name == "dot_general"
        assert not _triangular_solves(jaxpr)
    else:
        assert eqn.primitive.name == "triangular_solve"
        assert eqn.params["left_side"] is False
    return eqn


@pytest.mark.parametrize(
    ("x_shape", "loc_shape", "tril_batch", "a_shape", "rows_shape"),
    [
        ((4096, 5), (5,), (), (5, 5), (4096, 5)),
        ((16, 256, 5), (256, 5), (256,), (256, 5, 5), (256, 16, 5)),
        ((4, 256, 5), (256, 5), (256,), (256, 5, 5), (256, 4, 5)),
    ],
)
def test_shared_factors_are_solved_once_with_points_as_rows(
    x_shape, loc_shape, tril_batch, a_shape, rows_shape
):
    """One distribution x 4096 points is one solve (or one product with the inverse) of a
    (4096, D) block of rows: the factor is never repeated per point."""
    jaxpr = jax.make_jaxpr(lambda x, m, t: mvn.log_prob(x, loc=m, scale_tril=t))(
        jnp.zeros(x_shape, DTYPE),
        jnp.zeros(loc_shape, DTYPE),
        jnp.zeros((*tril_batch, 5, 5), DTYPE),
    )
    _operation_on_points(jaxpr.jaxpr, a_shape, rows_shape)


@pytest.mark.parametrize(
    ("x_shape", "loc_shape", "tril_batch", "a_shape", "rows_shape"),
    [
        ((4096, 5), (5,), (), (8, 5, 5), (8, 512, 5)),
        ((16, 256, 5), (256, 5), (256,), (256, 8, 5, 5), (256, 8, 2, 5)),
        ((12, 5), (5,), (), (4, 5, 5), (4, 3, 5)),  # gcd(12, 8) = 4 groups
    ],
)
def test_shared_factors_are_solved_in_one_group_per_device(
    monkeypatch, x_shape, loc_shape, tril_batch, a_shape, rows_shape
):
    """With 8 devices the points split into (up to) 8 groups along a batch axis of the
    solve, which XLA can shard; the factor is repeated per group, not per point."""
    monkeypatch.setattr(mvn, "_column_groups", lambda k: math.gcd(k, 8))
    jaxpr = jax.make_jaxpr(lambda x, m, t: mvn.log_prob(x, loc=m, scale_tril=t))(
        jnp.zeros(x_shape, DTYPE),
        jnp.zeros(loc_shape, DTYPE),
        jnp.zeros((*tril_batch, 5, 5), DTYPE),
    )
    _operation_on_points(jaxpr.jaxpr, a_shape, rows_shape)


@pytest.mark.parametrize(
    ("x_shape", "loc_shape", "tril_batch"),
    [
        ((64, 4), (4,), ()),
        ((16, 6, 4), (6, 4), (6,)),
        ((8, 3, 1, 4), (3, 1, 4), (2,)),  # columns on two axes, broadcast both ways
    ],
)
def test_grouped_columns_give_the_same_values(monkeypatch, rng, x_shape, loc_shape, tril_batch):
    """Grouping only rearranges the columns: every function returns the ungrouped values."""
    x, _ = _as(rng.normal(size=x_shape))
    loc, _ = _as(rng.normal(size=loc_shape))
    tril, _ = _random_tril(rng, tril_batch, 4)
    loc_p, _ = _as(rng.normal(size=x_shape))

    def values():
        fn = jax.jit(
            lambda x, loc, tril, loc_p: (
                mvn.log_prob(x, loc=loc, scale_tril=tril),
                jax.grad(lambda t: jnp.sum(mvn.log_prob(x, loc=loc, scale_tril=t)))(tril),
                mvn.kl(loc_p=loc_p, scale_tril_p=tril, loc_q=loc, scale_tril_q=tril),
                mvn.sample(jax.random.key(0), loc=loc, scale_tril=tril, sample_shape=x_shape[:1]),
            )
        )
        return fn(x, loc, tril, loc_p)

    monkeypatch.setattr(mvn, "_column_groups", lambda k: 1)
    ungrouped = values()
    monkeypatch.setattr(mvn, "_column_groups", lambda k: math.gcd(k, 8))
    grouped = values()
    for a, b in zip(grouped, ungrouped, strict=True):
        chex.assert_equal_shape((a, b))
        np.testing.assert_allclose(a, b, rtol=tol(DTYPE), atol=tol(DTYPE))


@pytest.mark.parametrize("tril_batch", [(), (2, 3)])
def test_entropy_matches_scipy(rng, tril_batch):
    tril, tril64 = _random_tril(rng, tril_batch, 4)
    value = jax.jit(mvn.entropy)(scale_tril=tril)
    expected = np.empty(tril_batch)
    for index in np.ndindex(*tril_batch):
        expected[index] = stats.multivariate_normal(cov=_covariance(tril64[index])).entropy()
    chex.assert_shape(value, tril_batch)
    assert_close(value, expected, scale=np.max(np.abs(expected)) + 4)


# (loc_p shape, tril_p batch, loc_q shape, tril_q batch), D = 4
KL_CASES = [
    ((5, 4), (5,), (5, 4), (5,)),
    ((5, 4), (5,), (4,), ()),  # one q for every p
    ((2, 3, 4), (3,), (), (2, 1)),  # scalar loc_q, factors broadcast (3,) x (2, 1)
]


@pytest.mark.parametrize(("loc_p_shape", "tril_p_batch", "loc_q_shape", "tril_q_batch"), KL_CASES)
def test_kl_matches_closed_form_and_cross_entropy(
    rng, loc_p_shape, tril_p_batch, loc_q_shape, tril_q_batch
):
    loc_p, loc_p64 = _as(rng.normal(0.0, 1.0, loc_p_shape))
    loc_q, loc_q64 = _as(rng.normal(0.0, 1.0, loc_q_shape))
    tril_p, tril_p64 = _random_tril(rng, tril_p_batch, 4)
    tril_q, tril_q64 = _random_tril(rng, tril_q_batch, 4)
    value = jax.jit(mvn.kl)(loc_p=loc_p, scale_tril_p=tril_p, loc_q=loc_q, scale_tril_q=tril_q)
    expected = _reference_kl(loc_p64, tril_p64, loc_q64, tril_q64)
    chex.assert_shape(value, expected.shape)
    assert value.dtype == DTYPE
    assert_close(value, expected)
    assert np.all(np.asarray(value) >= 0.0)

    # KL = H(p, q) - H(p) with H(p, q) = E_p[-log q] = -log q(mu_p) + tr(Sigma_q^-1 Sigma_p) / 2.
    batch = expected.shape
    loc_p64, loc_q64 = np.broadcast_to(loc_p64, (*batch, 4)), np.broadcast_to(loc_q64, (*batch, 4))
    tril_p64 = np.broadcast_to(tril_p64, (*batch, 4, 4))
    tril_q64 = np.broadcast_to(tril_q64, (*batch, 4, 4))
    cross = np.empty(batch)
    own = np.empty(batch)
    for index in np.ndindex(*batch):
        cov_p, cov_q = _covariance(tril_p64[index]), _covariance(tril_q64[index])
        cross[index] = -stats.multivariate_normal.logpdf(
            loc_p64[index], loc_q64[index], cov_q
        ) + 0.5 * np.trace(np.linalg.solve(cov_q, cov_p))
        own[index] = stats.multivariate_normal(cov=cov_p).entropy()
    assert_close(value, cross - own, scale=np.max(np.abs(cross)))


@pytest.mark.parametrize(("loc_p_shape", "tril_p_batch", "loc_q_shape", "tril_q_batch"), KL_CASES)
def test_cross_entropy_matches_scipy_and_is_entropy_plus_kl(
    rng, loc_p_shape, tril_p_batch, loc_q_shape, tril_q_batch
):
    loc_p, loc_p64 = _as(rng.normal(0.0, 1.0, loc_p_shape))
    loc_q, loc_q64 = _as(rng.normal(0.0, 1.0, loc_q_shape))
    tril_p, tril_p64 = _random_tril(rng, tril_p_batch, 4)
    tril_q, tril_q64 = _random_tril(rng, tril_q_batch, 4)
    args = dict(loc_p=loc_p, scale_tril_p=tril_p, loc_q=loc_q, scale_tril_q=tril_q)
    value = jax.jit(lambda kw: mvn.cross_entropy(**kw))(args)
    assert value.dtype == DTYPE
    # E_p[-log q(x)] = -log q(mu_p) + tr(Sigma_q^-1 Sigma_p) / 2, with scipy's log-density.
    batch = value.shape
    loc_p64, loc_q64 = np.broadcast_to(loc_p64, (*batch, 4)), np.broadcast_to(loc_q64, (*batch, 4))
    tril_p64 = np.broadcast_to(tril_p64, (*batch, 4, 4))
    tril_q64 = np.broadcast_to(tril_q64, (*batch, 4, 4))
    expected = np.empty(batch)
    for index in np.ndindex(*batch):
        cov_p, cov_q = _covariance(tril_p64[index]), _covariance(tril_q64[index])
        expected[index] = -stats.multivariate_normal.logpdf(
            loc_p64[index], loc_q64[index], cov_q
        ) + 0.5 * np.trace(np.linalg.solve(cov_q, cov_p))
    assert_close(value, expected)
    # H(p, q) = H(p) + KL(p || q) with genmath's own entropy and KL, and H(q, q) = H(q).
    own = mvn.entropy(scale_tril=jnp.broadcast_to(tril_p, (*batch, 4, 4)))
    assert_close(value, own + mvn.kl(**args), scale=np.max(np.abs(expected)))
    same = mvn.cross_entropy(loc_p=loc_q, scale_tril_p=tril_q, loc_q=loc_q, scale_tril_q=tril_q)
    assert_close(same, mvn.entropy(scale_tril=tril_q))


def test_cross_entropy_monte_carlo(rng):
    # E_p[-log q(x)] estimated from reparameterised samples of p.
    loc_p, _ = _as(rng.normal(0.0, 1.0, (3,)))
    loc_q, _ = _as(rng.normal(0.0, 1.0, (3,)))
    tril_p, _ = _random_tril(rng, (), 3)
    tril_q, _ = _random_tril(rng, (), 3)
    x = mvn.sample(jax.random.key(3), loc=loc_p, scale_tril=tril_p, sample_shape=20_000)
    neg_log_q = -np.asarray(mvn.log_prob(x, loc=loc_q, scale_tril=tril_q), np.float64)
    value = mvn.cross_entropy(loc_p=loc_p, scale_tril_p=tril_p, loc_q=loc_q, scale_tril_q=tril_q)
    assert _standard_errors_apart(neg_log_q[:, None], float(value)) < 5


def test_kl_of_identical_distributions_is_exactly_zero_with_zero_gradient(rng):
    loc, _ = _as(rng.normal(0.0, 1.0, (3, 6)))
    tril, _ = _random_tril(rng, (3,), 6)

    def kl_pp(loc_p, tril_p):
        return jnp.sum(mvn.kl(loc_p=loc_p, scale_tril_p=tril_p, loc_q=loc, scale_tril_q=tril))

    value, grads = jax.jit(jax.value_and_grad(kl_pp, argnums=(0, 1)))(loc, tril)
    assert float(value) == 0.0
    for grad in grads:
        np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_diagonal_factors_agree_with_normal(rng):
    loc_p, _ = _as(rng.normal(0.0, 1.0, (5, 4)))
    loc_q, _ = _as(rng.normal(0.0, 1.0, (5, 4)))
    log_scale_p, _ = _as(rng.uniform(-1.0, 1.0, (5, 4)))
    log_scale_q, _ = _as(rng.uniform(-1.0, 1.0, (5, 4)))
    x, _ = _as(rng.normal(0.0, 1.5, (7, 5, 4)))
    eye = jnp.eye(4, dtype=DTYPE)
    tril_p = jnp.exp(log_scale_p)[..., None] * eye
    tril_q = jnp.exp(log_scale_q)[..., None] * eye
    full = mvn.kl(loc_p=loc_p, scale_tril_p=tril_p, loc_q=loc_q, scale_tril_q=tril_q)
    diagonal = normal.kl(loc_p=loc_p, log_scale_p=log_scale_p, loc_q=loc_q, log_scale_q=log_scale_q)
    assert_close(full, diagonal)
    assert_close(
        mvn.log_prob(x, loc=loc_p, scale_tril=tril_p),
        normal.log_prob(x, loc=loc_p, log_scale=log_scale_p),
    )
    assert_close(mvn.entropy(scale_tril=tril_p), normal.entropy(log_scale=log_scale_p))
    assert_close(
        mvn.cross_entropy(loc_p=loc_p, scale_tril_p=tril_p, loc_q=loc_q, scale_tril_q=tril_q),
        normal.cross_entropy(
            loc_p=loc_p, log_scale_p=log_scale_p, loc_q=loc_q, log_scale_q=log_scale_q
        ),
    )


def test_only_the_lower_triangle_is_read(rng):
    loc, _ = _as(rng.normal(0.0, 1.0, (2, 3)))
    x, _ = _as(rng.normal(0.0, 1.0, (5, 2, 3)))
    tril, _ = _random_tril(rng, (2,), 3)
    garbage = tril + jnp.triu(jnp.asarray(rng.normal(0.0, 10.0, (2, 3, 3)), DTYPE), k=1)
    for fn in (
        lambda t: mvn.log_prob(x, loc=loc, scale_tril=t),
        lambda t: mvn.entropy(scale_tril=t),
        lambda t: mvn.kl(loc_p=loc, scale_tril_p=t, loc_q=0.0, scale_tril_q=t[::-1]),
        lambda t: mvn.sample(jax.random.key(0), loc=loc, scale_tril=t, sample_shape=(4,)),
    ):
        np.testing.assert_array_equal(np.asarray(fn(garbage)), np.asarray(fn(tril)))


@pytest.mark.parametrize("points", [2, 5], ids=["solve", "inverse"])
def test_the_upper_triangle_gets_no_gradient(rng, points):
    """Both log_prob routes (fewer points than D per factor, and at least D) differentiate
    only the lower triangle, whatever the upper one holds."""
    loc, _ = _as(rng.normal(0.0, 1.0, (2, 3)))
    x, _ = _as(rng.normal(0.0, 1.0, (points, 2, 3)))
    tril, _ = _random_tril(rng, (2,), 3)
    garbage = tril + jnp.triu(jnp.asarray(rng.normal(0.0, 10.0, (2, 3, 3)), DTYPE), k=1)
    grad = jax.jit(jax.grad(lambda t: jnp.sum(mvn.log_prob(x, loc=loc, scale_tril=t))))
    np.testing.assert_array_equal(np.triu(np.asarray(grad(garbage)), k=1), 0.0)
    np.testing.assert_array_equal(np.asarray(grad(garbage)), np.asarray(grad(tril)))


@pytest.mark.parametrize(
    ("x_shape", "loc_shape"),
    [
        ((3, 4, 6), (4, 6)),  # one mean per factor, shared by its points
        ((3, 1, 6), (3, 4, 6)),  # a mean per point: subtracted before the arrangement
        ((3, 4, 6), ()),  # scalar mean
    ],
)
def test_the_lapack_route_derivatives_match_the_textbook_solve(rng, x_shape, loc_shape):
    """With fewer points than D per factor, log_prob's closed-form derivative rule gives
    the derivatives of the textbook solve: each argument alone (the others symbolic
    zeros), all together, in both modes and to second order."""
    d = 6
    x, _ = _as(rng.normal(0.0, 1.0, x_shape))
    loc, _ = _as(rng.normal(0.0, 1.0, loc_shape))
    tril, _ = _random_tril(rng, (4,), d)

    def textbook(x, m, t):
        z = solve_triangular(jnp.tril(t), jnp.moveaxis(x - m, 0, -1), lower=True)
        log_det = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(t, axis1=-2, axis2=-1))), axis=-1)
        squares = jnp.moveaxis(jnp.sum(jnp.square(z), axis=-2), -1, 0)
        return -0.5 * d * math.log(2.0 * math.pi) - log_det - 0.5 * squares

    def ours(x, m, t):
        return mvn.log_prob(x, loc=m, scale_tril=t)

    args = (x, loc, tril)
    tangents = tuple(jnp.asarray(rng.normal(size=a.shape), DTYPE) for a in args)
    for argnums in ((0,), (1,), (2,), (0, 1, 2)):
        grads = jax.jit(jax.grad(lambda *a: jnp.sum(ours(*a)), argnums=argnums))(*args)
        want = jax.jit(jax.grad(lambda *a: jnp.sum(textbook(*a)), argnums=argnums))(*args)
        for a, b in zip(grads, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=tol(DTYPE), atol=tol(DTYPE))
        chosen = tuple(t if i in argnums else jnp.zeros_like(t) for i, t in enumerate(tangents))
        _, jvp = jax.jit(lambda a, t: jax.jvp(ours, a, t))(args, chosen)
        _, want_jvp = jax.jit(lambda a, t: jax.jvp(textbook, a, t))(args, chosen)
        np.testing.assert_allclose(jvp, want_jvp, rtol=tol(DTYPE), atol=tol(DTYPE))
    eps = 1e-3 if DTYPE == jnp.float32 else 1e-6
    check_grads(jax.jit(ours), args, order=2, modes=("fwd", "rev"), eps=eps)


def test_negative_diagonal_gives_the_same_distribution(rng):
    """L and L with some columns negated have the same covariance; log|det| uses |diag|."""
    x, x64 = _as(rng.normal(0.0, 1.5, (6, 4)))
    loc, loc64 = _as(rng.normal(0.0, 1.0, (4,)))
    tril, tril64 = _random_tril(rng, (), 4)
    signs = np.array([1.0, -1.0, -1.0, 1.0])
    flipped, _ = _as(tril64 * signs)
    assert_close(
        mvn.log_prob(x, loc=loc, scale_tril=flipped), _reference_log_prob(x64, loc64, tril64)
    )
    assert_close(mvn.entropy(scale_tril=flipped), mvn.entropy(scale_tril=tril))
    other, other64 = _random_tril(rng, (), 4)
    assert_close(
        mvn.kl(loc_p=loc, scale_tril_p=flipped, loc_q=0.0, scale_tril_q=other),
        _reference_kl(loc64, tril64, 0.0, other64),
    )
    assert float(mvn.kl(loc_p=loc, scale_tril_p=flipped, loc_q=loc, scale_tril_q=tril)) < (
        10 * tol(DTYPE)
    )


def _standard_errors_apart(samples, expected):
    mean = np.mean(samples, axis=0)
    standard_error = np.std(samples, axis=0, ddof=1) / math.sqrt(samples.shape[0])
    return np.abs(mean - expected) / standard_error


def test_monte_carlo_moments_and_kl(rng):
    n, d = 20000, 3
    loc_p, loc_p64 = _as(rng.normal(0.0, 1.0, (d,)))
    tril_p, tril_p64 = _random_tril(rng, (), d)
    loc_q, _ = _as(rng.normal(0.0, 1.0, (d,)))
    tril_q, _ = _random_tril(rng, (), d)
    x = jax.jit(functools.partial(mvn.sample, sample_shape=n))(
        jax.random.key(0), loc=loc_p, scale_tril=tril_p
    )
    chex.assert_shape(x, (n, d))
    x64 = np.asarray(x, np.float64)
    assert np.all(_standard_errors_apart(x64, loc_p64) < 5)
    cov = _covariance(tril_p64)
    # Standard error of a sample covariance entry: sqrt((S_ii S_jj + S_ij^2) / n).
    std_error_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(x64, rowvar=False) - cov) < 5 * std_error_cov)

    log_ratio = mvn.log_prob(x, loc=loc_p, scale_tril=tril_p) - mvn.log_prob(
        x, loc=loc_q, scale_tril=tril_q
    )
    kl = mvn.kl(loc_p=loc_p, scale_tril_p=tril_p, loc_q=loc_q, scale_tril_q=tril_q)
    assert _standard_errors_apart(np.asarray(log_ratio, np.float64)[:, None], float(kl)) < 5


@pytest.mark.parametrize(
    ("sample_shape", "loc_shape", "tril_batch", "expected"),
    [
        ((), (3,), (), (3,)),
        (5, (), (), (5, 3)),
        ((5,), (), (), (5, 3)),
        ((2, 0), (3,), (), (2, 0, 3)),
        ((5,), (2, 1, 3), (4,), (5, 2, 4, 3)),
    ],
)
def test_sample_shape_and_dtype(sample_shape, loc_shape, tril_batch, expected):
    loc = jnp.zeros(loc_shape, DTYPE)
    tril = jnp.broadcast_to(jnp.eye(3, dtype=DTYPE), (*tril_batch, 3, 3))
    x = mvn.sample(jax.random.key(1), loc=loc, scale_tril=tril, sample_shape=sample_shape)
    chex.assert_shape(x, expected)
    assert x.dtype == DTYPE


def test_gradients(rng):
    x, _ = _as(rng.normal(0.0, 1.0, (3, 2, 3)))
    loc, _ = _as(rng.normal(0.0, 1.0, (2, 3)))
    loc_q, _ = _as(rng.normal(0.0, 1.0, (3,)))
    tril, _ = _random_tril(rng, (2,), 3)
    tril_q, _ = _random_tril(rng, (2,), 3)
    # Central differences: float32 needs a larger step for the rounding noise to stay small.
    eps = 1e-3 if DTYPE == jnp.float32 else 1e-6

    def check(f, args, modes=("fwd", "rev")):
        # jit: one compilation per transformation instead of one per primitive.
        check_grads(jax.jit(f), args, order=1, modes=modes, eps=eps)

    check(lambda x, m, t: mvn.log_prob(x, loc=m, scale_tril=t), (x, loc, tril))
    check(lambda t: mvn.entropy(scale_tril=t), (tril,))
    check(
        lambda a, b, c, d: mvn.kl(loc_p=a, scale_tril_p=b, loc_q=c, scale_tril_q=d),
        (loc, tril, loc_q, tril_q),
    )
    check(
        lambda a, b, c, d: mvn.cross_entropy(loc_p=a, scale_tril_p=b, loc_q=c, scale_tril_q=d),
        (loc, tril, loc_q, tril_q),
    )
    key = jax.random.key(2)
    # Reparameterised sampling (reverse mode only: each transformation recompiles the
    # random-bit generator).
    check(
        lambda m, t: mvn.sample(key, loc=m, scale_tril=t, sample_shape=(2,)),
        (loc, tril),
        modes=("rev",),
    )


def test_jit_and_vmap_agree_with_batched_call(rng):
    x, _ = _as(rng.normal(0.0, 1.0, (7, 4, 3)))
    loc, _ = _as(rng.normal(0.0, 1.0, (4, 3)))
    tril, _ = _random_tril(rng, (4,), 3)
    batched = mvn.log_prob(x, loc=loc, scale_tril=tril)
    over_distributions = jax.vmap(
        lambda m, t, x: mvn.log_prob(x, loc=m, scale_tril=t), in_axes=(0, 0, 1), out_axes=1
    )(loc, tril, x)
    over_points = jax.jit(jax.vmap(lambda x: mvn.log_prob(x, loc=loc, scale_tril=tril)))(x)
    np.testing.assert_allclose(over_distributions, batched, rtol=tol(DTYPE))
    np.testing.assert_allclose(over_points, batched, rtol=tol(DTYPE))
    kl = jax.vmap(lambda m, t: mvn.kl(loc_p=m, scale_tril_p=t, loc_q=0.0, scale_tril_q=tril[0]))(
        loc, tril
    )
    np.testing.assert_allclose(
        kl, mvn.kl(loc_p=loc, scale_tril_p=tril, loc_q=0.0, scale_tril_q=tril[0]), rtol=tol(DTYPE)
    )


@pytest.mark.parametrize("points", [2, 4], ids=["solve", "inverse"])
def test_tiny_scales_stay_finite(rng, points):
    """Factors scaled by 1e-30 (representable in float32): finite values and gradients, on
    both log_prob routes (fewer points than D, and at least D)."""
    scale = 1e-30
    base, base64 = _random_tril(rng, (), 3)
    tril = base * scale
    unit_x, unit_x64 = _as(rng.normal(0.0, 1.0, (points, 3)))
    x = unit_x * scale

    def total(x, tril):
        return jnp.sum(mvn.log_prob(x, loc=0.0, scale_tril=tril))

    value, grads = jax.jit(jax.value_and_grad(total, argnums=(0, 1)))(x, tril)
    # log N(s v; 0, s^2 L L^T) = log N(v; 0, L L^T) - D log s.
    expected = np.sum(_reference_log_prob(unit_x64, 0.0, base64)) - points * 3 * math.log(scale)
    assert_close(value, expected)
    for grad in grads:
        assert np.all(np.isfinite(np.asarray(grad)))
    other, other64 = _random_tril(rng, (), 3)
    kl = mvn.kl(loc_p=x[0], scale_tril_p=tril, loc_q=0.0, scale_tril_q=other * scale)
    assert_close(kl, _reference_kl(unit_x64[0], base64, 0.0, other64))
    # H(p, q) shifts by D log s under the common scaling; finite gradients.
    cross = mvn.cross_entropy(loc_p=x[0], scale_tril_p=tril, loc_q=0.0, scale_tril_q=other * scale)
    reference = (
        _reference_kl(unit_x64[0], base64, 0.0, other64)
        + stats.multivariate_normal(cov=_covariance(base64)).entropy()
    )
    assert_close(cross, reference + 3 * math.log(scale), scale=abs(3 * math.log(scale)))
    grads = jax.grad(
        lambda t, u: mvn.cross_entropy(loc_p=x[0], scale_tril_p=t, loc_q=0.0, scale_tril_q=u),
        argnums=(0, 1),
    )(tril, other * scale)
    for grad in grads:
        assert np.all(np.isfinite(np.asarray(grad)))
    assert np.isfinite(float(mvn.entropy(scale_tril=tril)))


def test_singular_factor_and_non_positive_definite_covariance_are_not_finite():
    tril = jnp.array([[1.0, 0.0], [0.5, 0.0]], DTYPE)
    assert not np.isfinite(float(mvn.log_prob(jnp.ones(2, DTYPE), loc=0.0, scale_tril=tril)))
    assert float(mvn.entropy(scale_tril=tril)) == -np.inf
    not_positive_definite = jnp.array([[1.0, 2.0], [2.0, 1.0]], DTYPE)
    assert np.isnan(np.asarray(mvn.scale_tril_from_covariance(not_positive_definite))).any()


def test_scale_tril_from_covariance(rng):
    _, tril64 = _random_tril(rng, (3,), 4)
    covariance, covariance64 = _as(_covariance(tril64))
    value = jax.jit(mvn.scale_tril_from_covariance)(covariance)
    chex.assert_shape(value, (3, 4, 4))
    assert value.dtype == DTYPE
    assert_close(value, np.linalg.cholesky(covariance64), scale=1.0)
    np.testing.assert_array_equal(np.triu(np.asarray(value), k=1), 0.0)


@pytest.mark.parametrize("in_dtype", [jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64])
def test_dtypes(rng, in_dtype):
    if in_dtype == jnp.float64 and not X64:
        pytest.skip("float64 needs JAX_ENABLE_X64=1")
    expected_dtype = jnp.dtype(jnp.float64 if in_dtype == jnp.float64 else jnp.float32)
    x, x64 = _as(rng.normal(0.0, 1.0, (5, 3)), in_dtype)
    loc, loc64 = _as(rng.normal(0.0, 1.0, (3,)), in_dtype)
    tril, tril64 = _random_tril(rng, (), 3, in_dtype)
    value = mvn.log_prob(x, loc=loc, scale_tril=tril)
    assert value.dtype == expected_dtype
    # Half-precision inputs are exact in float32, so the float32 tolerance applies.
    assert_close(value, _reference_log_prob(x64, loc64, tril64), dtype=expected_dtype)
    outputs = [
        mvn.entropy(scale_tril=tril),
        mvn.kl(loc_p=loc, scale_tril_p=tril, loc_q=x, scale_tril_q=tril),
        mvn.cross_entropy(loc_p=loc, scale_tril_p=tril, loc_q=x, scale_tril_q=tril),
        mvn.sample(jax.random.key(0), loc=loc, scale_tril=tril),
        mvn.scale_tril_from_covariance(tril @ tril.T),
    ]
    for output in outputs:
        assert output.dtype == expected_dtype


def test_errors():
    x = jnp.zeros((5, 3), DTYPE)
    loc = jnp.zeros(3, DTYPE)
    tril = jnp.eye(3, dtype=DTYPE)
    with pytest.raises(ValueError, match="`scale_tril` must be a square"):
        mvn.log_prob(x, loc=loc, scale_tril=jnp.zeros((3, 4), DTYPE))
    with pytest.raises(ValueError, match="`scale_tril` must be a square"):
        mvn.entropy(scale_tril=jnp.zeros(3, DTYPE))
    with pytest.raises(ValueError, match="`x` must have the event size D = 3"):
        mvn.log_prob(jnp.zeros((5, 4), DTYPE), loc=loc, scale_tril=tril)
    with pytest.raises(ValueError, match="`x` must have the event size"):
        mvn.log_prob(jnp.zeros((), DTYPE), loc=loc, scale_tril=tril)
    with pytest.raises(ValueError, match="`loc` must have the event size"):
        mvn.log_prob(x, loc=jnp.zeros(4, DTYPE), scale_tril=tril)
    with pytest.raises(ValueError, match=r"`x \(batch\)` \(5,\).*`scale_tril \(batch\)` \(4,\)"):
        mvn.log_prob(x, loc=loc, scale_tril=jnp.broadcast_to(tril, (4, 3, 3)))
    with pytest.raises(TypeError, match="scale_tril"):
        mvn.log_prob(x, loc=loc, scale_tril=jnp.eye(3, dtype=jnp.int32))
    with pytest.raises(TypeError, match="loc"):
        mvn.sample(jax.random.key(0), loc=jnp.zeros(3, jnp.int32), scale_tril=tril)
    with pytest.raises(ValueError, match="different event sizes"):
        mvn.kl(loc_p=loc, scale_tril_p=tril, loc_q=0.0, scale_tril_q=jnp.eye(2, dtype=DTYPE))
    with pytest.raises(ValueError, match="`loc_q` must have the event size"):
        mvn.kl(loc_p=loc, scale_tril_p=tril, loc_q=jnp.zeros(2, DTYPE), scale_tril_q=tril)
    with pytest.raises(ValueError, match="different event sizes"):
        mvn.cross_entropy(
            loc_p=loc, scale_tril_p=tril, loc_q=0.0, scale_tril_q=jnp.eye(2, dtype=DTYPE)
        )
    with pytest.raises(TypeError, match="scale_tril_q"):
        mvn.cross_entropy(
            loc_p=loc, scale_tril_p=tril, loc_q=0.0, scale_tril_q=jnp.eye(3, dtype=jnp.int32)
        )
    with pytest.raises(ValueError, match=r"mvn\.cross_entropy: shapes do not broadcast"):
        mvn.cross_entropy(
            loc_p=jnp.zeros((2, 3), DTYPE),
            scale_tril_p=tril,
            loc_q=jnp.zeros((4, 3), DTYPE),
            scale_tril_q=tril,
        )
    with pytest.raises(ValueError, match="`covariance` must be a square"):
        mvn.scale_tril_from_covariance(jnp.zeros((2, 3), DTYPE))
    # The checks are static, so they fire while tracing under jit.
    with pytest.raises(ValueError, match="`scale_tril` must be a square"):
        jax.jit(mvn.log_prob)(x, loc=loc, scale_tril=jnp.zeros((3, 4), DTYPE))


# ---------------------------------------------------------------------------------------
# The blocked triangular solve behind kl and cross_entropy, and ill-conditioned factors.


@pytest.mark.parametrize(
    ("batch", "d", "k"), [((), 1, 3), ((2,), 3, 1), ((), 9, 4), ((3,), 17, 17)]
)
def test_blocked_solve_matches_scipy_with_gradients(rng, batch, d, k):
    tril, tril64 = _random_tril(rng, batch, d)
    rhs, rhs64 = _as(rng.normal(size=(*batch, d, k)))
    value = jax.jit(solve_lower)(tril, rhs)
    expected = np.linalg.solve(tril64, rhs64)
    chex.assert_shape(value, expected.shape)
    assert_close(value, expected, scale=np.max(np.abs(expected)))
    # Only the lower triangle is read.
    noisy = tril + jnp.triu(jnp.ones_like(tril), 1)
    np.testing.assert_array_equal(jax.jit(solve_lower)(noisy, rhs), value)
    eps = 1e-3 if DTYPE == jnp.float32 else 1e-6
    check_grads(jax.jit(lambda t, r: solve_lower(jnp.tril(t), r)), (tril, rhs), 1, eps=eps)


@pytest.mark.parametrize(("batch", "d"), [((), 1), ((2,), 5), ((), 16), ((3,), 37), ((2,), 64)])
def test_strict_lower_squares_matches_numpy_with_gradients(rng, batch, d):
    """The KL's sum of squares of the strict lower triangle of L^-1 R, reduced block by
    block: against float64 numpy for any R (not only a lower-triangular one), at sizes
    with one leaf, uneven leaves and the benchmark's D = 64, with derivatives in both modes."""
    tril, tril64 = _random_tril(rng, batch, d)
    rhs, rhs64 = _as(rng.normal(size=(*batch, d, d)))
    value = jax.jit(strict_lower_squares)(tril, rhs)
    expected = np.sum(np.square(np.tril(np.linalg.solve(tril64, rhs64), -1)), axis=(-2, -1))
    chex.assert_shape(value, batch)
    assert_close(value, expected, scale=np.max(np.abs(expected), initial=1.0))
    # Through solve_lower: the same number up to the order of the sums.
    through = jnp.sum(jnp.square(jnp.tril(solve_lower(tril, rhs), -1)), axis=(-2, -1))
    np.testing.assert_allclose(value, through, rtol=tol(DTYPE), atol=tol(DTYPE))
    # The closed-form derivative rule's back substitution, L^-T R, with the same leaves.
    back = jax.jit(lambda t, r: _solve_transposed(t, _block_inverses(t), r))(tril, rhs)
    expected_back = np.linalg.solve(np.swapaxes(tril64, -1, -2), rhs64)
    assert_close(back, expected_back, scale=np.max(np.abs(expected_back)))
    eps = 1e-3 if DTYPE == jnp.float32 else 1e-6
    fn = jax.jit(lambda t, r: strict_lower_squares(jnp.tril(t), r))
    order = 2 if d <= 16 else 1  # second order: the rule is differentiated in turn
    check_grads(fn, (tril, rhs), order, modes=("fwd", "rev"), eps=eps)
    # Each argument alone (the other a symbolic zero): the same derivatives.
    both = jax.grad(lambda t, r: jnp.sum(fn(t, r)), argnums=(0, 1))(tril, rhs)
    alone = [jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=i)(tril, rhs) for i in (0, 1)]
    for a, b in zip(alone, both, strict=True):
        np.testing.assert_allclose(a, b, rtol=tol(DTYPE), atol=tol(DTYPE))


def _conditioned_factor(rng, d, condition):
    """Cholesky factor of a covariance with eigenvalues log-spaced from 1 to condition^-2
    in a random basis: kappa(L) = condition."""
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    eigenvalues = np.logspace(0.0, -2.0 * math.log10(condition), d)
    return np.linalg.cholesky((basis * eigenvalues) @ basis.T)


def _relative_error(actual, expected):
    expected = np.asarray(expected, np.float64)
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected) / np.abs(expected)))


def _mp_solve(tril, rhs):
    """L^-1 rhs by forward substitution in 40-digit mpmath (lists of mpf)."""
    d = len(tril)
    z = [[mpmath.mpf(0)] * len(rhs[0]) for _ in range(d)]
    for k in range(len(rhs[0])):
        for i in range(d):
            s = rhs[i][k] - mpmath.fsum(tril[i][j] * z[j][k] for j in range(i))
            z[i][k] = s / tril[i][i]
    return z


def _mp_references(x64, loc64, tril64, loc_q64, tril_q64):
    """log_prob of the rows of x, and KL(p || q_k) and H(p, q_k) for the rows q_k of
    loc_q, in 40-digit mpmath: at kappa(L) = 1e4 the float64 references above (scipy's
    eigendecomposition of the covariance, explicit inverses) are themselves off by up to
    kappa(Sigma) eps = 1e8 eps."""
    with mpmath.workdps(40):
        mp = lambda a: [[mpmath.mpf(float(v)) for v in row] for row in np.atleast_2d(a)]
        d = tril64.shape[-1]
        t, tq = mp(tril64), mp(tril_q64)
        z = _mp_solve(t, mp((x64 - loc64).T))
        log_det = mpmath.fsum(mpmath.log(abs(t[i][i])) for i in range(d))
        log_det_q = mpmath.fsum(mpmath.log(abs(tq[i][i])) for i in range(d))
        half_log_two_pi = mpmath.log(2 * mpmath.pi) / 2
        log_prob = [
            float(-mpmath.fsum(z[i][k] ** 2 for i in range(d)) / 2 - log_det - d * half_log_two_pi)
            for k in range(x64.shape[0])
        ]
        m = _mp_solve(tq, t)
        mean = _mp_solve(tq, mp((loc64 - loc_q64).T))
        trace = mpmath.fsum(m[i][j] ** 2 for i in range(d) for j in range(d))
        kl = [
            (trace + mpmath.fsum(mean[i][k] ** 2 for i in range(d)) - d) / 2 + log_det_q - log_det
            for k in range(loc_q64.shape[0])
        ]
        cross = [v + d * (1 + 2 * half_log_two_pi) / 2 + log_det for v in kl]
        return np.array(log_prob), np.array(kl, float), np.array(cross, float)


def test_ill_conditioned_factors_at_the_documented_limit(rng):
    """kappa(L) = 1e4 (a covariance of condition 1e8), the limit the module documents:
    log_prob (both of its routes), kl and cross_entropy within kappa(L) eps of 40-digit
    mpmath (the first-order bound of a triangular solve), and kl no worse than with
    LAPACK's triangular solve (what it used before the blocked solve) on the same rounded
    inputs."""
    d = 16
    eps = float(jnp.finfo(DTYPE).eps)
    bound = 1e4 * eps
    tril, tril64 = _as(_conditioned_factor(rng, d, 1e4))
    tril_q, tril_q64 = _as(_conditioned_factor(rng, d, 1e4))
    assert 5e3 < np.linalg.cond(tril64) < 2e4
    loc, loc64 = _as(rng.normal(size=d))
    points, points64 = _as(loc64 + rng.normal(size=(32, d)) @ tril64.T)
    expected_points, expected_kl, expected_cross = _mp_references(
        points64, loc64, tril64, points64[:8], tril_q64
    )

    # 8 points (fewer than D: LAPACK's solve) and 32 (the product with the inverse).
    for count in (8, 32):
        value = jax.jit(lambda x, m, t: mvn.log_prob(x, loc=m, scale_tril=t))(
            points[:count], loc, tril
        )
        assert _relative_error(value, expected_points[:count]) < bound
    x = points[:8]

    # 8 x 8 = 64 pairs (the 8 points as means of q, 8 times), so that kl takes the
    # blocked solve; one pair takes LAPACK's.
    for loc_q, tril_q_batch, reps in ((x, tril_q, 1), (jnp.tile(x, (8, 1)), tril_q, 8)):
        tril_q_batch = jnp.broadcast_to(tril_q_batch, (loc_q.shape[0], d, d))
        kl = mvn.kl(loc_p=loc, scale_tril_p=tril, loc_q=loc_q, scale_tril_q=tril_q_batch)
        lapack = (
            0.5
            * (
                jnp.sum(jnp.square(solve_triangular(tril_q, tril, lower=True)))
                + jnp.sum(jnp.square(solve_triangular(tril_q, (loc - x).T, lower=True)), 0)
                - d
            )
            + jnp.sum(jnp.log(jnp.diagonal(tril_q)))
            - jnp.sum(jnp.log(jnp.diagonal(tril)))
        )
        assert _relative_error(kl, np.tile(expected_kl, reps)) < bound
        lapack_error = _relative_error(lapack, expected_kl)
        assert _relative_error(kl, np.tile(expected_kl, reps)) <= 4 * lapack_error + 8 * eps
        cross = mvn.cross_entropy(
            loc_p=loc, scale_tril_p=tril, loc_q=loc_q, scale_tril_q=tril_q_batch
        )
        assert _relative_error(cross, np.tile(expected_cross, reps)) < bound


def test_blocked_solve_gives_the_values_and_gradients_of_lapacks_solve(rng):
    """kl / cross_entropy solve with the blocked solve: the same values and gradients as
    the textbook formula on LAPACK's triangular solve, and the closed form."""
    loc_p, loc_p64 = _as(rng.normal(size=(64, 5)))
    tril_p, tril_p64 = _random_tril(rng, (64,), 5)
    loc_q, loc_q64 = _as(rng.normal(size=(5,)))
    tril_q, tril_q64 = _random_tril(rng, (64,), 5)
    args = (loc_p, tril_p, loc_q, tril_q)

    def lapack_kl(a, b, c, d):
        m = solve_triangular(d, jnp.tril(b), lower=True)
        z = solve_triangular(d, (a - c)[..., None], lower=True)[..., 0]
        log_det = jnp.log(jnp.diagonal(d, axis1=-2, axis2=-1)) - jnp.log(
            jnp.diagonal(b, axis1=-2, axis2=-1)
        )
        squares = jnp.sum(jnp.square(m), axis=(-2, -1)) + jnp.sum(jnp.square(z), axis=-1)
        return 0.5 * (squares - a.shape[-1]) + jnp.sum(log_det, axis=-1)

    def kl(a, b, c, d):
        return mvn.kl(loc_p=a, scale_tril_p=b, loc_q=c, scale_tril_q=d)

    def cross(a, b, c, d):
        return mvn.cross_entropy(loc_p=a, scale_tril_p=b, loc_q=c, scale_tril_q=d)

    value = jax.jit(kl)(*args)
    assert_close(value, _reference_kl(loc_p64, tril_p64, loc_q64, tril_q64))
    np.testing.assert_allclose(value, jax.jit(lapack_kl)(*args), rtol=tol(DTYPE), atol=tol(DTYPE))
    np.testing.assert_allclose(
        jax.jit(cross)(*args),
        value + mvn.entropy(scale_tril=tril_p),
        rtol=tol(DTYPE),
        atol=tol(DTYPE),
    )
    grads = jax.jit(jax.grad(lambda *a: jnp.sum(kl(*a)), argnums=(0, 1, 2, 3)))(*args)
    expected = jax.jit(jax.grad(lambda *a: jnp.sum(lapack_kl(*a)), argnums=(0, 1, 2, 3)))(*args)
    for a, b in zip(grads, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=tol(DTYPE), atol=tol(DTYPE))
    eps = 1e-3 if DTYPE == jnp.float32 else 1e-6
    cross = mvn.cross_entropy
    check_grads(
        jax.jit(lambda a, b, c, d: cross(loc_p=a, scale_tril_p=b, loc_q=c, scale_tril_q=d)),
        args,
        order=1,
        modes=("fwd", "rev"),
        eps=eps,
    )

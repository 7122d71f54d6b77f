"""genmath.bernoulli against scipy/numpy float64 references, identities and extremes."""

from __future__ import annotations

import decimal
import functools

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from jax import test_util
from scipy import integrate, special, stats

from genmath import bernoulli
from genmath._src import sampling
from tests.genmath.helpers import DTYPES, X64, f64, grad_tol, tol


def rand_logits(rng, shape, dtype, scale=3.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


# --- float64 references -------------------------------------------------------------


def ref_log_prob(x, logits, axis=-1):
    x, logits = f64(x), f64(logits)
    return np.sum(x * special.log_expit(logits) + (1 - x) * special.log_expit(-logits), axis)


def ref_entropy(logits, axis=-1):
    p = special.expit(f64(logits))
    return np.sum(stats.entropy(np.stack([p, 1 - p]), axis=0), axis)


def ref_kl(logits_p, logits_q, axis=-1):
    p, q = special.expit(f64(logits_p)), special.expit(f64(logits_q))
    return np.sum(special.rel_entr(p, q) + special.rel_entr(1 - p, 1 - q), axis)


def ref_cross_entropy(logits_p, logits_q, axis=-1):
    p = special.expit(f64(logits_p))
    lq = f64(logits_q)
    return -np.sum(p * special.log_expit(lq) + (1 - p) * special.log_expit(-lq), axis)


def ref_continuous_log_normalizer(logits):
    eta = np.abs(f64(logits))
    with np.errstate(invalid="ignore", divide="ignore"):
        # eta / tanh(eta/2) is accurate in float64 for every eta != 0 (tanh keeps full
        # relative precision for small arguments); its limit at 0 is 2.
        return np.where(eta == 0, np.log(2.0), np.log(eta / np.tanh(eta / 2)))


# --- values against references ------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_kind", ["bool", "int", "float"])
def test_log_prob_binary_matches_scipy(dtype, x_kind):
    rng = np.random.default_rng(0)
    # scipy's logpmf works from p = expit(logits), whose 1 - p loses digits as the logit
    # grows; moderate logits keep the reference itself accurate to a few ulps.
    logits = rng.uniform(-2.0, 2.0, (4, 7, 10)).astype(dtype)
    bits = rng.random((4, 7, 10)) < 0.5
    x = {"bool": bits, "int": bits.astype(np.int32), "float": bits.astype(dtype)}[x_kind]
    got = jax.jit(lambda x, lg: bernoulli.log_prob(x, logits=lg))(x, logits)
    ref = np.sum(stats.bernoulli.logpmf(bits, special.expit(f64(logits))), -1)
    assert got.dtype == dtype and got.shape == (4, 7)
    np.testing.assert_allclose(got, ref, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_prob_grey_levels_is_cross_entropy(dtype):
    rng = np.random.default_rng(1)
    logits = rand_logits(rng, (5, 20), dtype)
    x = rng.random((5, 20)).astype(dtype)
    got = jax.jit(lambda x, lg: bernoulli.log_prob(x, logits=lg))(x, logits)
    np.testing.assert_allclose(got, ref_log_prob(x, logits), **tol(dtype))
    # The expected log-likelihood under random binarisation with P(1) = x.
    p1 = ref_log_prob(np.ones_like(x), logits, axis=())
    p0 = ref_log_prob(np.zeros_like(x), logits, axis=())
    np.testing.assert_allclose(got, np.sum(f64(x) * p1 + (1 - f64(x)) * p0, -1), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_cross_entropy_kl_match_scipy(dtype):
    rng = np.random.default_rng(2)
    lp, lq = rand_logits(rng, (6, 9), dtype), rand_logits(rng, (6, 9), dtype)
    h = jax.jit(lambda lg: bernoulli.entropy(logits=lg))(lp)
    ce = jax.jit(lambda a, b: bernoulli.cross_entropy(logits_p=a, logits_q=b))(lp, lq)
    d = jax.jit(lambda a, b: bernoulli.kl(logits_p=a, logits_q=b))(lp, lq)
    np.testing.assert_allclose(h, ref_entropy(lp), **tol(dtype))
    np.testing.assert_allclose(ce, ref_cross_entropy(lp, lq), **tol(dtype))
    np.testing.assert_allclose(d, ref_kl(lp, lq), **tol(dtype))
    # scipy.stats.entropy(pk, qk) is the KL divergence of one Bernoulli pair.
    p, q = special.expit(f64(lp)), special.expit(f64(lq))
    ref = stats.entropy(np.stack([p, 1 - p]), np.stack([q, 1 - q]), axis=0).sum(-1)
    np.testing.assert_allclose(d, ref, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_identities(dtype):
    rng = np.random.default_rng(3)
    lp, lq = rand_logits(rng, (50, 8), dtype), rand_logits(rng, (50, 8), dtype)
    h = bernoulli.entropy(logits=lp)
    ce = bernoulli.cross_entropy(logits_p=lp, logits_q=lq)
    d = bernoulli.kl(logits_p=lp, logits_q=lq)
    np.testing.assert_allclose(d, ce - h, **tol(dtype))
    assert np.all(np.asarray(d) >= 0)
    # H(p) = H(p, p) = -E_p[log p(x)].
    np.testing.assert_allclose(bernoulli.cross_entropy(logits_p=lp, logits_q=lp), h, **tol(dtype))
    probs = jax.nn.sigmoid(lp)
    np.testing.assert_allclose(-bernoulli.log_prob(probs, logits=lp), h, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_of_equal_distributions_is_exactly_zero_with_zero_gradient(dtype):
    logits = np.array(
        [-1e4, -40.0, -3.0, -0.2, 0.0, 1e-6, 0.7, 5.0, 40.0, 1e4, -np.inf, np.inf], dtype
    )
    kl_same = jax.jit(lambda lg: bernoulli.kl(logits_p=lg, logits_q=lg, axis=()))
    kl_pq = lambda lp, lq: bernoulli.kl(logits_p=lp, logits_q=lq)
    assert np.all(np.asarray(kl_same(logits)) == 0)
    for grad in (jax.grad(kl_pq, argnums=(0, 1)), jax.jacfwd(kl_pq, argnums=(0, 1))):
        g_p, g_q = jax.jit(grad)(logits, logits)
        assert np.all(np.asarray(g_p) == 0) and np.all(np.asarray(g_q) == 0)


def _mp_kl(logit_p, logit_q):
    """KL between two Bernoullis in 40-digit arithmetic, at the float inputs."""
    with mpmath.workdps(40):
        a, b = mpmath.mpf(float(logit_p)), mpmath.mpf(float(logit_q))
        p, q = 1 / (1 + mpmath.exp(-a)), 1 / (1 + mpmath.exp(-b))
        return float(p * mpmath.log(p / q) + (1 - p) * mpmath.log((1 - p) / (1 - q)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_of_nearby_distributions_is_never_negative_and_within_its_bound(rng, dtype):
    """Logits a few ulps to 1e-4 apart: the divergence is rounding noise there, but never
    below 0, and within the documented absolute error of the exact value."""
    lp = rand_logits(rng, 300, dtype)
    spread = 1e-4 if dtype == np.float32 else 1e-9
    lq = (f64(lp) + spread * rng.standard_normal(300) * (1 + np.abs(f64(lp)))).astype(dtype)
    value = np.asarray(jax.jit(lambda a, b: bernoulli.kl(logits_p=a, logits_q=b, axis=()))(lp, lq))
    assert np.all(value >= 0)
    exact = np.array([_mp_kl(a, b) for a, b in zip(lp, lq, strict=True)])
    # A few ulps of the pieces: log(1 + e^-|l|) of both and |l_p - l_q|.
    scale = np.log1p(np.exp(-np.abs(f64(lp)))) + np.log1p(np.exp(-np.abs(f64(lq))))
    scale = scale + np.abs(f64(lp) - f64(lq))
    assert np.all(np.abs(value - exact) <= 4 * np.finfo(dtype).eps * scale)


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_log_normalizer_derivative_against_mpmath(dtype):
    """d/deta log C = 1/eta - 1/sinh(eta) to a few ulps over |eta| from 1e-8 to 1e3 (autodiff
    of the closed form was 4000 ulps off in float64 near |eta| = 0.03), 0 at 0 and +-inf,
    and differentiable again."""
    eta = np.concatenate([np.logspace(-8, 3, 200), -np.logspace(-8, 3, 200), [0.0]]).astype(dtype)
    slope = jax.jit(jax.vmap(jax.grad(lambda e: bernoulli.continuous_log_normalizer(logits=e))))
    with mpmath.workdps(40):
        exact = [1 / mpmath.mpf(float(e)) - 1 / mpmath.sinh(mpmath.mpf(float(e))) for e in eta[:-1]]
    exact = np.array([float(v) for v in exact] + [0.0])
    got = np.asarray(slope(eta))
    np.testing.assert_allclose(got, exact, rtol=8 * np.finfo(dtype).eps, atol=0)
    ends = np.asarray(slope(jnp.asarray([np.inf, -np.inf], dtype)))
    np.testing.assert_array_equal(ends, [0.0, 0.0])
    eps = 1e-3 if dtype == np.float32 else 1e-6
    test_util.check_grads(
        lambda e: bernoulli.continuous_log_normalizer(logits=e),
        (jnp.asarray([-5.0, -0.02, 0.4, 2.9, 3.1], dtype),),
        order=2,
        modes=("fwd", "rev"),
        eps=eps,
    )


def test_continuous_log_normalizer_matches_float64_formula():
    eta = np.concatenate(
        [
            np.logspace(-8, 4, 97),
            -np.logspace(-8, 4, 97),
            [0.0, 0.0299, 0.03, 0.0301],
            np.random.default_rng(4).uniform(-20, 20, 50),
        ]
    )
    for dtype in DTYPES:
        eta_d = eta.astype(dtype)
        got = jax.jit(lambda e: bernoulli.continuous_log_normalizer(logits=e))(eta_d)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref_continuous_log_normalizer(eta_d), **tol(dtype))


@pytest.mark.parametrize("eta", [-25.0, -3.0, -0.4, -0.01, 0.0, 0.02, 1.0, 7.5, 30.0])
def test_continuous_log_normalizer_matches_quad(eta):
    dtype = DTYPES[-1]
    # Integrate the unnormalised density lam^x (1 - lam)^(1 - x) over [0, 1] in float64,
    # from log lam and log(1 - lam) (1 - lam itself would lose digits at large eta).
    log_lam, log_one_minus_lam = special.log_expit(eta), special.log_expit(-eta)
    mass, err = integrate.quad(
        lambda x: np.exp(x * log_lam + (1 - x) * log_one_minus_lam),
        0.0,
        1.0,
        epsabs=0.0,
        epsrel=1.2e-14,
    )
    assert err < 1e-13 * mass
    got = bernoulli.continuous_log_normalizer(logits=jnp.asarray(eta, dtype))
    np.testing.assert_allclose(got, -np.log(mass), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_density_integrates_to_one(dtype):
    # 64-point Gauss-Legendre on [0, 1] is exact to float64 rounding for these smooth
    # integrands (|eta| <= 30).
    nodes, weights = np.polynomial.legendre.leggauss(64)
    nodes, weights = (nodes + 1) / 2, weights / 2
    eta = np.array([-30.0, -4.0, -0.5, 0.0, 0.01, 1.3, 12.0, 30.0], dtype)
    log_density = jax.jit(lambda x, e: bernoulli.continuous_log_prob(x, logits=e, axis=()))(
        nodes.astype(dtype)[:, None], eta[None, :]
    )
    total = np.sum(weights[:, None] * np.exp(f64(log_density)), 0)
    # The log-density holds terms of size |eta| (x * eta), so its absolute rounding error,
    # which is the relative error of the density, is a few ulps of |eta|.
    rtol = 32 * np.finfo(dtype).eps * (1 + np.abs(f64(eta)))
    assert np.all(np.abs(total - 1) <= rtol), (total - 1, rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_log_prob_matches_reference(dtype):
    rng = np.random.default_rng(5)
    eta = rand_logits(rng, (3, 40), dtype, scale=8.0)
    x = rng.random((3, 40)).astype(dtype)
    got = jax.jit(lambda x, e: bernoulli.continuous_log_prob(x, logits=e))(x, eta)
    ref = ref_log_prob(x, eta) + ref_continuous_log_normalizer(eta).sum(-1)
    np.testing.assert_allclose(got, ref, **tol(dtype))


# --- extremes -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits_values_and_gradients(dtype):
    big = np.array([1e4, -1e4, np.inf, -np.inf], dtype)
    ones, zeros, half = np.ones_like(big), np.zeros_like(big), np.full_like(big, 0.5)
    lp = lambda x, lg: bernoulli.log_prob(x, logits=lg, axis=())
    np.testing.assert_array_equal(lp(ones, big), [0.0, -1e4, 0.0, -np.inf])
    np.testing.assert_array_equal(lp(zeros, big), [-1e4, 0.0, -np.inf, 0.0])
    np.testing.assert_array_equal(lp(half, big), [-5e3, -5e3, -np.inf, -np.inf])
    for x in (ones, zeros, half):
        g = jax.grad(lambda lg, x=x: jnp.sum(lp(x, lg)))(big)
        np.testing.assert_array_equal(g, x - (big > 0))  # x - sigmoid(lg)
    np.testing.assert_array_equal(bernoulli.entropy(logits=big, axis=()), np.zeros(4))
    g = jax.grad(lambda lg: bernoulli.entropy(logits=lg))(big)
    np.testing.assert_array_equal(g, np.zeros(4))
    # KL between degenerate distributions: 0, log 2 or infinite as appropriate.
    kl = jax.jit(lambda a, b: bernoulli.kl(logits_p=a, logits_q=b, axis=()))
    kl = functools.partial(lambda a, b, kl: kl(jnp.asarray(a, dtype), jnp.asarray(b, dtype)), kl=kl)
    assert float(kl(np.inf, np.inf)) == 0 and float(kl(-np.inf, -np.inf)) == 0
    assert float(kl(np.inf, -np.inf)) == np.inf and float(kl(0.0, np.inf)) == np.inf
    np.testing.assert_allclose(kl(np.inf, 0.0), np.log(2.0), **tol(dtype))
    np.testing.assert_allclose(kl(-1e4, 0.0), np.log(2.0), **tol(dtype))
    np.testing.assert_allclose(kl(0.0, -1e4), 1e4 / 2 - np.log(2.0), **tol(dtype))
    for args in [(np.inf, 0.0), (0.0, 1e4), (-1e4, 1e4), (np.inf, np.inf)]:
        g = jax.grad(kl, argnums=(0, 1))(*args)
        assert np.all(np.isfinite(g)), (args, g)
    ce = bernoulli.cross_entropy(logits_p=big, logits_q=big, axis=())
    np.testing.assert_array_equal(ce, np.zeros(4))
    g = jax.grad(lambda a, b: bernoulli.cross_entropy(logits_p=a, logits_q=b), (0, 1))(big, big)
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tiny_divergences_keep_relative_precision_at_large_logits(dtype):
    # Where naive forms cancel: KL between two nearly certain Bernoullis, and the
    # log-probability of the likely outcome.
    lp, lq = np.array(20.0, dtype), np.array(21.0, dtype)
    ref = ref_kl(lp, lq, axis=())
    np.testing.assert_allclose(bernoulli.kl(logits_p=lp, logits_q=lq, axis=()), ref, **tol(dtype))
    np.testing.assert_allclose(
        bernoulli.log_prob(1, logits=lp, axis=()), special.log_expit(20.0), **tol(dtype)
    )
    np.testing.assert_allclose(
        bernoulli.entropy(logits=lp, axis=()), ref_entropy(lp, ()), **tol(dtype)
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_extremes(dtype):
    eta = np.array([1e4, -1e4, np.inf, -np.inf], dtype)
    clp = lambda x, e: bernoulli.continuous_log_prob(x, logits=e, axis=())
    log_c = np.log(1e4)
    np.testing.assert_allclose(clp(np.ones_like(eta), eta)[:2], [log_c, log_c - 1e4], **tol(dtype))
    np.testing.assert_array_equal(clp(np.ones_like(eta), eta)[2:], [np.inf, -np.inf])
    np.testing.assert_array_equal(clp(np.zeros_like(eta), eta)[2:], [-np.inf, np.inf])
    np.testing.assert_array_equal(clp(np.full_like(eta, 0.5), eta)[2:], [-np.inf, -np.inf])
    for x in (0.0, 0.3, 1.0):
        g = jax.grad(lambda e, x=x: jnp.sum(clp(np.full_like(eta, x), e)))(eta)
        assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(bernoulli.continuous_log_normalizer(logits=eta)[2:], np.inf)


# --- 0 * inf: underflowed probabilities, infinite logits and both together -----------

# Logits whose probability (or its complement) underflows to 0: float32 below about -88
# (-104 with subnormals), float64 below -708 (-745 with subnormals); -60 is representable in both.
UNDERFLOW_LOGITS = [-60.0, -100.0, -200.0, -800.0, -1e4]
EDGE_LOGITS_Q = [-np.inf, -1e4, -30.0, 0.0, 30.0, 1e4, np.inf]


def _bernoulli_pair_reference(lp, lq):
    """Float64 KL, cross-entropy and their gradients for one finite-or-infinite pair.

    Mismatched support (q = 0 or 1 exactly, where p is not) is +inf with a zero gradient;
    otherwise the closed forms, with 0 * anything = 0 where p is exactly 0 or 1.
    """
    lp, lq = float(lp), float(lq)
    mismatch = (lq == -np.inf and lp > -np.inf) or (lq == np.inf and lp < np.inf)
    if mismatch:
        return np.inf, np.inf, (0.0, 0.0), (0.0, 0.0)
    p, q = special.expit(lp), special.expit(lq)
    # Exact p (1 - p) without cancellation: sigma(l) sigma(-l).
    pq = special.expit(lp) * special.expit(-lp)
    log_q, log_1mq = special.log_expit(lq), special.log_expit(-lq)
    log_p, log_1mp = special.log_expit(lp), special.log_expit(-lp)

    def times(w, v):  # 0 * anything = 0
        return 0.0 if w == 0 else w * v

    one_minus_p = special.expit(-lp)
    with np.errstate(invalid="ignore"):  # -inf - -inf where the weight is 0
        kl = times(p, log_p - log_q) + times(one_minus_p, log_1mp - log_1mq)
    ce = -(times(p, log_q) + times(one_minus_p, log_1mq))
    # d/dlp: p(1-p) (lp - lq) and -p(1-p) lq; d/dlq: q - p (both).
    finite_lq = np.isfinite(lq)
    d_kl_p = times(pq, lp - lq) if finite_lq and np.isfinite(lp) else 0.0
    d_ce_p = times(pq, -lq) if finite_lq else 0.0
    return kl, ce, (d_kl_p, q - p), (d_ce_p, q - p)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_kl_and_cross_entropy_at_underflowed_and_infinite_logits(dtype, sign):
    # Every pair of (underflowing, infinite, moderate) p-logits and (infinite, huge,
    # moderate) q-logits, mirrored by `sign` (then 1 - p underflows and q = 1 at +inf).
    lp_values = [*UNDERFLOW_LOGITS, -np.inf, 0.0, 2.0, np.inf]
    lp, lq = (sign * np.array(g, dtype) for g in np.meshgrid(lp_values, EDGE_LOGITS_Q))
    lp, lq = lp.ravel(), lq.ravel()
    refs = [_bernoulli_pair_reference(a, b) for a, b in zip(lp, lq, strict=True)]
    ref_kl_values, ref_ce_values, ref_kl_grads, ref_ce_grads = map(
        np.array, zip(*refs, strict=True)
    )
    kl = lambda a, b: bernoulli.kl(logits_p=a, logits_q=b, axis=())
    ce = lambda a, b: bernoulli.cross_entropy(logits_p=a, logits_q=b, axis=())
    for fn, ref, ref_grad in ((kl, ref_kl_values, ref_kl_grads), (ce, ref_ce_values, ref_ce_grads)):
        value = np.asarray(jax.jit(fn)(lp, lq), np.float64)
        infinite = np.isinf(ref)
        np.testing.assert_array_equal(value[infinite], ref[infinite])
        # Absolute tolerance: the terms are as large as |l| = 1e4 (rounding of the logits).
        np.testing.assert_allclose(
            value[~infinite],
            ref[~infinite],
            rtol=32 * np.finfo(dtype).eps,
            atol=32 * np.finfo(dtype).eps,
        )
        # Gradients: finite everywhere, zero at the mismatches, the closed forms elsewhere
        # (reverse and forward mode).
        total = lambda a, b, fn=fn: jnp.sum(fn(a, b))
        for grad in (jax.grad(total, argnums=(0, 1)), jax.jacfwd(total, argnums=(0, 1))):
            g_p, g_q = (np.asarray(g, np.float64) for g in jax.jit(grad)(lp, lq))
            assert np.all(np.isfinite(g_p)) and np.all(np.isfinite(g_q))
            np.testing.assert_allclose(g_p, ref_grad[:, 0], **tol(dtype))
            np.testing.assert_allclose(g_q, ref_grad[:, 1], **tol(dtype))
    # The identity KL = H(p, q) - H(p) holds with the infinities too.
    h = bernoulli.entropy(logits=lp, axis=())
    np.testing.assert_array_equal(np.isposinf(kl(lp, lq)), np.isposinf(ce(lp, lq) - h))


@pytest.mark.parametrize("dtype", DTYPES)
def test_support_mismatch_is_infinite_in_every_dtype(dtype):
    # p = e^-200 (float32: 0) against q = 0: +inf in float32 and float64 alike, not a
    # dtype-dependent finite sum; the row's other elements keep their normal gradients.
    lp = np.array([[-200.0, 0.5, 3.0], [-200.0, 0.5, 3.0]], dtype)
    lq = np.array([[-np.inf, 0.0, 1.0], [-20.0, 0.0, 1.0]], dtype)
    for fn in (bernoulli.kl, bernoulli.cross_entropy):
        value = fn(logits_p=lp, logits_q=lq)
        assert float(value[0]) == np.inf and np.isfinite(float(value[1]))
        g_p, g_q = jax.grad(lambda a, b, fn=fn: jnp.sum(fn(logits_p=a, logits_q=b)[0]), (0, 1))(
            lp, lq
        )
        assert g_p[0, 0] == 0 and g_q[0, 0] == 0
        g_p_ok, g_q_ok = jax.grad(lambda a, b, fn=fn: fn(logits_p=a, logits_q=b), (0, 1))(
            lp[0, 1:], lq[0, 1:]
        )
        np.testing.assert_array_equal(g_p[0, 1:], g_p_ok)
        np.testing.assert_array_equal(g_q[0, 1:], g_q_ok)
        # A `where` mask drops the mismatched element: finite value and gradient.
        mask = np.array([False, True, True])
        masked = fn(logits_p=lp[0], logits_q=lq[0], where=mask)
        np.testing.assert_allclose(masked, fn(logits_p=lp[0, 1:], logits_q=lq[0, 1:]), **tol(dtype))
        # NaN stays NaN (no +inf override of an undefined input).
        assert np.isnan(
            float(fn(logits_p=np.array([np.nan], dtype), logits_q=np.array([-np.inf], dtype)))
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_and_log_prob_at_underflowed_probabilities(dtype):
    # sigma(l) underflows to 0 but l itself is finite: p log p = 0 * finite, no 0 * inf.
    lg = np.array([*UNDERFLOW_LOGITS, *(-np.array(UNDERFLOW_LOGITS)), -np.inf, np.inf], dtype)
    h = np.asarray(jax.jit(lambda a: bernoulli.entropy(logits=a, axis=()))(lg))
    # Exact forms in float64, relative (the values are as small as 1e-4000: an absolute
    # tolerance would accept 0): H = |l| sigma(-|l|) + log1p(e^-|l|), and
    # dH/dl = -l sigma(l) sigma(-l); both are 0 at l = +-inf.
    a = np.abs(f64(lg))
    with np.errstate(invalid="ignore"):
        exact_h = np.where(np.isinf(a), 0.0, a * special.expit(-a) + np.log1p(np.exp(-a)))
        exact_g = np.where(np.isinf(a), 0.0, -f64(lg) * special.expit(lg) * special.expit(-lg))
    g = np.asarray(jax.grad(lambda a: bernoulli.entropy(logits=a))(lg))
    tiny = float(np.finfo(dtype).tiny)  # XLA:CPU flushes subnormal results to 0
    for value, exact in ((h, exact_h), (g, exact_g)):
        normal = np.abs(exact) >= tiny
        np.testing.assert_allclose(value[normal], exact[normal], rtol=tol(dtype)["rtol"], atol=0)
        assert np.all(np.abs(value[~normal]) < tiny), value[~normal]
    for x in (0.0, 1.0, 0.5):
        xs = np.full_like(lg, x)
        value = bernoulli.log_prob(xs, logits=lg, axis=())
        with np.errstate(invalid="ignore"):  # 0 log 0 = 0 in the reference
            ref = np.where(xs == 0, 0.0, xs * special.log_expit(f64(lg))) + np.where(
                xs == 1, 0.0, (1 - xs) * special.log_expit(-f64(lg))
            )
        np.testing.assert_allclose(value, ref, **tol(dtype))
        g = jax.grad(lambda a, xs=xs: jnp.sum(bernoulli.log_prob(xs, logits=a, axis=())))(lg)
        # x - sigma(l), finite everywhere (also at the infinite values of x = 1/2).
        np.testing.assert_allclose(g, xs - special.expit(f64(lg)), atol=np.finfo(dtype).eps)


# --- continuous Bernoulli: mean, entropy, cross-entropy, KL, sampling ----------------


def _cb_decimal(eta):
    """A(eta), mean, variance and entropy of CB(eta) in 60-digit decimal arithmetic (the
    textbook closed forms, whose cancellations are harmless at that precision)."""
    with decimal.localcontext() as context:
        context.prec = 60
        e = decimal.Decimal(float(eta))
        if e == 0:
            return decimal.Decimal(0), decimal.Decimal(1) / 2, decimal.Decimal(1) / 12
        big = e.exp()
        log_partition = ((big - 1) / e).ln()
        mean = big / (big - 1) - 1 / e
        variance = 1 / (e * e) - big / (big - 1) ** 2
        return log_partition, mean, variance


def ref_cb_mean(eta):
    return np.array([float(_cb_decimal(e)[1]) for e in np.ravel(eta)]).reshape(np.shape(eta))


def ref_cb_variance(eta):
    return np.array([float(_cb_decimal(e)[2]) for e in np.ravel(eta)]).reshape(np.shape(eta))


def ref_cb_entropy(eta):
    out = []
    for e in np.ravel(eta):
        log_partition, mean, _ = _cb_decimal(e)
        with decimal.localcontext() as context:
            context.prec = 60
            out.append(float(log_partition - decimal.Decimal(float(e)) * mean))
    return np.array(out).reshape(np.shape(eta))


def ref_cb_cross_entropy_and_kl(eta_p, eta_q):
    ce, kl = [], []
    for p, q in zip(np.ravel(eta_p), np.ravel(eta_q), strict=True):
        a_p, mean_p, _ = _cb_decimal(p)
        a_q, _, _ = _cb_decimal(q)
        with decimal.localcontext() as context:
            context.prec = 60
            dq, dp = decimal.Decimal(float(q)), decimal.Decimal(float(p))
            ce.append(float(a_q - dq * mean_p))
            kl.append(float(a_q - a_p - (dq - dp) * mean_p))
    shape = np.broadcast_shapes(np.shape(eta_p), np.shape(eta_q))
    return np.array(ce).reshape(shape), np.array(kl).reshape(shape)


def _cb_log_density(eta):
    """log p(x) = eta x - A(eta) in float64, with A by quadrature (for |eta| <= 30)."""
    shift = max(float(eta), 0.0)  # e^{eta x - shift} <= 1
    mass, _ = integrate.quad(lambda x: np.exp(eta * x - shift), 0.0, 1.0, epsabs=0, epsrel=1e-13)
    log_z = shift + np.log(mass)
    return lambda x: eta * x - log_z


CB_QUAD_LOGITS = [-30.0, -4.0, -3.0, -1.0, -0.05, 0.0, 1e-4, 0.7, 2.9, 3.1, 12.0, 30.0]


@pytest.mark.parametrize("eta", CB_QUAD_LOGITS)
def test_continuous_moments_match_quadrature(eta):
    # Independent of the closed forms: the moments of the normalised density by quad.
    log_p = _cb_log_density(eta)
    quad = lambda f: integrate.quad(f, 0.0, 1.0, epsabs=1e-15, epsrel=1e-12)[0]
    mean = quad(lambda x: x * np.exp(log_p(x)))
    entropy = -quad(lambda x: np.exp(log_p(x)) * log_p(x))
    dtype = DTYPES[-1]
    # Quadrature is good to ~1e-10; in float32 the function's own rounding dominates.
    rtol = max(1e-8, 32 * float(np.finfo(dtype).eps))
    logits = jnp.asarray(eta, dtype)
    np.testing.assert_allclose(bernoulli.continuous_mean(logits=logits), mean, rtol=rtol)
    np.testing.assert_allclose(
        bernoulli.continuous_entropy(logits=logits, axis=()), entropy, rtol=rtol, atol=rtol * 1e-4
    )
    # The identity log C(eta) = -A(eta) - log sigma(-eta) with the module's normaliser.
    log_c = bernoulli.continuous_log_normalizer(logits=logits)
    np.testing.assert_allclose(
        log_p(0.0) - special.log_expit(-eta), log_c, rtol=rtol, atol=rtol * 1e-3
    )


@pytest.mark.parametrize("eta_p", [-12.0, -2.5, 0.0, 0.4, 3.5])
@pytest.mark.parametrize("eta_q", [-6.0, -0.2, 0.0, 2.0, 25.0])
def test_continuous_cross_entropy_and_kl_match_quadrature(eta_p, eta_q):
    log_p, log_q = _cb_log_density(eta_p), _cb_log_density(eta_q)
    quad = lambda f: integrate.quad(f, 0.0, 1.0, epsabs=1e-15, epsrel=1e-12)[0]
    cross = -quad(lambda x: np.exp(log_p(x)) * log_q(x))
    kl = quad(lambda x: np.exp(log_p(x)) * (log_p(x) - log_q(x)))
    dtype = DTYPES[-1]
    # Quadrature is good to ~1e-10; in float32 the function's own rounding dominates.
    rtol = max(1e-8, 32 * float(np.finfo(dtype).eps))
    lp, lq = jnp.asarray(eta_p, dtype), jnp.asarray(eta_q, dtype)
    scale = 1.0 + abs(eta_p) + abs(eta_q)
    got_ce = bernoulli.continuous_cross_entropy(logits_p=lp, logits_q=lq, axis=())
    got_kl = bernoulli.continuous_kl(logits_p=lp, logits_q=lq, axis=())
    # The documented absolute accuracy: a few ulps of 1 + |eta_p| + |eta_q|.
    atol = (8 * float(np.finfo(dtype).eps) + 1e-11) * scale
    np.testing.assert_allclose(got_ce, cross, rtol=rtol, atol=atol)
    np.testing.assert_allclose(got_kl, kl, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_mean_variance_entropy_to_a_few_ulps(dtype):
    # Against 60-digit references: relative error of a few ulps everywhere, also where
    # the textbook forms cancel (eta near 0, where the entropy is -eta^2 / 24) and at the
    # switch from the series to the closed forms (|eta| = 3).
    eta = np.concatenate(
        [
            [0.0],
            np.logspace(-8, 4, 121),
            -np.logspace(-8, 4, 121),
            np.linspace(2.95, 3.05, 11),
            -np.linspace(2.95, 3.05, 11),
        ]
    ).astype(dtype)
    eps = np.finfo(dtype).eps
    mean = jax.jit(lambda e: bernoulli.continuous_mean(logits=e))(eta)
    entropy = jax.jit(lambda e: bernoulli.continuous_entropy(logits=e, axis=()))(eta)
    np.testing.assert_allclose(mean, ref_cb_mean(eta), rtol=8 * eps, atol=0)
    np.testing.assert_allclose(entropy, ref_cb_entropy(eta), rtol=8 * eps, atol=0)
    # The derivatives, in closed form: mean' = variance, entropy' = -eta variance.
    variance = ref_cb_variance(eta)
    d_mean = jax.jit(jax.vmap(jax.grad(lambda e: bernoulli.continuous_mean(logits=e))))(eta)
    d_entropy = jax.jit(
        jax.vmap(jax.grad(lambda e: bernoulli.continuous_entropy(logits=e, axis=())))
    )(eta)
    np.testing.assert_allclose(d_mean, variance, rtol=8 * eps, atol=0)
    np.testing.assert_allclose(d_entropy, -f64(eta) * variance, rtol=8 * eps, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_cross_entropy_kl_and_identity(dtype):
    rng = np.random.default_rng(11)
    lp = np.concatenate([rand_logits(rng, (40,), dtype, 4.0), [0.0, 1e-6, -3.0, 3.0, 1e4, -1e4]])
    lq = np.concatenate([rand_logits(rng, (40,), dtype, 4.0), [0.5, 0.0, 3.0, -1e4, 1e4, 2.0]])
    lp, lq = lp.astype(dtype), lq.astype(dtype)
    ce = np.asarray(
        jax.jit(lambda a, b: bernoulli.continuous_cross_entropy(logits_p=a, logits_q=b, axis=()))(
            lp, lq
        ),
        np.float64,
    )
    kl = np.asarray(
        jax.jit(lambda a, b: bernoulli.continuous_kl(logits_p=a, logits_q=b, axis=()))(lp, lq),
        np.float64,
    )
    h = np.asarray(bernoulli.continuous_entropy(logits=lp, axis=()), np.float64)
    ref_ce, ref_kl = ref_cb_cross_entropy_and_kl(lp, lq)
    # The documented accuracy: a few ulps of 1 + |eta_p| + |eta_q| per element.
    bound = 8 * np.finfo(dtype).eps * (1 + np.abs(f64(lp)) + np.abs(f64(lq)))
    assert np.all(np.abs(ce - ref_ce) <= bound), np.max(np.abs(ce - ref_ce) / bound)
    assert np.all(np.abs(kl - ref_kl) <= bound), np.max(np.abs(kl - ref_kl) / bound)
    assert np.all(kl >= 0)
    # KL = H(p, q) - H(p).
    assert np.all(np.abs(kl - (ce - h)) <= 2 * bound)
    # H(p, p) = H(p), and summing over an axis.
    same = np.asarray(bernoulli.continuous_cross_entropy(logits_p=lp, logits_q=lp, axis=()))
    own_bound = 8 * np.finfo(dtype).eps * (1 + 2 * np.abs(f64(lp)))  # each element's own
    assert np.all(np.abs(same - h) <= own_bound), np.max(np.abs(same - h) / own_bound)
    total = bernoulli.continuous_kl(logits_p=lp.reshape(2, 23), logits_q=lq.reshape(2, 23))
    np.testing.assert_allclose(total, kl.reshape(2, 23).sum(-1), rtol=tol(dtype)["rtol"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_kl_of_equal_distributions_is_exactly_zero_with_zero_gradient(dtype):
    logits = np.array([-1e4, -40.0, -3.0, -0.2, 0.0, 1e-7, 0.7, 2.999, 3.0, 40.0, 1e4], dtype)
    logits = np.concatenate([logits, [np.inf, -np.inf]]).astype(dtype)
    kl_same = jax.jit(lambda lg: bernoulli.continuous_kl(logits_p=lg, logits_q=lg, axis=()))
    np.testing.assert_array_equal(kl_same(logits), 0.0)
    kl_pq = lambda lp, lq: bernoulli.continuous_kl(logits_p=lp, logits_q=lq)
    for grad in (jax.grad(kl_pq, argnums=(0, 1)), jax.jacfwd(kl_pq, argnums=(0, 1))):
        g_p, g_q = jax.jit(grad)(logits, logits)
        np.testing.assert_array_equal(g_p, 0.0)
        np.testing.assert_array_equal(g_q, 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_extremes_and_point_masses(dtype):
    inf = np.inf
    big = np.array([1e4, -1e4, inf, -inf], dtype)
    # Means and entropies: 1 - 1/eta, -1/eta, then point masses at 1 and 0.
    np.testing.assert_allclose(
        bernoulli.continuous_mean(logits=big), [1 - 1e-4, 1e-4, 1.0, 0.0], **tol(dtype)
    )
    h = np.asarray(bernoulli.continuous_entropy(logits=big, axis=()))
    np.testing.assert_allclose(h[:2], 1 - np.log(1e4), **tol(dtype))
    np.testing.assert_array_equal(h[2:], -inf)
    # Pairs (p, q) with point masses: 0 / +inf divergences, +-inf cross-entropies.
    lp = np.array([inf, inf, -inf, 0.0, inf, 2.0, -inf], dtype)
    lq = np.array([inf, -inf, -inf, inf, 0.5, -inf, 1e4], dtype)
    kl = bernoulli.continuous_kl(logits_p=lp, logits_q=lq, axis=())
    np.testing.assert_array_equal(kl, [0.0, inf, 0.0, inf, inf, inf, inf])
    ce = np.asarray(bernoulli.continuous_cross_entropy(logits_p=lp, logits_q=lq, axis=()))
    np.testing.assert_array_equal(ce[:4], [-inf, inf, -inf, inf])
    np.testing.assert_array_equal(ce[5], inf)
    # A point-mass p at 1 against q: -log q(1) = A(eta_q) - eta_q (finite).
    ref_ce, _ = ref_cb_cross_entropy_and_kl(np.array([1e4]), np.array([0.5]))
    np.testing.assert_allclose(ce[4], float(_cb_decimal(0.5)[0]) - 0.5, **tol(dtype))
    np.testing.assert_allclose(ce[6], float(_cb_decimal(1e4)[0]), **tol(dtype))
    assert np.isfinite(ref_ce[0])
    # Gradients: finite everywhere (0 at the infinite values), reverse and forward mode.
    functions = [
        lambda a, b: bernoulli.continuous_kl(logits_p=a, logits_q=b),
        lambda a, b: bernoulli.continuous_cross_entropy(logits_p=a, logits_q=b),
        lambda a, b: (
            bernoulli.continuous_entropy(logits=a) + bernoulli.continuous_mean(logits=b).sum()
        ),
    ]
    for fn in functions:
        for grad in (jax.grad(fn, argnums=(0, 1)), jax.jacfwd(fn, argnums=(0, 1))):
            for g in jax.jit(grad)(lp, lq):
                assert np.all(np.isfinite(np.asarray(g)))
    g = jax.grad(lambda a: bernoulli.continuous_entropy(logits=a))(big)
    np.testing.assert_allclose(g[:2], [-1e-4, 1e-4], **tol(dtype))  # -eta var ~ -1/eta
    np.testing.assert_array_equal(g[2:], 0.0)
    # NaN stays NaN.
    nan = np.array([np.nan], dtype)
    for fn in (bernoulli.continuous_kl, bernoulli.continuous_cross_entropy):
        assert np.isnan(float(fn(logits_p=nan, logits_q=np.array([inf], dtype))))


def test_continuous_sample_of_a_nan_logit_is_nan():
    logits = jnp.array([jnp.nan, jnp.inf, -jnp.inf])
    x = bernoulli.continuous_sample(jax.random.key(0), logits=logits)
    np.testing.assert_array_equal(x, [np.nan, 1.0, 0.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_sample_mean_distribution_and_range(dtype):
    eta = np.array([-1e4, -30.0, -3.0, -0.5, -1e-6, 0.0, 1e-6, 0.5, 3.0, 30.0, 1e4], dtype)
    eta = np.concatenate([eta, [np.inf, -np.inf]]).astype(dtype)
    n = 20_000
    x = jax.jit(lambda k, e: bernoulli.continuous_sample(k, logits=e, sample_shape=n))(
        jax.random.key(0), eta
    )
    assert x.shape == (n, len(eta)) and x.dtype == dtype
    x = np.asarray(x, np.float64)
    assert np.all((x >= 0) & (x <= 1))
    np.testing.assert_array_equal(x[:, -2:], np.broadcast_to([1.0, 0.0], (n, 2)))
    # Monte Carlo mean against the closed form, within five standard errors.
    mean = ref_cb_mean(eta[:-2])
    se = np.sqrt(ref_cb_variance(eta[:-2]) / n)
    assert np.all(np.abs(x[:, :-2].mean(0) - mean) <= 5 * se), (x[:, :-2].mean(0), mean, se)
    # The whole distribution: Kolmogorov-Smirnov against the CDF (e^{eta x} - 1)/(e^eta - 1).
    for j in (2, 3, 5, 7, 8):
        e = float(eta[j])
        cdf = (lambda v, e=e: v) if e == 0 else (lambda v, e=e: np.expm1(e * v) / np.expm1(e))
        assert stats.kstest(x[:, j], cdf).pvalue > 1e-3, e


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_sample_is_reparameterised(dtype):
    key = jax.random.key(1)
    eta = np.array([-8.0, -2.0, -0.3, 0.0, 1e-5, 0.3, 2.0, 8.0, 200.0], dtype)
    draw = lambda e: bernoulli.continuous_sample(key, logits=e, sample_shape=3)
    # Finite differences at logits away from the tiny-|eta| expansion (steps stay out).
    moderate = np.array([-8.0, -2.0, -0.3, 0.3, 2.0, 8.0], dtype)
    test_util.check_grads(
        jax.jit(draw), (moderate,), order=1, modes=("rev", "fwd"), **grad_tol(dtype)
    )
    g = np.asarray(jax.jit(jax.grad(lambda e: jnp.sum(draw(e))))(eta))
    assert np.all(np.isfinite(g))
    # E[dx/d eta] = d E[x] / d eta = Var[x]: pathwise gradients of the Monte Carlo mean.
    n = 20_000
    many = lambda e: bernoulli.continuous_sample(jax.random.key(2), logits=e, sample_shape=n)
    per_sample = jax.jit(jax.jacfwd(lambda e: many(e)))(jnp.asarray(eta[:8]))  # (n, 8, 8)
    per_sample = np.asarray(np.einsum("nii->ni", per_sample), np.float64)
    variance = ref_cb_variance(eta[:8])
    se = per_sample.std(0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(per_sample.mean(0) - variance) <= 5 * se + 1e-12), (
        per_sample.mean(0),
        variance,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_of_range_data(dtype):
    x = np.array([-0.5, 1.5, 2.0], dtype)
    assert np.all(np.isnan(bernoulli.log_prob(x, logits=np.zeros(3, dtype), axis=())))
    cb = bernoulli.continuous_log_prob(x, logits=np.zeros(3, dtype), axis=())
    np.testing.assert_array_equal(cb, -np.inf)


def test_logits_from_probs():
    for dtype in DTYPES:
        probs = np.array([0.0, 1e-30, 0.1, 0.5, 0.9, 1.0], dtype)
        logits = bernoulli.logits_from_probs(probs)
        assert logits.dtype == dtype
        logits = np.asarray(logits)
        np.testing.assert_array_equal(logits[[0, -1]], [-np.inf, np.inf])
        np.testing.assert_allclose(logits[1:-1], special.logit(f64(probs[1:-1])), **tol(dtype))
        # Through infinite logits, probabilities 0 and 1 are exact in every function.
        np.testing.assert_array_equal(
            bernoulli.log_prob(np.array([0.0, 1.0], dtype), logits=logits[[0, -1]]), 0.0
        )
    with pytest.raises(TypeError, match="probs"):
        bernoulli.logits_from_probs(np.array([0, 1]))


# --- gradients ----------------------------------------------------------------------


def all_functions(x, lg, q):
    """Every differentiable function of the module, stacked, for one gradient check."""
    return jnp.stack(
        [
            bernoulli.log_prob(x, logits=lg),
            bernoulli.continuous_log_prob(x, logits=lg),
            bernoulli.entropy(logits=lg),
            bernoulli.cross_entropy(logits_p=lg, logits_q=q),
            bernoulli.kl(logits_p=lg, logits_q=q),
            bernoulli.continuous_log_normalizer(logits=lg).sum(-1),
            bernoulli.continuous_mean(logits=lg).sum(-1),
            bernoulli.continuous_entropy(logits=lg),
            bernoulli.continuous_cross_entropy(logits_p=lg, logits_q=q),
            bernoulli.continuous_kl(logits_p=lg, logits_q=q),
            bernoulli.continuous_kl(logits_p=q, logits_q=lg),
        ]
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_match_finite_differences(dtype):
    rng = np.random.default_rng(6)
    x = rng.uniform(0.1, 0.9, (2, 6)).astype(dtype)
    # Logits on both sides of 0 and inside the Taylor region |eta| < 0.03 of the CB
    # normaliser (the finite-difference steps stay inside it there).
    lg = np.concatenate([rand_logits(rng, (2, 4), dtype), [[0.0, 0.011], [-0.002, 0.0]]], 1)
    lg = lg.astype(dtype)
    q = rand_logits(rng, (2, 6), dtype)
    if np.dtype(dtype) == np.float32:
        lg = np.where(np.abs(lg) < 0.03, 0.0, lg).astype(dtype)  # steps of 1e-2 cross it
    # With respect to all three inputs (grey levels x included); one check covers every
    # function through the stacked output. Second order in forward mode, first order in
    # reverse mode (second-order reverse adds compile time and no new rule to check).
    fn = jax.jit(all_functions)
    test_util.check_grads(fn, (x, lg, q), order=2, modes=("fwd",), **grad_tol(dtype))
    test_util.check_grads(fn, (x, lg, q), order=1, modes=("rev",), **grad_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_kl_derivative_rule_against_mpmath(dtype):
    """continuous_kl's one derivative rule, d/dq = A'(q) - A'(p) and d/dp = -(q - p) A''(p),
    against 30-digit mpmath at the float inputs: series and closed-form regions, reverse
    and forward mode, each argument alone and both together. (Autodiff of the composition
    A(q) - A(p) - (q - p) A'(p) is less accurate: it rounds A'(p) - (q - p) A''(p) before
    subtracting A'(p).)"""
    from genmath._src import continuous_bernoulli as cb

    mpmath.mp.dps = 30
    rng = np.random.default_rng(12)
    grid = np.array([-1e4, -40.0, -3.0, -2.999, -0.4, -1e-3, 0.0, 1e-3, 0.5, 2.999, 3.0, 40.0])
    lp = np.concatenate([grid, rand_logits(rng, (20,), dtype, 4.0)]).astype(dtype)
    lq = np.concatenate([np.roll(grid, 3), rand_logits(rng, (20,), dtype, 4.0)]).astype(dtype)

    def mean(eta):
        eta = mpmath.mpf(float(eta))
        return mpmath.mpf(0.5) if eta == 0 else 1 / (1 - mpmath.exp(-eta)) - 1 / eta

    def variance(eta):
        eta = mpmath.mpf(float(eta))
        if eta == 0:
            return mpmath.mpf(1) / 12
        return 1 / eta**2 - mpmath.exp(-eta) / (1 - mpmath.exp(-eta)) ** 2

    want_q = np.array([float(mean(q) - mean(p)) for p, q in zip(lp, lq, strict=True)])
    want_p = np.array(
        [
            float(-(mpmath.mpf(float(q)) - float(p)) * variance(p))
            for p, q in zip(lp, lq, strict=True)
        ]
    )
    bound = lambda want: 16 * np.finfo(dtype).eps * (np.abs(want) + 1.0)
    total = lambda *a: jnp.sum(cb.kl(*a))
    grad_p, grad_q = jax.jit(jax.grad(total, argnums=(0, 1)))(lp, lq)
    for got, want in ((grad_p, want_p), (grad_q, want_q)):
        assert np.all(np.abs(np.asarray(got, np.float64) - want) <= bound(want))
    np.testing.assert_array_equal(jax.jit(jax.grad(total, argnums=0))(lp, lq), grad_p)
    np.testing.assert_array_equal(jax.jit(jax.grad(total, argnums=1))(lp, lq), grad_q)
    tangent_p, tangent_q = rand_logits(rng, lp.shape, dtype), rand_logits(rng, lq.shape, dtype)
    _, got = jax.jit(lambda a, t: jax.jvp(cb.kl, a, t))((lp, lq), (tangent_p, tangent_q))
    want = want_p * f64(tangent_p) + want_q * f64(tangent_q)
    scale = np.abs(want_p * f64(tangent_p)) + np.abs(want_q * f64(tangent_q))
    assert np.all(np.abs(np.asarray(got, np.float64) - want) <= bound(scale))


def test_second_derivative_at_zero_logit():
    # log_prob and entropy are smooth at lg = 0: d2/dl2 = -sigma(0)(1 - sigma(0)) = -1/4.
    d2 = lambda f: jax.grad(jax.grad(f))(jnp.asarray(0.0, DTYPES[-1]))
    for f in (
        lambda lg: bernoulli.log_prob(1.0, logits=lg, axis=()),
        lambda lg: bernoulli.entropy(logits=lg, axis=()),
    ):
        assert float(d2(f)) == pytest.approx(-0.25, rel=1e-6)
    # log C(eta) = log 2 + eta^2 / 12 + ...: second derivative 1/6.
    f = lambda lg: bernoulli.continuous_log_normalizer(logits=lg)
    assert float(d2(f)) == pytest.approx(1 / 6, rel=1e-6)


# --- transformations, axes, masks ---------------------------------------------------


def test_jit_and_vmap_agree_with_eager():
    rng = np.random.default_rng(7)
    dtype = DTYPES[-1]
    x = (rng.random((5, 3, 4)) < 0.5).astype(dtype)
    lg, q = rand_logits(rng, (5, 3, 4), dtype), rand_logits(rng, (5, 3, 4), dtype)
    fns = [
        lambda x, lg, q: bernoulli.log_prob(x, logits=lg),
        lambda x, lg, q: bernoulli.continuous_log_prob(x, logits=lg),
        lambda x, lg, q: bernoulli.entropy(logits=lg),
        lambda x, lg, q: bernoulli.cross_entropy(logits_p=lg, logits_q=q),
        lambda x, lg, q: bernoulli.kl(logits_p=lg, logits_q=q),
    ]
    for fn in fns:
        eager = fn(x, lg, q)
        np.testing.assert_allclose(jax.jit(fn)(x, lg, q), eager, **tol(dtype))
        np.testing.assert_allclose(jax.vmap(fn)(x, lg, q), eager, **tol(dtype))


@pytest.mark.parametrize("axis", [-1, 0, (0, 2), (), (-1, -2, -3)])
def test_axis_reduces_only_the_event_axes(axis):
    rng = np.random.default_rng(8)
    dtype = DTYPES[-1]
    x = rng.random((2, 3, 4)).astype(dtype)
    lg, q = rand_logits(rng, (2, 3, 4), dtype), rand_logits(rng, (2, 3, 4), dtype)
    np.testing.assert_allclose(
        bernoulli.log_prob(x, logits=lg, axis=axis), ref_log_prob(x, lg, axis), **tol(dtype)
    )
    np.testing.assert_allclose(
        bernoulli.entropy(logits=lg, axis=axis), ref_entropy(lg, axis), **tol(dtype)
    )
    np.testing.assert_allclose(
        bernoulli.kl(logits_p=lg, logits_q=q, axis=axis), ref_kl(lg, q, axis), **tol(dtype)
    )
    np.testing.assert_allclose(
        bernoulli.cross_entropy(logits_p=lg, logits_q=q, axis=axis),
        ref_cross_entropy(lg, q, axis),
        **tol(dtype),
    )


def test_broadcasting_between_data_and_logits():
    rng = np.random.default_rng(9)
    dtype = DTYPES[-1]
    x = (rng.random((6, 1, 5)) < 0.5).astype(dtype)
    lg = rand_logits(rng, (4, 5), dtype)
    got = bernoulli.log_prob(x, logits=lg)
    assert got.shape == (6, 4)
    np.testing.assert_allclose(got, ref_log_prob(x, lg), **tol(dtype))


def test_where_mask_drops_elements_from_value_and_gradient():
    rng = np.random.default_rng(10)
    dtype = DTYPES[-1]
    x = rng.random((3, 8)).astype(dtype)
    lg, q = rand_logits(rng, (3, 8), dtype), rand_logits(rng, (3, 8), dtype)
    mask = rng.random((3, 8)) < 0.6
    # Masked-out positions hold garbage that must reach neither value nor gradient.
    x_bad = np.where(mask, x, np.nan).astype(dtype)
    l_bad = np.where(mask, lg, np.inf).astype(dtype)
    q_bad = np.where(mask, q, np.nan).astype(dtype)
    cases = [
        (
            lambda lg: bernoulli.log_prob(x_bad, logits=lg, where=mask),
            np.sum(np.where(mask, ref_log_prob(x, lg, ()), 0), -1),
        ),
        (
            lambda lg: bernoulli.entropy(logits=lg, where=mask),
            np.sum(np.where(mask, ref_entropy(lg, ()), 0), -1),
        ),
        (
            lambda lg: bernoulli.kl(logits_p=lg, logits_q=q_bad, where=mask),
            np.sum(np.where(mask, ref_kl(lg, q, ()), 0), -1),
        ),
        (
            lambda lg: bernoulli.cross_entropy(logits_p=lg, logits_q=q_bad, where=mask),
            np.sum(np.where(mask, ref_cross_entropy(lg, q, ()), 0), -1),
        ),
        (
            lambda lg: bernoulli.continuous_log_prob(x_bad, logits=lg, where=mask),
            np.sum(
                np.where(mask, ref_log_prob(x, lg, ()) + ref_continuous_log_normalizer(lg), 0), -1
            ),
        ),
    ]
    for fn, ref in cases:
        np.testing.assert_allclose(fn(l_bad), ref, **tol(dtype))
        g = jax.grad(lambda lg, fn=fn: jnp.sum(fn(lg)))(l_bad)
        assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~mask] == 0)


def test_where_mask_broadcasts():
    dtype = DTYPES[-1]
    lg = np.zeros((2, 4), dtype)
    mask = np.array([True, False, True, False])
    got = bernoulli.entropy(logits=lg, where=mask)
    np.testing.assert_allclose(got, [2 * np.log(2.0)] * 2, **tol(dtype))


# --- sampling -----------------------------------------------------------------------


def test_sample_moments_shape_and_dtype():
    logits = np.array([-2.0, 0.0, 0.5, 3.0, -np.inf, np.inf], np.float32)
    n = 20_000
    draw = jax.jit(lambda k, lg: bernoulli.sample(k, logits=lg, sample_shape=n))
    x = draw(jax.random.key(0), logits)
    assert x.shape == (n, 6) and x.dtype == np.float32
    assert set(np.unique(np.asarray(x))) <= {0.0, 1.0}
    p = special.expit(f64(logits))
    se = np.sqrt(p * (1 - p) / n)
    # Five standard errors of a binomial proportion; exact for probabilities 0 and 1.
    assert np.all(np.abs(np.asarray(x).mean(0) - p) <= 5 * se), (np.asarray(x).mean(0), p)
    assert bernoulli.sample(jax.random.key(1), logits=logits).shape == (6,)
    assert bernoulli.sample(jax.random.key(1), logits=0.3, sample_shape=(2, 3)).shape == (2, 3)


# --- dtypes and errors --------------------------------------------------------------


def test_dtype_promotion():
    l32 = np.zeros(3, np.float32)
    assert bernoulli.log_prob(np.ones(3, np.uint8), logits=l32).dtype == np.float32
    assert bernoulli.entropy(logits=jnp.zeros(3, jnp.bfloat16)).dtype == np.float32
    assert bernoulli.kl(logits_p=jnp.zeros(3, jnp.bfloat16), logits_q=l32).dtype == np.float32
    assert (
        bernoulli.continuous_log_prob(
            jnp.ones(3, jnp.bfloat16), logits=jnp.zeros(3, jnp.bfloat16)
        ).dtype
        == np.float32
    )
    x = bernoulli.sample(jax.random.key(0), logits=jnp.zeros(3, jnp.bfloat16))
    assert x.dtype == np.float32
    if X64:
        assert bernoulli.log_prob(np.ones(3), logits=np.zeros(3)).dtype == np.float64
        assert bernoulli.entropy(logits=0.0, axis=()).dtype == np.float64
    else:
        assert bernoulli.entropy(logits=0.0, axis=()).dtype == np.float32


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="logits"):
        bernoulli.log_prob(np.ones(3), logits=np.zeros(3, np.int32))
    with pytest.raises(TypeError, match="logits_q"):
        bernoulli.kl(logits_p=np.zeros(3, np.float32), logits_q=np.zeros(3, np.int32))
    with pytest.raises(TypeError, match="logits"):
        bernoulli.sample(jax.random.key(0), logits=np.zeros(3, np.int32))
    with pytest.raises(TypeError, match="x"):
        bernoulli.log_prob(np.ones(3, np.complex64), logits=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"`x`.*`logits`"):
        bernoulli.log_prob(np.ones(3), logits=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"`logits_p`.*`logits_q`"):
        bernoulli.cross_entropy(logits_p=np.zeros(3, np.float32), logits_q=np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="axis 2"):
        bernoulli.entropy(logits=np.zeros((2, 2), np.float32), axis=2)
    with pytest.raises(TypeError, match="where"):
        bernoulli.entropy(logits=np.zeros(3, np.float32), where=np.ones(3))
    with pytest.raises(ValueError, match="where"):
        bernoulli.log_prob(np.ones(3), logits=np.zeros(3, np.float32), where=np.ones(2, bool))
    # The checks fire at trace time under jit as well.
    with pytest.raises(TypeError, match="logits"):
        jax.jit(lambda lg: bernoulli.entropy(logits=lg))(np.zeros(3, np.int32))


def test_fine_uniform_resolves_probabilities_far_below_the_float_step():
    # (high, low) words: 0 only from (0, 0); the next value is 2^-64; a whole high word
    # is 2^-32; the largest rounds to at most 1.
    words = np.array([[0, 0], [0, 1], [1, 0], [2**32 - 1, 2**32 - 1]], np.uint32)
    for dtype in DTYPES:
        u = sampling.uniform_from_words(jnp.asarray(words[:, 0]), jnp.asarray(words[:, 1]), dtype)
        np.testing.assert_array_equal(np.asarray(u)[:3], [0.0, 2.0**-64, 2.0**-32])
        assert np.asarray(u)[3] <= 1.0 and u.dtype == dtype
    # P(u < 2^-30) = 2^-30; a float32 uniform (step 2^-23) would give 2^-23, 128 times more:
    # about 8 hits in 2^26 draws instead of 0.06.
    count = jax.jit(
        lambda key: jnp.sum(sampling.fine_uniform(key, (2**23,), jnp.float32) < 2.0**-30)
    )
    hits = sum(int(count(jax.random.key(seed))) for seed in range(8))
    assert hits <= 2


def test_sample_draws_rare_outcomes_at_their_rate():
    # Logit -20 (p = 2.1e-9): a float32 uniform's step makes it 2^-23 = 1.2e-7, about 8 ones
    # in 2^26 draws instead of 0.14.
    draw = jax.jit(lambda key: bernoulli.sample(key, logits=jnp.float32(-20.0), sample_shape=2**23))
    ones = sum(float(jnp.sum(draw(jax.random.key(seed)))) for seed in range(8))
    assert ones <= 2
    np.testing.assert_array_equal(
        bernoulli.sample(jax.random.key(0), logits=jnp.array([jnp.nan, jnp.inf, -jnp.inf])),
        [np.nan, 1.0, 0.0],
    )


def test_logistic_and_gumbel_noise_reach_far_tails_and_follow_their_laws():
    # The extreme cells of 64 random bits, v = 2^-65 on either side: |L| = log(2^65 - 1) =
    # 45.06 and a Gumbel upper tail as far (jax.random's float32 ones stop near 16.6).
    high, low = jnp.zeros(2, jnp.uint32), jnp.array([0, 1], jnp.uint32)
    v, side = sampling.half_and_side_from_words(high, low, jnp.float32)
    np.testing.assert_allclose(v, 2.0**-65, rtol=1e-7)
    far = 65 * np.log(2.0)
    np.testing.assert_allclose(sampling.logistic_from(v, side), [-far, far], rtol=1e-6)
    np.testing.assert_allclose(sampling.gumbel_from(v, side), [-np.log(far), far], rtol=1e-6)
    # Their laws: CDFs at a few points against the closed forms, to 5 standard errors.
    key, n = jax.random.key(3), 2**20
    logistic = sampling.logistic_noise(key, (n,), jnp.float32)
    gumbel = sampling.gumbel_noise(key, (n,), jnp.float32)
    for sample, cdf in ((logistic, special.expit), (gumbel, lambda t: np.exp(-np.exp(-t)))):
        assert np.all(np.isfinite(sample))
        for t in (-3.0, -1.0, 0.0, 0.5, 2.0, 5.0):
            p = cdf(t)
            assert abs(np.mean(np.asarray(sample) <= t) - p) <= 5 * np.sqrt(p * (1 - p) / n)
    # A far tail's rate: P(L > 12) = 6.1e-6, about 411 of 2^26 draws.
    count = jax.jit(lambda k: jnp.sum(sampling.logistic_noise(k, (2**23,), jnp.float32) > 12.0))
    hits = sum(int(count(jax.random.key(seed))) for seed in range(8))
    expected = 2**26 * special.expit(-12.0)
    assert abs(hits - expected) <= 5 * np.sqrt(expected), (hits, expected)


@pytest.mark.skipif(not X64, reason="compares float32 with float64: the float64 pass runs it")
def test_continuous_float32_series_and_derivatives_agree_with_float64(rng):
    """The float32 series are shorter than the float64 ones (``_src.continuous_bernoulli``);
    values and gradients from float32 inputs must match the float64 ones to float32 accuracy,
    on both sides of the series limit |eta| = 3 (finite differences in float32 are too
    coarse to check this)."""
    lp = np.concatenate([rng.uniform(-3.5, 3.5, 200), [-3.0, -1e-4, 0.0, 1e-4, 3.0]])
    lq = np.concatenate([rng.uniform(-3.5, 3.5, 200), [3.0, 0.0, 1e-3, -2.9, -3.0]])
    x = rng.uniform(0.0, 1.0, lp.shape)
    fns = {
        "log_normalizer": lambda a, b, x: bernoulli.continuous_log_normalizer(logits=a),
        "log_prob": lambda a, b, x: bernoulli.continuous_log_prob(x, logits=a, axis=()),
        "mean": lambda a, b, x: bernoulli.continuous_mean(logits=a),
        "entropy": lambda a, b, x: bernoulli.continuous_entropy(logits=a, axis=()),
        "cross_entropy": lambda a, b, x: bernoulli.continuous_cross_entropy(
            logits_p=a, logits_q=b, axis=()
        ),
        "kl": lambda a, b, x: bernoulli.continuous_kl(logits_p=a, logits_q=b, axis=()),
    }
    eps32 = float(np.finfo(np.float32).eps)
    for name, fn in fns.items():
        value_and_grads = jax.jit(
            jax.vmap(jax.value_and_grad(lambda a, b, x, fn=fn: fn(a, b, x), argnums=(0, 1)))
        )
        inputs = [np.asarray(v, np.float32) for v in (lp, lq, x)]
        single = value_and_grads(*inputs)
        double = value_and_grads(*(f64(v) for v in inputs))  # the same inputs, in float64
        assert single[0].dtype == np.float32 and double[0].dtype == np.float64
        for got, want in zip(jax.tree.leaves(single), jax.tree.leaves(double), strict=True):
            # A few float32 ulps of the result's size (of 1 where it is near 0).
            bound = 32 * eps32 * (1.0 + np.abs(f64(want)))
            error = np.abs(f64(got) - f64(want))
            assert np.all(error <= bound), (name, float(np.max(error / bound)))

"""genmath.categorical against scipy float64 references, identities and extremes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from jax import test_util
from scipy import special, stats

from genmath import categorical
from tests.genmath.helpers import DTYPES, X64, f64, grad_tol, tol

KEY = jax.random.key(0)


def rand_logits(rng, shape, dtype, scale=2.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def ref_probs(logits, axis=-1):
    return special.softmax(f64(logits), axis=axis)


def ref_entropy(logits, axis=-1):
    return stats.entropy(ref_probs(logits, axis), axis=axis)


def ref_kl(logits_p, logits_q, axis=-1):
    # scipy.stats.entropy(pk, qk) is the KL divergence.
    return stats.entropy(ref_probs(logits_p, axis), ref_probs(logits_q, axis), axis=axis)


def ref_cross_entropy(logits_p, logits_q, axis=-1):
    p = ref_probs(logits_p, axis)
    log_q = special.log_softmax(f64(logits_q), axis=axis)
    with np.errstate(invalid="ignore"):
        return -np.sum(np.where(p > 0, p * log_q, 0.0), axis)  # 0 log 0 = 0


# --- values against references ------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int32])
def test_log_prob_matches_scipy(dtype, label_dtype):
    rng = np.random.default_rng(0)
    logits = rand_logits(rng, (4, 5, 10), dtype)
    labels = rng.integers(0, 10, (4, 5)).astype(label_dtype)
    got = jax.jit(lambda y, lg: categorical.log_prob(y, logits=lg))(labels, logits)
    assert got.shape == (4, 5) and got.dtype == dtype
    ref = np.take_along_axis(special.log_softmax(f64(logits), -1), labels[..., None], -1)[..., 0]
    np.testing.assert_allclose(got, ref, **tol(dtype))
    # scipy's one-trial multinomial is the categorical distribution.
    onehot = np.eye(10)[labels]
    ref_mn = stats.multinomial.logpmf(onehot, n=1, p=ref_probs(logits))
    np.testing.assert_allclose(got, ref_mn, **tol(dtype))


def test_log_prob_broadcasts_labels_against_batch():
    rng = np.random.default_rng(1)
    dtype = DTYPES[-1]
    logits = rand_logits(rng, (3, 6), dtype)
    labels = rng.integers(0, 6, (7, 1))
    got = categorical.log_prob(labels, logits=logits)
    assert got.shape == (7, 3)
    ref = special.log_softmax(f64(logits), -1)[np.arange(3)[None, :], labels]
    np.testing.assert_allclose(got, ref, **tol(dtype))
    # A Python int label and one row of logits.
    np.testing.assert_allclose(
        categorical.log_prob(2, logits=logits[0]),
        special.log_softmax(f64(logits[0]))[2],
        **tol(dtype),
    )


def test_log_prob_out_of_range_labels_are_nan_with_zero_gradient():
    dtype = DTYPES[-1]
    logits = np.log(np.array([0.2, 0.3, 0.5])).astype(dtype)
    labels = np.array([0, 2, 3, -1, 100])
    got = np.asarray(categorical.log_prob(labels, logits=logits))
    np.testing.assert_allclose(got[:2], np.log([0.2, 0.5]), **tol(dtype))
    assert np.all(np.isnan(got[2:]))
    # Masking padding labels after the call leaves finite gradients.
    masked = lambda lg: jnp.sum(
        jnp.where(labels >= 0, categorical.log_prob(labels, logits=lg), 0.0)[:2]
    )
    g = jax.grad(masked)(logits)
    np.testing.assert_allclose(g, [1, 0, 1] - 2 * np.array([0.2, 0.3, 0.5]), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_cross_entropy_kl_match_scipy(dtype):
    rng = np.random.default_rng(2)
    lp, lq = rand_logits(rng, (6, 12), dtype), rand_logits(rng, (6, 12), dtype)
    h = jax.jit(lambda a: categorical.entropy(logits=a))(lp)
    ce = jax.jit(lambda a, b: categorical.cross_entropy(logits_p=a, logits_q=b))(lp, lq)
    d = jax.jit(lambda a, b: categorical.kl(logits_p=a, logits_q=b))(lp, lq)
    np.testing.assert_allclose(h, ref_entropy(lp), **tol(dtype))
    np.testing.assert_allclose(ce, ref_cross_entropy(lp, lq), **tol(dtype))
    np.testing.assert_allclose(d, ref_kl(lp, lq), **tol(dtype))
    np.testing.assert_allclose(
        d, np.sum(special.rel_entr(ref_probs(lp), ref_probs(lq)), -1), **tol(dtype)
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_identities(dtype):
    rng = np.random.default_rng(3)
    lp, lq = rand_logits(rng, (40, 7), dtype), rand_logits(rng, (40, 7), dtype)
    h = categorical.entropy(logits=lp)
    ce = categorical.cross_entropy(logits_p=lp, logits_q=lq)
    d = categorical.kl(logits_p=lp, logits_q=lq)
    np.testing.assert_allclose(d, ce - h, **tol(dtype))
    assert np.all(np.asarray(d) >= 0)
    np.testing.assert_allclose(categorical.cross_entropy(logits_p=lp, logits_q=lp), h, **tol(dtype))
    # H(p) = -E_p[log p(y)], summing log_prob over all labels.
    labels = np.arange(7)[:, None]
    log_probs = f64(categorical.log_prob(labels, logits=lp))  # (7, 40)
    np.testing.assert_allclose(-np.sum(np.exp(log_probs) * log_probs, 0), h, **tol(dtype))
    # Logits are unnormalised: shifting a row changes nothing.
    shift = rng.uniform(-50, 50, (40, 1)).astype(dtype)
    np.testing.assert_allclose(categorical.entropy(logits=lp + shift), h, **tol(dtype))
    np.testing.assert_allclose(categorical.kl(logits_p=lp + shift, logits_q=lq), d, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_of_equal_distributions_is_zero_with_zero_gradient(dtype):
    rng = np.random.default_rng(4)
    logits = rand_logits(rng, (5, 6), dtype)
    logits[0, 2] = -np.inf
    logits[1] = [1e4, 0.0, -1e4, -np.inf, 3.0, 1e4]
    kl = lambda a, b: jnp.sum(categorical.kl(logits_p=a, logits_q=b))
    assert float(kl(logits, logits)) == 0
    eps = np.finfo(dtype).eps
    for grad in (jax.grad(kl, argnums=(0, 1)), jax.jacfwd(kl, argnums=(0, 1))):
        for g in jax.jit(grad)(logits, logits):
            np.testing.assert_allclose(g, np.zeros_like(g), atol=4 * eps)


def _mp_kl(logits_p, logits_q):
    """KL between two categoricals in 40-digit arithmetic, at the float inputs."""
    with mpmath.workdps(40):
        a = [mpmath.mpf(float(v)) for v in logits_p]
        b = [mpmath.mpf(float(v)) for v in logits_q]
        log_za = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in a))
        log_zb = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in b))
        terms = (
            mpmath.exp(u - log_za) * ((u - log_za) - (v - log_zb))
            for u, v in zip(a, b, strict=True)
        )
        return float(mpmath.fsum(terms))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_of_nearby_distributions_is_never_negative_and_within_its_bound(rng, dtype):
    """Logits 1e-4 (float64: 1e-9) apart: the divergence is rounding noise there, but
    never below 0, and within the documented absolute error of the exact value."""
    num_classes = 5
    lp = rand_logits(rng, (80, num_classes), dtype, scale=3.0)
    spread = 1e-4 if dtype == np.float32 else 1e-9
    noise = spread * rng.standard_normal(lp.shape) * (1 + np.abs(f64(lp)))
    lq = (f64(lp) + noise).astype(dtype)
    value = np.asarray(jax.jit(lambda a, b: categorical.kl(logits_p=a, logits_q=b))(lp, lq))
    assert np.all(value >= 0)
    exact = np.array([_mp_kl(a, b) for a, b in zip(lp, lq, strict=True)])
    # A few ulps of the log-normalisers (of size log K here) and of the logit differences.
    scale = np.log(num_classes) + np.max(np.abs(f64(lp) - f64(lq)), axis=-1)
    assert np.all(np.abs(value - exact) <= 4 * np.finfo(dtype).eps * scale)


@pytest.mark.parametrize("dtype", DTYPES)
def test_confident_rows_are_within_the_documented_absolute_error(dtype):
    """Logits (0, -gap, -gap - 1): Z is within eps of 1, and the entropy, H(p, p), the
    log-probability of the likely class and the entropy's derivatives are within a few
    ulps of 1 of 40-digit mpmath (absolutely: the documented limit, not relatively)."""
    eps = np.finfo(dtype).eps
    for gap in (5.0, 20.0, 30.0, 60.0):
        logits = np.array([0.0, -gap, -gap - 1.0], dtype)
        with mpmath.workdps(40):
            weights = [mpmath.exp(mpmath.mpf(float(v))) for v in logits]
            total = mpmath.fsum(weights)
            probs = [w / total for w in weights]
            entropy = -mpmath.fsum(q * mpmath.log(q) for q in probs)
            mean = mpmath.fsum(q * mpmath.mpf(float(v)) for q, v in zip(probs, logits, strict=True))
            slope = [-q * (mpmath.mpf(float(v)) - mean) for q, v in zip(probs, logits, strict=True)]
            log_p0 = mpmath.log(probs[0])
        fns = jax.jit(
            lambda lg: (
                categorical.entropy(logits=lg),
                categorical.cross_entropy(logits_p=lg, logits_q=lg),
                categorical.log_prob(jnp.asarray(0), logits=lg),
                jax.grad(lambda u: categorical.entropy(logits=u))(lg),
            )
        )
        value, cross, log_prob, grad = (np.asarray(a, np.float64) for a in fns(logits))
        for got, want in ((value, entropy), (cross, entropy), (log_prob, log_p0)):
            np.testing.assert_allclose(got, float(want), rtol=0, atol=4 * eps, err_msg=str(gap))
        np.testing.assert_allclose(grad, [float(v) for v in slope], rtol=0, atol=4 * eps)
        assert value >= 0


# --- zero probabilities and extremes ------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_probabilities_from_minus_inf_logits(dtype):
    rng = np.random.default_rng(5)
    base = rand_logits(rng, (4, 5), dtype)
    lp = base.copy()
    lp[:, [1, 3]] = -np.inf
    lq = rand_logits(rng, (4, 5), dtype)
    lq[:, 3] = -np.inf  # q = 0 where p = 0: still finite
    # The references work from scipy's softmax, exactly 0 at -inf, and 0 log 0 = 0.
    checks = [
        (lambda a, b: categorical.entropy(logits=a), ref_entropy(lp)),
        (lambda a, b: categorical.kl(logits_p=a, logits_q=b), ref_kl(lp, lq)),
        (lambda a, b: categorical.cross_entropy(logits_p=a, logits_q=b), ref_cross_entropy(lp, lq)),
    ]
    # Zero-probability classes can be dropped altogether.
    np.testing.assert_allclose(ref_entropy(lp), ref_entropy(base[:, [0, 2, 4]]), rtol=1e-12)
    for fn, ref in checks:
        np.testing.assert_allclose(fn(lp, lq), ref, **tol(dtype))
        g_p, g_q = jax.grad(lambda a, b, fn=fn: jnp.sum(fn(a, b)), argnums=(0, 1))(lp, lq)
        assert np.all(np.isfinite(g_p)) and np.all(np.isfinite(g_q))
        assert np.all(np.asarray(g_p)[:, [1, 3]] == 0)
    # The label of a zero-probability class: -inf, with a finite gradient.
    lab = np.array([1, 0, 3, 2])
    np.testing.assert_array_equal(
        np.isneginf(categorical.log_prob(lab, logits=lp)), [True, False, True, False]
    )
    g = jax.grad(lambda a: jnp.sum(categorical.log_prob(lab, logits=a)))(lp)
    assert np.all(np.isfinite(g))
    # q = 0 where p > 0: the divergence and cross-entropy are infinite.
    assert np.all(np.isposinf(categorical.kl(logits_p=lq, logits_q=lp)))
    assert np.all(np.isposinf(categorical.cross_entropy(logits_p=lq, logits_q=lp)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gap", [50.0, 100.0, 800.0, 1e4])
def test_underflowed_class_against_a_zero_probability_class(dtype, gap):
    # Issue 13: a class whose finite p-logit lies `gap` below the row maximum (p_k
    # underflows to 0 beyond ~88 in float32, ~708 in float64) where q's logit is -inf:
    # q_k = 0 < p_k, so KL and H(p, q) are +inf in every dtype, with a zero gradient.
    # The other rows mix -inf logits, underflowed classes and +-1e4 logits, and stay
    # finite and exact.
    ninf = -np.inf
    lp = np.array(
        [
            [0.0, -gap, 1.0, ninf],  # underflowed p against q = 0: +inf
            [0.0, -gap, 1.0, ninf],  # the same p against a q > 0 there: finite
            [0.0, ninf, 1.0, -gap],  # p = 0 where q = 0 (0 log 0 = 0), underflow vs q > 0
            [1e4, -gap, ninf, 0.0],  # large logits
            [0.0, -gap, 1.0, 2.0],  # q = 0 at a class of ordinary probability: +inf
        ],
        dtype,
    )
    lq = np.array(
        [
            [0.0, ninf, 0.5, ninf],
            [0.0, 2.0, 0.5, ninf],
            [0.0, ninf, 0.5, 3.0],
            [-1e4, 0.0, ninf, 1e4],
            [ninf, 0.0, 0.5, 1.0],
        ],
        dtype,
    )
    infinite = np.array([True, False, False, False, True])

    def ref_kl_log_space(a, b):
        # stats.entropy would need q = e^-2e4 (0 in float64): log-space reference instead.
        with np.errstate(invalid="ignore"):
            log_ratio = special.log_softmax(f64(a), -1) - special.log_softmax(f64(b), -1)
            return np.sum(np.where(ref_probs(a) > 0, ref_probs(a) * log_ratio, 0.0), -1)

    fns = {
        "kl": (lambda a, b: categorical.kl(logits_p=a, logits_q=b), ref_kl_log_space),
        "cross_entropy": (
            lambda a, b: categorical.cross_entropy(logits_p=a, logits_q=b),
            ref_cross_entropy,
        ),
    }
    for fn, ref in fns.values():
        value = np.asarray(jax.jit(fn)(lp, lq))
        np.testing.assert_array_equal(np.isposinf(value), infinite)
        # The finite rows: float64 references (where p_k underflows in float64 too, its
        # exact contribution is below float64 resolution), each row to a few ulps of its
        # largest logit among the classes p gives mass (1e4 in the large-logit row only).
        expected = ref(lp[~infinite], lq[~infinite])
        massive = ref_probs(lp[~infinite]) > 0
        logits = np.concatenate([lp[~infinite], lq[~infinite]], -1)
        scale = np.max(np.where(np.tile(massive, 2), np.abs(f64(logits)), 0.0), axis=-1)
        bound = 32 * np.finfo(dtype).eps * (1.0 + np.abs(expected) + scale)
        error = np.abs(f64(value[~infinite]) - expected)
        assert np.all(error <= bound), error / bound
        total = lambda a, b, fn=fn: jnp.sum(fn(a, b))
        for grad in (jax.grad(total, argnums=(0, 1)), jax.jacfwd(total, argnums=(0, 1))):
            g_p, g_q = (np.asarray(g) for g in jax.jit(grad)(lp, lq))
            assert np.all(np.isfinite(g_p)) and np.all(np.isfinite(g_q))
            # +inf rows: a zero gradient; finite rows: the gradient they have on their own.
            np.testing.assert_array_equal(g_p[infinite], 0.0)
            np.testing.assert_array_equal(g_q[infinite], 0.0)
            g_p_ok, g_q_ok = jax.jit(grad)(lp[~infinite], lq[~infinite])
            np.testing.assert_allclose(g_p[~infinite], g_p_ok, rtol=1e-6, atol=1e-30)
            np.testing.assert_allclose(g_q[~infinite], g_q_ok, rtol=1e-6, atol=1e-30)
    # KL = H(p, q) - H(p) with the infinities too; the entropy of these p is finite.
    h = np.asarray(categorical.entropy(logits=lp))
    assert np.all(np.isfinite(h))
    expected = ref_entropy(lp)
    own = np.max(np.where(ref_probs(lp) > 0, np.abs(f64(lp)), 0.0), axis=-1)
    bound = 32 * np.finfo(dtype).eps * (1.0 + np.abs(expected) + own)
    assert np.all(np.abs(f64(h) - expected) <= bound), np.abs(f64(h) - expected) / bound
    g = jax.grad(lambda a: jnp.sum(categorical.entropy(logits=a)))(lp)
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("dtype", DTYPES)
def test_underflowed_class_values_with_log_prob(dtype):
    # The label of a class 1e4 below the maximum: log-probability -1e4 (finite), and the
    # gradient 1 - p_y = 1 at the label, -p_k elsewhere.
    lg = np.array([0.0, -1e4, -np.inf], dtype)
    np.testing.assert_allclose(categorical.log_prob(1, logits=lg), -1e4, **tol(dtype))
    g = jax.grad(lambda a: categorical.log_prob(1, logits=a))(lg)
    np.testing.assert_array_equal(g, [-1.0, 1.0, 0.0])


def test_undefined_distributions_give_nan_in_kl_and_cross_entropy():
    # No +inf override of an undefined p or q (all -inf, or a +inf logit): NaN stays NaN.
    dtype = DTYPES[-1]
    ninf = -np.inf
    valid = np.array([0.0, ninf], dtype)
    for a, b in [
        ([ninf, ninf], [0.0, ninf]),
        ([0.0, 1.0], [ninf, ninf]),
        ([0.0, 0.0], [np.inf, ninf]),
        (valid, [np.nan, 0.0]),
    ]:
        a, b = np.asarray(a, dtype), np.asarray(b, dtype)
        assert np.isnan(float(categorical.kl(logits_p=a, logits_q=b)))
        assert np.isnan(float(categorical.cross_entropy(logits_p=a, logits_q=b)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_logits(dtype):
    lg = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4], [-1e4, -1e4, -1e4]], dtype)
    other = np.array([[0.0, 1e4, 0.0], [1e4, 0.0, 1e4], [0.0, 0.0, 0.0]], dtype)
    np.testing.assert_allclose(
        categorical.entropy(logits=lg), [0.0, np.log(2), np.log(3)], **tol(dtype)
    )
    np.testing.assert_allclose(
        categorical.kl(logits_p=lg, logits_q=other), [1e4, 1e4 / 2, 0.0], **tol(dtype)
    )
    np.testing.assert_allclose(
        categorical.log_prob(np.array([0, 2, 1]), logits=lg),
        [0.0, -np.log(2), -np.log(3)],
        **tol(dtype),
    )
    fns = [
        lambda a, b: categorical.entropy(logits=a),
        lambda a, b: categorical.kl(logits_p=a, logits_q=b),
        lambda a, b: categorical.cross_entropy(logits_p=a, logits_q=b),
        lambda a, b: categorical.log_prob(np.array([0, 2, 1]), logits=a),
    ]
    for fn in fns:
        grads = jax.grad(lambda a, b, fn=fn: jnp.sum(fn(a, b)), argnums=(0, 1))(lg, other)
        assert all(np.all(np.isfinite(g)) for g in grads)


def test_undefined_distributions_give_nan():
    row = np.array([[-np.inf, -np.inf], [0.0, np.inf]], np.float32)
    assert np.all(np.isnan(categorical.entropy(logits=row)))
    assert np.all(np.isnan(categorical.log_prob(np.array([0, 0]), logits=row)))


# --- gradients, transformations, axes -----------------------------------------------


def all_functions(lp, lq):
    """Every differentiable function of the module, stacked, for one gradient check."""
    labels = np.array([[0, 4, 2], [1, 1, 3]])
    outputs = [
        categorical.log_prob(labels, logits=lp),
        categorical.entropy(logits=lp),
        categorical.cross_entropy(logits_p=lp, logits_q=lq),
        categorical.kl(logits_p=lp, logits_q=lq),
        categorical.kl(logits_p=lq, logits_q=lp, axis=(0, 2)),
    ]
    return jnp.concatenate([jnp.ravel(o) for o in outputs])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_match_finite_differences(dtype):
    rng = np.random.default_rng(6)
    lp, lq = rand_logits(rng, (2, 3, 5), dtype), rand_logits(rng, (2, 3, 5), dtype)
    fn = jax.jit(all_functions)
    # Second order in forward mode, first order in reverse mode (second-order reverse adds
    # compile time and no new rule to check).
    test_util.check_grads(fn, (lp, lq), order=2, modes=("fwd",), **grad_tol(dtype))
    test_util.check_grads(fn, (lp, lq), order=1, modes=("rev",), **grad_tol(dtype))


def test_jit_and_vmap_agree_with_eager():
    rng = np.random.default_rng(7)
    dtype = DTYPES[-1]
    lp, lq = rand_logits(rng, (4, 3, 6), dtype), rand_logits(rng, (4, 3, 6), dtype)
    labels = rng.integers(0, 6, (4, 3))
    fns = [
        lambda y, a, b: categorical.log_prob(y, logits=a),
        lambda y, a, b: categorical.entropy(logits=a),
        lambda y, a, b: categorical.cross_entropy(logits_p=a, logits_q=b),
        lambda y, a, b: categorical.kl(logits_p=a, logits_q=b),
    ]
    for fn in fns:
        eager = fn(labels, lp, lq)
        np.testing.assert_allclose(jax.jit(fn)(labels, lp, lq), eager, **tol(dtype))
        np.testing.assert_allclose(jax.vmap(fn)(labels, lp, lq), eager, **tol(dtype))


@pytest.mark.parametrize("axis", [0, 1, -1, (0, 2), (1, 2)])
def test_axis_is_the_class_axis(axis):
    rng = np.random.default_rng(8)
    dtype = DTYPES[-1]
    lp, lq = rand_logits(rng, (3, 4, 5), dtype), rand_logits(rng, (3, 4, 5), dtype)
    axes = axis if isinstance(axis, tuple) else (axis,)
    # A tuple of axes is one joint distribution over their product: move them last and
    # flatten them for the reference.
    axes = [a % 3 for a in axes]
    keep = [a for a in range(3) if a not in axes]
    flat = lambda a: np.transpose(f64(a), keep + axes).reshape([a.shape[k] for k in keep] + [-1])
    np.testing.assert_allclose(
        categorical.entropy(logits=lp, axis=axis), ref_entropy(flat(lp)), **tol(dtype)
    )
    np.testing.assert_allclose(
        categorical.kl(logits_p=lp, logits_q=lq, axis=axis),
        ref_kl(flat(lp), flat(lq)),
        **tol(dtype),
    )
    np.testing.assert_allclose(
        categorical.cross_entropy(logits_p=lp, logits_q=lq, axis=axis),
        ref_cross_entropy(flat(lp), flat(lq)),
        **tol(dtype),
    )


def test_broadcasting_between_p_and_q():
    rng = np.random.default_rng(9)
    dtype = DTYPES[-1]
    lp, lq = rand_logits(rng, (5, 1, 4), dtype), rand_logits(rng, (3, 4), dtype)
    got = categorical.kl(logits_p=lp, logits_q=lq)
    assert got.shape == (5, 3)
    np.testing.assert_allclose(got, ref_kl(np.broadcast_to(lp, (5, 3, 4)), lq), **tol(dtype))


# --- sampling -----------------------------------------------------------------------


def test_sample_frequencies_shape_and_dtype():
    with np.errstate(divide="ignore"):
        logits = np.log(np.array([[0.1, 0.2, 0.0, 0.7], [0.25] * 4], np.float32))
    n = 20_000
    draw = jax.jit(lambda k, lg: categorical.sample(k, logits=lg, sample_shape=(n,)))
    y = np.asarray(draw(jax.random.key(0), logits))
    assert y.shape == (n, 2) and np.issubdtype(y.dtype, np.integer)
    freq = np.stack([np.bincount(y[:, b], minlength=4) / n for b in range(2)])
    p = ref_probs(logits)
    se = np.sqrt(p * (1 - p) / n)
    # Five standard errors of a multinomial frequency; exact for probability 0.
    assert np.all(np.abs(freq - p) <= 5 * se), (freq, p)
    assert categorical.sample(jax.random.key(1), logits=logits).shape == (2,)


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_sampling_ignores_a_constant_added_to_the_logits(offset):
    # float32 sums near 1e6 step by 1/16: without the shift by the row maximum, ties
    # between logit + Gumbel went to class 0 (P = 0.508 here, 32 standard errors off).
    logits = jnp.full((2,), offset, jnp.float32)
    n = 2**22
    y = jax.jit(lambda k: categorical.sample(k, logits=logits, sample_shape=n))(KEY)
    share = float(jnp.mean(y == 0))
    assert abs(share - 0.5) <= 5 * 0.5 / np.sqrt(n), share


def test_a_row_without_a_distribution_samples_the_out_of_range_label():
    logits = jnp.array([[0.0, 1.0], [-jnp.inf, -jnp.inf], [jnp.inf, 0.0], [jnp.nan, 0.0]])
    y = np.asarray(jax.jit(lambda lg: categorical.sample(KEY, logits=lg, sample_shape=5))(logits))
    assert np.all(y[:, 1:] == -1) and np.all((y[:, 0] >= 0) & (y[:, 0] < 2))
    # log_prob answers the label with NaN, as it does any label out of range.
    assert np.all(np.isnan(np.asarray(categorical.log_prob(y[0], logits=logits))[1:]))


# --- dtypes and errors --------------------------------------------------------------


def test_dtype_promotion():
    labels = np.array([0, 1])
    l32 = np.zeros((2, 3), np.float32)
    assert categorical.log_prob(labels, logits=l32).dtype == np.float32
    assert categorical.entropy(logits=jnp.zeros(3, jnp.bfloat16)).dtype == np.float32
    assert categorical.log_prob(labels, logits=jnp.zeros((2, 3), jnp.bfloat16)).dtype == (
        np.float32
    )
    assert categorical.kl(logits_p=jnp.zeros(3, jnp.bfloat16), logits_q=l32[0]).dtype == (
        np.float32
    )
    if X64:
        assert categorical.entropy(logits=np.zeros(3)).dtype == np.float64
        assert categorical.log_prob(np.int64(1), logits=np.zeros(3)).dtype == np.float64


def test_errors_name_the_argument():
    l32 = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="labels"):
        categorical.log_prob(np.array([0.0, 1.0]), logits=l32)
    with pytest.raises(TypeError, match="labels"):
        categorical.log_prob(np.array([True, False]), logits=l32)
    with pytest.raises(TypeError, match="logits"):
        categorical.log_prob(np.array([0, 1]), logits=np.zeros((2, 3), np.int32))
    with pytest.raises(ValueError, match="labels"):
        categorical.log_prob(np.array([0, 1, 2]), logits=l32)
    with pytest.raises(ValueError, match="logits"):
        categorical.log_prob(0, logits=np.float32(0.0))
    with pytest.raises(TypeError, match="logits_p"):
        categorical.kl(logits_p=np.zeros(3, np.int32), logits_q=l32)
    with pytest.raises(ValueError, match=r"`logits_p`.*`logits_q`"):
        categorical.cross_entropy(logits_p=l32, logits_q=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="axis 2"):
        categorical.entropy(logits=l32, axis=2)
    with pytest.raises(TypeError, match="logits"):
        categorical.sample(jax.random.key(0), logits=np.zeros(3, np.int32))
    with pytest.raises(TypeError, match="labels"):
        jax.jit(lambda y: categorical.log_prob(y, logits=l32))(np.array([0.5, 1.5]))

"""genmath.mixture against float64 scipy references, exact zeros and their gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util
from scipy import special, stats

from genmath import categorical, mixture, normal
from tests.genmath.helpers import DTYPES, X64, f64, grad_tol, tol

NINF = -np.inf


def ref_log_prob(component_log_probs, logits, axis=-1):
    c, lg = np.broadcast_arrays(f64(component_log_probs), f64(logits))
    log_w = special.log_softmax(lg, axis=axis)
    with np.errstate(invalid="ignore"):
        terms = np.where(np.isneginf(log_w), NINF, log_w + np.where(np.isneginf(log_w), 0, c))
    return special.logsumexp(terms, axis=axis)


# --- log_prob -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("c_shape", "logits_shape", "axis"),
    [((6, 4), (4,), -1), ((6, 4), (6, 4), -1), ((4, 6), (4, 1), 0), ((3, 2, 5), (2, 5), (1, 2))],
)
def test_log_prob_matches_scipy(dtype, c_shape, logits_shape, axis):
    rng = np.random.default_rng(0)
    c = (-5 + 3 * rng.standard_normal(c_shape)).astype(dtype)
    logits = (2 * rng.standard_normal(logits_shape)).astype(dtype)
    got = jax.jit(lambda c, lg: mixture.log_prob(c, logits=lg, axis=axis))(c, logits)
    ref = ref_log_prob(c, logits, axis)
    assert got.dtype == dtype and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_mixture_density_against_scipy(dtype):
    # p(x) = sum_k w_k N(x; mu_k, sigma_k^2) in 1-d, by scipy's pdf.
    rng = np.random.default_rng(1)
    weights = np.array([0.2, 0.5, 0.3])
    loc, scale = np.array([-2.0, 0.0, 3.0]), np.array([0.5, 1.0, 2.0])
    x = rng.normal(0, 3, (40, 1))
    component = normal.log_prob(
        x.astype(dtype), loc=loc.astype(dtype), log_scale=np.log(scale).astype(dtype), axis=()
    )
    got = mixture.log_prob(component, logits=np.log(weights).astype(dtype))
    ref = np.log(np.sum(weights * stats.norm.pdf(x, loc, scale), axis=-1))
    np.testing.assert_allclose(got, ref, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_weights_are_exact_with_finite_gradients(dtype):
    # Logit -inf: the component is removed, whatever its log-density (finite, +-inf, NaN).
    rng = np.random.default_rng(2)
    kept = (-4 + rng.standard_normal((4, 3))).astype(dtype)
    logits_kept = rng.standard_normal(3).astype(dtype)
    junk = np.array([[0.0], [np.inf], [NINF], [np.nan]], dtype)
    c = np.concatenate([kept, junk], axis=1)
    logits = np.concatenate([logits_kept, [NINF]]).astype(dtype)
    fn = lambda c, lg: mixture.log_prob(c, logits=lg)
    got = jax.jit(fn)(c, logits)
    np.testing.assert_allclose(got, ref_log_prob(kept, logits_kept), **tol(dtype))
    total = lambda c, lg: jnp.sum(fn(c, lg))
    for grad in (jax.grad(total, argnums=(0, 1)), jax.jacfwd(total, argnums=(0, 1))):
        g_c, g_l = (np.asarray(g) for g in jax.jit(grad)(c, logits))
        assert np.all(np.isfinite(g_c)) and np.all(np.isfinite(g_l))
        np.testing.assert_array_equal(g_c[:, -1], 0.0)
        assert g_l[-1] == 0.0
        # The other entries: the gradients of the mixture without the dead component.
        g_c_ref, g_l_ref = jax.grad(total, argnums=(0, 1))(kept, logits_kept)
        np.testing.assert_allclose(g_c[:, :-1], g_c_ref, **tol(dtype))
        np.testing.assert_allclose(g_l[:-1], g_l_ref, **tol(dtype))
    # Responsibilities (d log p / d log p_k) are 0 there and sum to 1 over the others.
    r = np.exp(f64(mixture.posterior(c, logits=logits)))
    np.testing.assert_array_equal(r[:, -1], 0.0)
    np.testing.assert_allclose(r.sum(-1), 1.0, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_impossible_observation_is_minus_inf_with_zero_gradient(dtype):
    # Every component of positive weight gives density 0: log p = -inf, gradient 0 (not
    # the NaN of jax.nn.logsumexp), so the entry can be masked out of a loss.
    c = np.array([[NINF, NINF, NINF], [-1.0, NINF, -2.0], [NINF, NINF, 5.0]], dtype)
    logits = np.array([0.3, -0.2, NINF], dtype)  # the third component has weight 0
    got = np.asarray(mixture.log_prob(c, logits=logits))
    assert got[0] == NINF and got[2] == NINF
    np.testing.assert_allclose(got[1], ref_log_prob(c[1], logits), **tol(dtype))
    for grad in (jax.grad, jax.jacfwd):
        g_c, g_l = grad(
            lambda c, lg: jnp.sum(jnp.where(jnp.arange(3) == 1, mixture.log_prob(c, logits=lg), 0)),
            argnums=(0, 1),
        )(c, logits)
        assert np.all(np.isfinite(g_c)) and np.all(np.isfinite(g_l))
        np.testing.assert_array_equal(np.asarray(g_c)[[0, 2]], 0.0)
        # Unmasked, the -inf entries still have zero (not NaN) gradients.
        g_c, g_l = grad(lambda c, lg: mixture.log_prob(c, logits=lg)[0], argnums=(0, 1))(c, logits)
        np.testing.assert_array_equal(g_c, 0.0)
        np.testing.assert_array_equal(g_l, 0.0)
    # The posterior of such an observation is undefined: NaN, zero gradient.
    post = np.asarray(mixture.posterior(c, logits=logits))
    assert np.all(np.isnan(post[[0, 2]])) and not np.any(np.isnan(post[1]))
    g = jax.grad(
        lambda c: jnp.sum(
            jnp.where(
                jnp.isfinite(mixture.posterior(c, logits=logits)),
                mixture.posterior(c, logits=logits),
                0.0,
            )
        )
    )(c)
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(np.asarray(g)[[0, 2]], 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extremes(dtype):
    c = np.array([[-1e4, -1e4 - 1.0, 0.0], [1e4, 0.0, -30.0]], dtype)
    for logits in (np.array([1e4, 1e4, -1e4], dtype), np.array([-1e4, 0.0, 1e4], dtype)):
        got = mixture.log_prob(c, logits=logits)
        # Relative to each value (0, -30 or about +-1e4), with 32 ulps of 1 beside it.
        np.testing.assert_allclose(got, ref_log_prob(c, logits), **tol(dtype))
        grads = jax.grad(lambda c, lg: jnp.sum(mixture.log_prob(c, logits=lg)), (0, 1))(c, logits)
        assert all(np.all(np.isfinite(g)) for g in grads)
    # A point mass at x (+inf) with positive weight: +inf. No weights at all: NaN.
    assert float(mixture.log_prob(np.array([np.inf, 0.0], dtype), logits=np.zeros(2, dtype))) == (
        np.inf
    )
    assert np.isnan(float(mixture.log_prob(np.zeros(2, dtype), logits=np.full(2, NINF, dtype))))
    # One component of weight 1: its log-density, exactly.
    one = np.array([0.0, NINF, NINF], dtype)
    np.testing.assert_array_equal(mixture.log_prob(c, logits=one), c[:, 0])


# --- posterior ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_posterior_matches_bayes_rule(dtype):
    rng = np.random.default_rng(3)
    c = (-3 + 2 * rng.standard_normal((10, 5))).astype(dtype)
    logits = rng.standard_normal(5).astype(dtype)
    post = jax.jit(lambda c, lg: mixture.posterior(c, logits=lg))(c, logits)
    joint = special.log_softmax(f64(logits)) + f64(c)
    np.testing.assert_allclose(
        post, joint - special.logsumexp(joint, -1, keepdims=True), **tol(dtype)
    )
    # log r_k = log w_k + log p_k - log p(x).
    log_p = f64(mixture.log_prob(c, logits=logits))[:, None]
    np.testing.assert_allclose(post, joint - log_p, **tol(dtype))


# --- mean, select, sample -----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean(dtype):
    rng = np.random.default_rng(4)
    means = rng.standard_normal((6, 3, 2)).astype(dtype)  # batch 6, K = 3, D = 2
    logits = rng.standard_normal((6, 3)).astype(dtype)
    got = jax.jit(lambda m, lg: mixture.mean(m, logits=lg, axis=-2))(means, logits)
    w = special.softmax(f64(logits), -1)
    np.testing.assert_allclose(got, np.sum(w[..., None] * f64(means), 1), **tol(dtype))
    # Per-pixel layout (components last, no event axes) and shared logits.
    got = mixture.mean(means[..., 0], logits=logits[0])
    np.testing.assert_allclose(
        got, f64(means[..., 0]) @ special.softmax(f64(logits[0])), **tol(dtype)
    )
    # A component of weight 0 with an infinite or NaN mean is ignored, gradients finite.
    bad = means.copy()
    bad[:, 2] = [np.nan, np.inf]
    dead = logits.copy()
    dead[:, 2] = NINF
    got = mixture.mean(bad, logits=dead, axis=-2)
    w = special.softmax(f64(dead), -1)[..., :2, None]
    np.testing.assert_allclose(got, np.sum(w * f64(means[:, :2]), 1), **tol(dtype))
    g_m, g_l = jax.grad(lambda m, lg: jnp.sum(mixture.mean(m, logits=lg, axis=-2)), (0, 1))(
        bad, dead
    )
    assert np.all(np.isfinite(g_m)) and np.all(np.isfinite(g_l))
    np.testing.assert_array_equal(np.asarray(g_m)[:, 2], 0.0)


def test_select():
    dtype = DTYPES[-1]
    values = np.arange(2 * 3 * 4, dtype=dtype).reshape(2, 3, 4)  # batch 2, K = 3, D = 4
    got = mixture.select(values, np.array([2, 0]), axis=1)
    np.testing.assert_array_equal(got, values[[0, 1], [2, 0]])
    # Components last (per-pixel mixtures); a broadcast index.
    got = mixture.select(values, np.array([1, 3, 0]), axis=-1)
    np.testing.assert_array_equal(got, values[:, np.arange(3), [1, 3, 0]])
    np.testing.assert_array_equal(mixture.select(values, np.array(1), axis=0), values[1])
    # Out of range, negative included: NaN for floats (no wrap-around), integer fill value.
    got = np.asarray(mixture.select(values, np.array([3, -1]), axis=1))
    assert np.all(np.isnan(got))
    ints = mixture.select(values.astype(np.int32), np.array([3, 1]), axis=1)
    assert ints.dtype == np.int32 and np.all(np.asarray(ints)[0] == np.iinfo(np.int32).min)
    # Gradients reach the selected entries only.
    g = jax.grad(lambda v: jnp.sum(mixture.select(v, np.array([2, 0]), axis=1)))(values)
    expected = np.zeros_like(values)
    expected[0, 2] = expected[1, 0] = 1.0
    np.testing.assert_array_equal(g, expected)


def test_sample_of_logits_that_define_no_mixture_is_nan():
    logits = jnp.array([[0.0, 0.0], [-jnp.inf, -jnp.inf], [jnp.inf, 0.0], [jnp.nan, 0.0]])
    samples = jnp.broadcast_to(jnp.array([1.0, 2.0]), (4, 2))
    drawn = np.asarray(
        jax.jit(mixture.sample)(jax.random.key(0), logits=logits, component_samples=samples)
    )
    assert drawn[0] in (1.0, 2.0) and np.all(np.isnan(drawn[1:]))


@pytest.mark.parametrize("index_dtype", [np.uint8, np.int8, np.int16, np.uint16, np.uint32])
def test_select_with_narrow_index_dtypes(index_dtype):
    """More components than the index dtype's range: K must not wrap in that dtype."""
    values = np.arange(2 * 300, dtype=np.float32).reshape(2, 300)
    index = np.array([1, 127], index_dtype)
    got = jax.jit(mixture.select)(values, index)
    np.testing.assert_array_equal(got, values[[0, 1], [1, 127]])
    if np.issubdtype(index_dtype, np.signedinteger):
        assert np.all(np.isnan(mixture.select(values, np.array([-1, -128], index_dtype))))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sample_frequencies_and_reparameterisation(dtype):
    # A 2-d Gaussian mixture decoder: loc (batch, K, D), samples (n, batch, K, D).
    with np.errstate(divide="ignore"):  # log 0 = -inf: a component of weight 0
        logits = np.log(np.array([[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]])).astype(dtype)  # (2, 3)
    loc = np.array(
        [[[-10.0, 0.0], [10.0, 0.0], [np.nan, np.nan]], [[0.0, -10.0], [0.0, 10.0], [30.0, 30.0]]],
        dtype,
    )
    n = 20_000
    z = normal.sample(jax.random.key(0), loc=np.nan_to_num(loc), log_scale=-2.0, sample_shape=n)
    z = jnp.where(jnp.isnan(loc), jnp.nan, z)  # the dead component's samples are NaN
    x = jax.jit(lambda k, lg, z: mixture.sample(k, logits=lg, component_samples=z, axis=-2))(
        jax.random.key(1), logits, z
    )
    assert x.shape == (n, 2, 2) and x.dtype == dtype
    x = np.asarray(x, np.float64)
    assert not np.any(np.isnan(x))  # weight 0 is never chosen
    # The chosen component is the one whose mean the sample sits at.
    chosen = np.argmin(
        np.linalg.norm(x[:, :, None, :] - np.nan_to_num(f64(loc), nan=1e9), axis=-1), axis=-1
    )  # (n, 2)
    p = special.softmax(f64(logits), -1)
    freq = np.stack([np.bincount(chosen[:, b], minlength=3) / n for b in range(2)])
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= 5 * se), (freq, p)
    # The indices are categorical.sample's with the same key (documented).
    index = categorical.sample(jax.random.key(1), logits=jnp.broadcast_to(logits, (n, 2, 3)))
    np.testing.assert_array_equal(chosen, index)
    # Monte Carlo mean against mixture.mean (the dead component's NaN mean ignored).
    mean = f64(mixture.mean(loc, logits=logits, axis=-2))
    np.testing.assert_allclose(x.mean(0), mean, atol=5 * 10 / np.sqrt(n))

    # Reparameterised through the chosen component: d x / d loc = 1 for the chosen one.
    def first(loc):
        z = normal.sample(jax.random.key(0), loc=loc, log_scale=-2.0, sample_shape=3)
        return mixture.sample(jax.random.key(1), logits=logits, component_samples=z, axis=-2)

    g = jax.jacrev(lambda loc: jnp.sum(first(loc), axis=(0, 2)))(np.nan_to_num(loc))  # (2, 2, 3, 2)
    counts = np.stack([np.bincount(np.asarray(index[:3, b]), minlength=3) for b in range(2)])
    np.testing.assert_allclose(np.asarray(g)[[0, 1], [0, 1]].sum(-1), 2 * counts)


def test_sample_shapes():
    key = jax.random.key(0)
    z = jnp.zeros((5, 7, 4, 3))  # (sample, batch, K, D)
    assert mixture.sample(key, logits=jnp.zeros(4), component_samples=z, axis=-2).shape == (
        5,
        7,
        3,
    )
    assert mixture.sample(key, logits=jnp.zeros((7, 4)), component_samples=z, axis=2).shape == (
        5,
        7,
        3,
    )
    # Per-pixel mixtures: components last.
    z = jnp.zeros((5, 7, 4))
    assert mixture.sample(key, logits=jnp.zeros((7, 4)), component_samples=z).shape == (5, 7)
    ints = mixture.sample(key, logits=jnp.zeros(4), component_samples=jnp.zeros((2, 4), int))
    assert ints.dtype == jnp.zeros((), int).dtype


# --- gradients, transformations, dtypes, errors -------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_match_finite_differences(dtype):
    rng = np.random.default_rng(5)
    c = (-2 + rng.standard_normal((3, 4))).astype(dtype)
    logits = rng.standard_normal((3, 4)).astype(dtype)
    means = rng.standard_normal((3, 4, 2)).astype(dtype)

    def all_functions(c, lg, m):
        return jnp.concatenate(
            [
                mixture.log_prob(c, logits=lg),
                mixture.log_prob(c, logits=lg[0], axis=(0, 1))[None],
                mixture.posterior(c, logits=lg).ravel(),
                mixture.mean(m, logits=lg, axis=-2).ravel(),
            ]
        )

    fn = jax.jit(all_functions)
    test_util.check_grads(fn, (c, logits, means), order=2, modes=("fwd",), **grad_tol(dtype))
    test_util.check_grads(fn, (c, logits, means), order=1, modes=("rev",), **grad_tol(dtype))


def test_jit_and_vmap_agree_with_eager():
    rng = np.random.default_rng(6)
    dtype = DTYPES[-1]
    c = rng.standard_normal((5, 4)).astype(dtype)
    logits = rng.standard_normal((5, 4)).astype(dtype)
    eager = mixture.log_prob(c, logits=logits)
    mapped = jax.vmap(lambda c, lg: mixture.log_prob(c, logits=lg))(c, logits)
    np.testing.assert_allclose(mapped, eager, **tol(dtype))
    np.testing.assert_allclose(
        jax.jit(lambda c, lg: mixture.log_prob(c, logits=lg))(c, logits), eager, **tol(dtype)
    )


def test_dtypes():
    bf = jnp.zeros((2, 3), jnp.bfloat16)
    assert mixture.log_prob(bf, logits=bf).dtype == np.float32
    assert mixture.posterior(bf, logits=jnp.zeros(3, np.float32)).dtype == np.float32
    assert mixture.mean(bf, logits=bf).dtype == np.float32
    if X64:
        assert mixture.log_prob(np.zeros(3), logits=np.zeros(3)).dtype == np.float64


def test_errors_name_the_argument():
    f32 = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="logits"):
        mixture.log_prob(f32, logits=np.zeros(3, np.int32))
    with pytest.raises(TypeError, match="component_log_probs"):
        mixture.log_prob(np.zeros((2, 3), np.int32), logits=f32)
    with pytest.raises(ValueError, match=r"`component_log_probs`.*`logits`"):
        mixture.log_prob(f32, logits=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="axis 2"):
        mixture.posterior(f32, logits=f32, axis=2)
    with pytest.raises(TypeError, match="index"):
        mixture.select(f32, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="index"):
        mixture.select(f32, np.array([0, 1, 2]), axis=-1)
    with pytest.raises(TypeError, match="axis"):
        mixture.select(f32, np.array([0, 1]), axis=(0, 1))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="K = 3"):
        mixture.sample(key, logits=np.zeros(4, np.float32), component_samples=f32)
    with pytest.raises(ValueError, match="logits"):
        mixture.sample(key, logits=np.zeros((5, 3), np.float32), component_samples=f32)
    with pytest.raises(TypeError, match="logits"):
        mixture.sample(key, logits=np.zeros(3, np.int32), component_samples=f32)
    with pytest.raises(TypeError, match="component_means"):
        mixture.mean(np.zeros((2, 3), np.int32), logits=np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="logits"):
        jax.jit(lambda lg: mixture.log_prob(f32, logits=lg))(np.zeros(3, np.int32))

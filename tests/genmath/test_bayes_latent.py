"""genmath.bayes and genmath.latent against scipy float64 references and known identities."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util
from scipy import special, stats

from genmath import bayes, bernoulli, categorical, latent
from tests.genmath.helpers import DTYPES, X64, f64, grad_tol, tol

# --- bayes --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_posterior_of_a_gaussian_class_model_matches_bayes_rule(dtype):
    # Three classes with priors and 1-d Gaussian class-conditionals; 50 observations.
    rng = np.random.default_rng(0)
    prior = np.array([0.2, 0.5, 0.3])
    means, scales = np.array([-2.0, 0.0, 1.5]), np.array([1.0, 0.5, 2.0])
    x = rng.normal(0.0, 2.0, (50, 1))
    log_joint = (np.log(prior) + stats.norm.logpdf(x, means, scales)).astype(dtype)
    post = jax.jit(bayes.posterior)(log_joint)
    evid = jax.jit(bayes.evidence)(log_joint)
    joint = np.exp(f64(log_joint))
    np.testing.assert_allclose(post, np.log(joint / joint.sum(-1, keepdims=True)), **tol(dtype))
    np.testing.assert_allclose(evid, special.logsumexp(f64(log_joint), -1), **tol(dtype))
    np.testing.assert_allclose(np.exp(f64(post)).sum(-1), np.ones(50), **tol(dtype))
    np.testing.assert_allclose(post, f64(log_joint) - f64(evid)[:, None], **tol(dtype))


@pytest.mark.parametrize("axis", [0, -1, (0, 2), (1, 2)])
def test_posterior_and_evidence_axes(axis):
    rng = np.random.default_rng(1)
    dtype = DTYPES[-1]
    log_joint = (5 * rng.standard_normal((3, 4, 5))).astype(dtype)
    np.testing.assert_allclose(
        bayes.posterior(log_joint, axis=axis),
        special.log_softmax(f64(log_joint), axis=axis),
        **tol(dtype),
    )
    np.testing.assert_allclose(
        bayes.evidence(log_joint, axis=axis),
        special.logsumexp(f64(log_joint), axis=axis),
        **tol(dtype),
    )
    post_sum = np.exp(f64(bayes.posterior(log_joint, axis=axis))).sum(axis)
    np.testing.assert_allclose(post_sum, np.ones_like(post_sum), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bayes_extremes(dtype):
    log_joint = np.array(
        [
            [0.0, -np.inf, np.log(3.0)],
            [-1e4, -1e4 - np.log(3.0), -np.inf],
            [-np.inf, -np.inf, -np.inf],
        ],
        dtype,
    )
    post, evid = bayes.posterior(log_joint), bayes.evidence(log_joint)
    # References from the rounded inputs; no cancellation at -1e4 in the posterior.
    np.testing.assert_allclose(post[:2], special.log_softmax(f64(log_joint[:2]), -1), **tol(dtype))
    np.testing.assert_allclose(np.exp(f64(post[0])), [0.25, 0.0, 0.75], **tol(dtype))
    np.testing.assert_allclose(evid[:2], special.logsumexp(f64(log_joint[:2]), -1), **tol(dtype))
    # An impossible observation: evidence -inf, posterior undefined (NaN).
    assert float(evid[2]) == -np.inf and np.all(np.isnan(post[2]))
    # Impossible classes stay -inf with finite gradients.
    g = jax.grad(lambda a: jnp.sum(bayes.posterior(a)[:2, 0]))(log_joint[:2])
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[[0, 1], [1, 2]] == 0)
    g = jax.grad(lambda a: jnp.sum(bayes.evidence(a)))(log_joint)
    np.testing.assert_allclose(g[:2], np.exp(f64(post[:2])), **tol(dtype))
    # The impossible observation's -inf evidence has a zero (not NaN) gradient, so masking
    # it out of a loss leaves the loss's gradient finite.
    np.testing.assert_array_equal(g[2], np.zeros(3))
    masked_loss = lambda a: jnp.sum(jnp.where(jnp.arange(3) < 2, bayes.evidence(a), 0.0))
    assert np.all(np.isfinite(jax.grad(masked_loss)(log_joint)))
    assert float(latent.iwae_bound(log_joint[2])) == -np.inf
    np.testing.assert_array_equal(jax.grad(latent.iwae_bound)(log_joint[2]), np.zeros(3))
    # An infinite log-joint gives an infinite evidence, as logsumexp does.
    assert float(bayes.evidence(np.array([0.0, np.inf], dtype))) == np.inf


# --- latent: IWAE -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_iwae_bound_matches_scipy(dtype):
    rng = np.random.default_rng(2)
    log_w = (-90 + 3 * rng.standard_normal((16, 7))).astype(dtype)
    got = jax.jit(latent.iwae_bound)(log_w)
    np.testing.assert_allclose(got, special.logsumexp(f64(log_w), 0) - np.log(16), **tol(dtype))
    # Jensen: the bound is at least the mean log-weight (the K-sample ELBO estimate).
    assert np.all(f64(got) >= f64(log_w).mean(0) - 32 * np.finfo(dtype).eps * 90)
    # K = 1: the bound is the log-weight itself, i.e. the ELBO estimate.
    np.testing.assert_array_equal(latent.iwae_bound(log_w[:1]), log_w[0])
    # Tuple axes: K is the product of their sizes.
    log_w3 = log_w.reshape(4, 4, 7)
    np.testing.assert_allclose(latent.iwae_bound(log_w3, axis=(0, 1)), got, **tol(dtype))
    np.testing.assert_allclose(latent.iwae_bound(log_w.T, axis=-1), got, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_iwae_with_the_exact_posterior_is_log_evidence(dtype):
    # z ~ N(0, 1), x | z ~ N(z, 1): p(x) = N(0, 2) and p(z | x) = N(x/2, 1/2). With the
    # exact posterior as proposal every log-weight equals log p(x), for any K.
    rng = np.random.default_rng(3)
    x = rng.normal(0, np.sqrt(2), 5)
    z = rng.normal(x / 2, np.sqrt(0.5), (8, 5))
    log_w = (
        stats.norm.logpdf(z) + stats.norm.logpdf(x, z) - stats.norm.logpdf(z, x / 2, np.sqrt(0.5))
    ).astype(dtype)
    log_px = stats.norm.logpdf(x, 0, np.sqrt(2))
    for k in (1, 3, 8):
        np.testing.assert_allclose(latent.iwae_bound(log_w[:k]), log_px, **tol(dtype))


def test_iwae_is_non_decreasing_in_k_in_expectation():
    # i.i.d. log-weights ~ N(0, 1): E[L_1] = 0 and E[L_K] rises towards log E[w] = 1/2.
    rng = np.random.default_rng(4)
    log_w = rng.standard_normal((64, 4000)).astype(np.float32)
    ks = [1, 2, 4, 16, 64]
    bounds = np.stack([f64(latent.iwae_bound(log_w[:k])) for k in ks])  # (5, 4000)
    steps = np.diff(bounds, axis=0)
    mean_steps = steps.mean(1)
    se_steps = steps.std(1, ddof=1) / np.sqrt(steps.shape[1])
    assert np.all(mean_steps > 5 * se_steps), (mean_steps, se_steps)
    assert abs(bounds[0].mean()) < 5 / np.sqrt(4000)
    assert bounds[-1].mean() < 0.5


# --- latent: Monte-Carlo KL, ELBO, bits per dimension ------------------------------


def test_kl_monte_carlo_agrees_with_closed_form_bernoulli_kl():
    rng = np.random.default_rng(5)
    logits_q = rng.normal(0, 2, (3, 10)).astype(np.float32)
    logits_p = rng.normal(0, 2, (3, 10)).astype(np.float32)
    n = 4000
    z = bernoulli.sample(jax.random.key(0), logits=logits_q, sample_shape=n)  # (n, 3, 10)
    log_q = bernoulli.log_prob(z, logits=logits_q)  # (n, 3)
    log_p = bernoulli.log_prob(z, logits=logits_p)
    estimate = latent.kl_monte_carlo(log_q, log_p)
    exact = bernoulli.kl(logits_p=logits_q, logits_q=logits_p)
    se = np.std(f64(log_q) - f64(log_p), axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(f64(estimate) - f64(exact)) <= 5 * se), (estimate, exact, se)


def test_kl_monte_carlo_agrees_with_closed_form_categorical_kl():
    rng = np.random.default_rng(6)
    logits_q = rng.normal(0, 1.5, (4, 6)).astype(np.float32)
    logits_p = rng.normal(0, 1.5, (4, 6)).astype(np.float32)
    n = 4000
    y = categorical.sample(jax.random.key(1), logits=logits_q, sample_shape=n)  # (n, 4)
    log_q = categorical.log_prob(y, logits=logits_q)
    log_p = categorical.log_prob(y, logits=logits_p)
    estimate = latent.kl_monte_carlo(log_q, log_p, axis=0)
    exact = categorical.kl(logits_p=logits_q, logits_q=logits_p)
    se = np.std(f64(log_q) - f64(log_p), axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(f64(estimate) - f64(exact)) <= 5 * se), (estimate, exact, se)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_monte_carlo_elbo_and_bits_per_dim_values(dtype):
    rng = np.random.default_rng(7)
    log_q = rng.normal(-5, 1, (10, 3)).astype(dtype)
    log_p = rng.normal(-6, 1, (10, 1)).astype(dtype)  # broadcasts over the batch
    np.testing.assert_allclose(
        latent.kl_monte_carlo(log_q, log_p), np.mean(f64(log_q) - f64(log_p), 0), **tol(dtype)
    )
    np.testing.assert_allclose(
        latent.kl_monte_carlo(log_q.T, log_p.T, axis=-1),
        np.mean(f64(log_q) - f64(log_p), 0),
        **tol(dtype),
    )
    ll, kl = log_q[0], log_p[0]
    np.testing.assert_allclose(latent.elbo(ll, kl), f64(ll) - f64(kl), **tol(dtype))
    nll = rng.uniform(50, 150, (4,)).astype(dtype)
    np.testing.assert_allclose(
        latent.bits_per_dim(nll, num_dims=784), f64(nll) / (784 * np.log(2)), **tol(dtype)
    )
    dims = np.array([784, 3072, 1, 10])
    np.testing.assert_allclose(
        latent.bits_per_dim(nll, num_dims=dims), f64(nll) / (dims * np.log(2)), **tol(dtype)
    )
    # A uniform distribution over 256 pixel values is 8 bits per dimension.
    assert float(latent.bits_per_dim(np.asarray(784 * math.log(256), dtype), num_dims=784)) == (
        pytest.approx(8.0, rel=32 * float(np.finfo(dtype).eps))
    )


# --- gradients, transformations, dtypes, errors -------------------------------------


def all_functions(a, b):
    outputs = [
        bayes.posterior(a),
        bayes.evidence(a, axis=0),
        latent.iwae_bound(a),
        latent.kl_monte_carlo(a, b),
        latent.elbo(a, b),
        latent.bits_per_dim(a, num_dims=7),
    ]
    return jnp.concatenate([jnp.ravel(o) for o in outputs])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_match_finite_differences(dtype):
    rng = np.random.default_rng(8)
    a, b = rng.normal(0, 2, (4, 3)).astype(dtype), rng.normal(0, 2, (4, 3)).astype(dtype)
    fn = jax.jit(all_functions)
    test_util.check_grads(fn, (a, b), order=2, modes=("fwd",), **grad_tol(dtype))
    test_util.check_grads(fn, (a, b), order=1, modes=("rev",), **grad_tol(dtype))


def test_jit_and_vmap_agree_with_eager():
    rng = np.random.default_rng(9)
    dtype = DTYPES[-1]
    a, b = rng.normal(0, 2, (5, 6, 3)).astype(dtype), rng.normal(0, 2, (5, 6, 3)).astype(dtype)
    # Functions with their batch axis (vmapped over; the sample axis 0 of the latent
    # functions is not a batch axis).
    fns = [
        (lambda a, b: bayes.posterior(a), 0),
        (lambda a, b: bayes.evidence(a), 0),
        (lambda a, b: latent.iwae_bound(a), 1),
        (lambda a, b: latent.kl_monte_carlo(a, b), 1),
    ]
    for fn, batch_axis in fns:
        eager = fn(a, b)
        np.testing.assert_allclose(jax.jit(fn)(a, b), eager, **tol(dtype))
        batched = jax.vmap(fn, in_axes=batch_axis)(a, b)  # the batch axis comes out first
        np.testing.assert_allclose(batched, eager, **tol(dtype))


def test_dtype_promotion():
    bf = jnp.zeros((3, 2), jnp.bfloat16)
    assert bayes.posterior(bf).dtype == np.float32
    assert bayes.evidence(bf).dtype == np.float32
    assert latent.iwae_bound(bf).dtype == np.float32
    assert latent.kl_monte_carlo(bf, np.zeros((3, 2), np.float32)).dtype == np.float32
    assert latent.bits_per_dim(jnp.ones(2, jnp.bfloat16), num_dims=784).dtype == np.float32
    assert latent.bits_per_dim(np.ones(2, np.float32), num_dims=784).dtype == np.float32
    if X64:
        assert latent.iwae_bound(np.zeros((3, 2))).dtype == np.float64
        assert bayes.posterior(np.zeros(3)).dtype == np.float64


def test_errors_name_the_argument():
    f32 = np.zeros((3, 2), np.float32)
    i32 = np.zeros((3, 2), np.int32)
    with pytest.raises(TypeError, match="log_joint"):
        bayes.posterior(i32)
    with pytest.raises(TypeError, match="log_joint"):
        bayes.evidence(i32)
    with pytest.raises(ValueError, match="axis 2"):
        bayes.posterior(f32, axis=2)
    with pytest.raises(TypeError, match="log_weights"):
        latent.iwae_bound(i32)
    with pytest.raises(ValueError, match="log_weights"):
        latent.iwae_bound(np.zeros((0, 2), np.float32))
    with pytest.raises(TypeError, match="log_p"):
        latent.kl_monte_carlo(f32, i32)
    with pytest.raises(ValueError, match=r"`log_q`.*`log_p`"):
        latent.kl_monte_carlo(f32, np.zeros((4, 2), np.float32))
    with pytest.raises(TypeError, match="kl"):
        latent.elbo(f32, i32)
    with pytest.raises(ValueError, match="no samples along axis 0"):
        latent.kl_monte_carlo(np.zeros((0, 3), np.float32), 0.0)
    with pytest.raises(TypeError, match="nll_nats"):
        latent.bits_per_dim(i32, num_dims=784)
    bads = (0, -3, True, 784.5, np.int64(0), np.array([784, 0]), jnp.asarray(-1), "784", math.inf)
    for bad in (*bads, np.nan):
        with pytest.raises(ValueError, match="`num_dims` must be a positive integer"):
            latent.bits_per_dim(f32, num_dims=bad)
    # Integer-valued counts of any numeric type pass; a traced one cannot be read.
    for good in (784, 784.0, np.int64(784), np.array([784, 392]), jnp.asarray(784)):
        assert np.all(np.isfinite(latent.bits_per_dim(f32, num_dims=good)))
    assert np.isfinite(jax.jit(lambda n: latent.bits_per_dim(1.0, num_dims=n))(784))
    with pytest.raises(TypeError, match="log_weights"):
        jax.jit(latent.iwae_bound)(i32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, (0, 2)])
def test_posterior_of_an_impossible_observation_is_nan_with_zero_gradient(dtype, axis):
    # Documented: a slice that is -inf everywhere along `axis` gives NaN (the posterior is
    # undefined), and a zero gradient, so that masking it out of a loss (jnp.where after
    # the call) keeps the gradient of the other slices finite and unchanged.
    rng = np.random.default_rng(10)
    log_joint = (3 * rng.standard_normal((2, 3, 4))).astype(dtype)
    log_joint[:, 1, 2] = -np.inf  # an impossible value of y in an otherwise valid slice
    if axis == -1:
        log_joint[1, 0, :] = -np.inf
        empty = np.zeros((2, 3, 1), bool)
        empty[1, 0] = True
    else:
        log_joint[:, 2, :] = -np.inf
        empty = np.zeros((1, 3, 1), bool)
        empty[0, 2] = True
    post = np.asarray(jax.jit(lambda a: bayes.posterior(a, axis=axis))(log_joint))
    empty = np.broadcast_to(empty, log_joint.shape)
    assert np.all(np.isnan(post[empty])) and not np.any(np.isnan(post[~empty]))
    with np.errstate(invalid="ignore"):
        ref = special.log_softmax(f64(log_joint), axis=axis)
    np.testing.assert_allclose(post[~empty], ref[~empty], **tol(dtype))

    weights = rng.standard_normal(log_joint.shape).astype(dtype)

    def masked_loss(a):
        p = bayes.posterior(a, axis=axis)
        return jnp.sum(jnp.where(empty | jnp.isneginf(p), 0.0, weights * p))

    def valid_only_loss(a):  # the same loss where the empty slices are simply absent
        p = bayes.posterior(jnp.where(empty, 0.0, a), axis=axis)
        return jnp.sum(jnp.where(empty | jnp.isneginf(p), 0.0, weights * p))

    for grad in (jax.grad, jax.jacfwd):
        g = np.asarray(jax.jit(grad(masked_loss))(log_joint))
        assert np.all(np.isfinite(g))
        np.testing.assert_array_equal(g[empty], 0.0)
        g_ref = np.asarray(jax.jit(grad(valid_only_loss))(log_joint))
        np.testing.assert_allclose(g[~empty], g_ref[~empty], **tol(dtype))
    # Unmasked, the NaN slices have a zero gradient too (not NaN).
    g = jax.grad(lambda a: jnp.sum(jnp.nan_to_num(bayes.posterior(a, axis=axis), neginf=0.0)))(
        log_joint
    )
    assert np.all(np.isfinite(np.asarray(g)))

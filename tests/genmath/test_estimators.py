"""genmath.estimators: DReG and STL surrogates of the IWAE bound.

The model is linear-Gaussian, so everything has an independent reference: prior
z ~ N(0, I_2), likelihood x | z ~ N(w * z + b, I_2) with decoder parameters theta = (w, b),
and q(z | x) = N(loc, diag exp(2 log_scale)) with encoder parameters phi = (loc, log_scale).
Its ELBO and exact posterior are closed forms, and d log w / dz is a one-line formula.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from genmath import estimators, latent, normal
from tests.genmath.helpers import DTYPE, DTYPES, X64, f64, tol

X = np.array([1.5, -0.7])
THETA = {"w": np.array([1.2, -0.8]), "b": np.array([0.3, 0.1])}
# The exact posterior: precision 1 + w^2, mean w (x - b) / (1 + w^2).
POSTERIOR = {
    "loc": THETA["w"] * (X - THETA["b"]) / (1 + THETA["w"] ** 2),
    "log_scale": -0.5 * np.log1p(THETA["w"] ** 2),
}
# Near the posterior (loc 0.25 sd off, scales 20-25 % off): where a trained encoder is.
NEAR = {"loc": np.array([0.75, 0.2]), "log_scale": np.array([-0.2, -0.5])}
# Far from it (loc 0.6 sd off, scale 2.5 times too small in the first dimension).
FAR = {"loc": np.array([0.2, 0.4]), "log_scale": np.array([-0.9, 0.3])}

ENCODER = slice(4, 8)  # (loc, log_scale) in the flattened gradient (w, b, loc, log_scale)


def log_weights(theta, phi, eps, *, stop_q, stop_z=False):
    """log p(x, z_k) - log q(z_k | x) for the K draws eps (K, 2)."""
    z = phi["loc"] + jnp.exp(phi["log_scale"]) * eps
    if stop_z:
        z = jax.lax.stop_gradient(z)
    q = jax.lax.stop_gradient(phi) if stop_q else phi
    log_q = normal.log_prob(z, loc=q["loc"], log_scale=q["log_scale"])
    log_prior = normal.log_prob(z, loc=0.0, log_scale=0.0)
    log_lik = normal.log_prob(X, loc=theta["w"] * z + theta["b"], log_scale=0.0)
    return log_prior + log_lik - log_q


# Each surrogate as a function of (theta, phi, eps), differentiated with respect to both.
SURROGATES = {
    "iwae": lambda t, p, e: latent.iwae_bound(log_weights(t, p, e, stop_q=False)),
    "stl": lambda t, p, e: estimators.iwae_stl(log_weights(t, p, e, stop_q=True)),
    "dreg": lambda t, p, e: estimators.iwae_dreg(
        log_weights(t, p, e, stop_q=True), log_weights(t, p, e, stop_q=True, stop_z=True)
    ),
}


def _flat(grad_theta, grad_phi):
    return jnp.concatenate(
        [grad_theta["w"], grad_theta["b"], grad_phi["loc"], grad_phi["log_scale"]]
    )


def _split_dreg_gradient(theta, phi, eps):
    """DReG as the documented split: theta from iwae_bound, phi from iwae_dreg_encoder, both
    from one forward pass (jax.vjp) of the same log-weights."""
    log_w, pullback = jax.vjp(lambda t, p: log_weights(t, p, eps, stop_q=True), theta, phi)
    bound_cotangent = jax.grad(latent.iwae_bound)(log_w)
    encoder_cotangent = jax.grad(estimators.iwae_dreg_encoder)(log_w)
    return _flat(pullback(bound_cotangent)[0], pullback(encoder_cotangent)[1])


def _gradient_fn(name):
    if name == "dreg_split":
        return _split_dreg_gradient
    return lambda t, p, e: _flat(*jax.grad(SURROGATES[name], (0, 1))(t, p, e))


@functools.cache
def draws(name, phi_name, num_samples, num_draws, seed):
    """Gradients (num_draws, 8) of independent K-sample estimates, in float64 for the sums."""
    phi = {"near": NEAR, "far": FAR, "posterior": POSTERIOR}[phi_name]
    theta = jax.tree.map(jnp.asarray, THETA)
    phi = jax.tree.map(jnp.asarray, phi)
    eps = jax.random.normal(jax.random.key(seed), (num_draws, num_samples, 2))
    fn = jax.jit(jax.vmap(functools.partial(_gradient_fn(name), theta, phi)))
    return np.asarray(fn(eps), np.float64)


def mean_and_standard_error(samples):
    return samples.mean(0), samples.std(0, ddof=1) / np.sqrt(len(samples))


def exact_elbo_gradient(phi):
    """Gradient of the closed-form ELBO E_q[log p(x | z)] + E_q[log p(z)] + H[q] (K = 1)."""

    def elbo(theta, phi):
        var = jnp.exp(2 * phi["log_scale"])
        residual = X - theta["w"] * phi["loc"] - theta["b"]
        expected_lik = -0.5 * (np.log(2 * np.pi) + residual**2 + theta["w"] ** 2 * var)
        expected_prior = -0.5 * (np.log(2 * np.pi) + phi["loc"] ** 2 + var)
        entropy = 0.5 * np.log(2 * np.pi * np.e) + phi["log_scale"]
        return jnp.sum(expected_lik + expected_prior + entropy)

    theta = jax.tree.map(jnp.asarray, THETA)
    return np.asarray(_flat(*jax.grad(elbo, (0, 1))(theta, jax.tree.map(jnp.asarray, phi))))


# --- values and the gradients with respect to the log-weights ------------------------


def _all(log_w, axis):
    return {
        "iwae_stl": estimators.iwae_stl(log_w, axis=axis),
        "iwae_dreg_encoder": estimators.iwae_dreg_encoder(log_w, axis=axis),
        "iwae_dreg": estimators.iwae_dreg(log_w, log_w, axis=axis),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("shape", "axis", "out_shape"),
    [((5,), 0, ()), ((7, 3), 0, (3,)), ((2, 6, 4), 1, (2, 4)), ((3, 2, 4), (0, 1), (4,))],
)
def test_value_is_the_iwae_bound_through_jit(rng, dtype, shape, axis, out_shape):
    log_w = (rng.normal(size=shape) * 30 - 200).astype(dtype)  # MNIST-like magnitudes
    values = jax.jit(_all, static_argnums=1)(log_w, axis)
    expected = special.logsumexp(f64(log_w), axis=axis) - np.log(
        np.prod([shape[a] for a in np.atleast_1d(axis)])
    )
    bound = latent.iwae_bound(log_w, axis=axis)
    for name, value in values.items():
        chex.assert_shape(value, out_shape)
        assert value.dtype == dtype, name
        np.testing.assert_allclose(value, expected, **tol(dtype))
        # The surrogate adds exact zeros to the bound: equal up to fusion order in jit.
        np.testing.assert_allclose(value, bound, rtol=4 * np.finfo(dtype).eps, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_with_respect_to_the_log_weights(rng, dtype):
    # d/d log w_k: STL w~_k, DReG encoder w~_k^2, and DReG's split (w~^2, w~ - w~^2).
    log_w = (rng.normal(size=(6, 3)) * 3).astype(dtype)
    normalised = np.exp(special.log_softmax(f64(log_w), axis=0))
    tolerance = {"rtol": 1e-5 if dtype == np.float32 else 1e-12, "atol": 1e-7}
    stl = jax.grad(lambda a: estimators.iwae_stl(a).sum())(log_w)
    encoder = jax.grad(lambda a: estimators.iwae_dreg_encoder(a).sum())(log_w)
    both = jax.grad(lambda a, b: estimators.iwae_dreg(a, b).sum(), (0, 1))(log_w, log_w)
    np.testing.assert_allclose(stl, normalised, **tolerance)
    np.testing.assert_allclose(encoder, normalised**2, **tolerance)
    np.testing.assert_allclose(both[0], normalised**2, **tolerance)
    np.testing.assert_allclose(both[1], normalised - normalised**2, **tolerance)
    # The decoder, which reaches both arrays, gets w~: the IWAE gradient.
    iwae = jax.grad(lambda a: latent.iwae_bound(a).sum())(log_w)
    np.testing.assert_allclose(both[0] + both[1], iwae, **tolerance)


def test_zero_weights():
    # A zero weight (log w = -inf) gets coefficient 0 and a finite gradient; an example whose
    # weights are all 0 has the bound -inf with a zero gradient, as iwae_bound.
    log_w = jnp.array([[-jnp.inf, -jnp.inf], [0.0, -jnp.inf], [np.log(3.0), -jnp.inf]])
    for fn in (estimators.iwae_stl, estimators.iwae_dreg_encoder):
        value = fn(log_w)
        np.testing.assert_allclose(value, [np.log(4.0 / 3.0), -np.inf], rtol=1e-6)
        grad = jax.grad(lambda a, fn=fn: fn(a)[0])(log_w)
        power = 1 if fn is estimators.iwae_stl else 2
        np.testing.assert_allclose(grad[:, 0], [0.0, 0.25**power, 0.75**power], rtol=1e-6)
        np.testing.assert_array_equal(jax.grad(lambda a, fn=fn: fn(a)[1])(log_w), 0.0)
    grads = jax.grad(lambda a, b: estimators.iwae_dreg(a, b).sum(), (0, 1))(log_w, log_w)
    for grad in grads:
        assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grads[0][:, 0] + grads[1][:, 0], [0.0, 0.25, 0.75], rtol=1e-6)


# --- the estimators on the linear-Gaussian model, draw by draw ------------------------


def analytic_encoder_gradients(phi, eps):
    """float64 reference: per draw, (IWAE, STL, DReG) gradients for (loc, log_scale)."""
    loc, log_scale = f64(phi["loc"]), f64(phi["log_scale"])
    scale = np.exp(log_scale)
    w, b = THETA["w"], THETA["b"]
    z = loc + scale * eps  # (K, 2)
    log_q = -0.5 * np.log(2 * np.pi) - log_scale - 0.5 * eps**2
    log_p = -np.log(2 * np.pi) - 0.5 * z**2 - 0.5 * (X - w * z - b) ** 2
    normalised = np.exp(special.log_softmax(np.sum(log_p - log_q, -1)))[:, None]
    # d log w / dz with q's parameters held fixed, and dz/d(loc, log_scale) = (1, scale eps).
    dlogw_dz = -z + w * (X - w * z - b) + (z - loc) / scale**2
    path = np.concatenate([dlogw_dz, dlogw_dz * scale * eps], -1)
    # The score term -d log q(z; phi)/d phi at fixed z: -(z - loc)/scale^2, 1 - (z - loc)^2/scale^2.
    score = np.concatenate([-(z - loc) / scale**2, 1 - (z - loc) ** 2 / scale**2], -1)
    return (
        np.sum(normalised * (path + score), 0),
        np.sum(normalised * path, 0),
        np.sum(normalised**2 * path, 0),
    )


@pytest.mark.parametrize("num_samples", [1, 4])
def test_each_draw_is_the_analytic_estimator(num_samples):
    eps = np.asarray(jax.random.normal(jax.random.key(3), (5, num_samples, 2)), np.float64)
    grads = {name: draws(name, "far", num_samples, 5, 3) for name in (*SURROGATES, "dreg_split")}
    for i in range(5):
        iwae, stl, dreg = analytic_encoder_gradients(FAR, eps[i])
        # Single draws: a few ulps of each term (the terms reach about 10).
        _assert_ulps_close(grads["iwae"][i, ENCODER], iwae)
        _assert_ulps_close(grads["stl"][i, ENCODER], stl)
        _assert_ulps_close(grads["dreg"][i, ENCODER], dreg)
        _assert_ulps_close(grads["dreg_split"][i], grads["dreg"][i])
        # The decoder gradient is IWAE's in all of them, draw by draw.
        for name in ("stl", "dreg", "dreg_split"):
            _assert_ulps_close(grads[name][i, :4], grads["iwae"][i, :4])


def _assert_ulps_close(actual, expected):
    """Within 32 ulps of 1 + |expected| of the test dtype, element by element."""
    actual, expected = f64(actual), f64(expected)
    bound = 32 * float(np.finfo(DTYPE).eps) * (1.0 + np.abs(expected))
    assert np.all(np.abs(actual - expected) <= bound), np.max(np.abs(actual - expected) / bound)


def test_the_encoder_gradient_vanishes_at_the_exact_posterior():
    # There log w = log p(x) for every z: STL and DReG give exactly 0 for phi in every draw
    # (zero variance), the plain IWAE gradient does not.
    for num_samples in (1, 8):
        for name in ("stl", "dreg", "dreg_split"):
            grads = draws(name, "posterior", num_samples, 200, 4)[:, ENCODER]
            np.testing.assert_allclose(grads, 0.0, atol=1e-5)
        assert np.std(draws("iwae", "posterior", num_samples, 200, 4)[:, ENCODER], 0).min() > 0.1


# --- unbiasedness and variance, by Monte Carlo ---------------------------------------

# Per component, a difference of means is within Z_MAX combined standard errors (8
# components, 3-4 estimators: a false alarm at 5 sd has probability below 1e-4).
Z_MAX = 5.0
NUM_DRAWS = 25_000
NUM_REFERENCE = 100_000


@pytest.mark.parametrize("phi_name", ["near", "far"])
@pytest.mark.parametrize("name", ["iwae", "stl", "dreg", "dreg_split"])
def test_unbiased_for_the_elbo_at_k1(phi_name, name):
    # K = 1: the exact ELBO gradient is a closed form; every estimator is unbiased.
    phi = {"near": NEAR, "far": FAR}[phi_name]
    mean, se = mean_and_standard_error(draws(name, phi_name, 1, NUM_DRAWS, 10))
    z_scores = (mean - exact_elbo_gradient(phi)) / se
    assert np.max(np.abs(z_scores)) < Z_MAX, z_scores


@pytest.mark.parametrize("phi_name", ["near", "far"])
def test_dreg_is_unbiased_and_stl_biased_at_k8(phi_name):
    reference, reference_se = mean_and_standard_error(draws("iwae", phi_name, 8, NUM_REFERENCE, 11))
    for name in ("dreg", "dreg_split"):
        mean, se = mean_and_standard_error(draws(name, phi_name, 8, NUM_DRAWS, 12))
        z_scores = (mean - reference) / np.hypot(se, reference_se)
        assert np.max(np.abs(z_scores)) < Z_MAX, (name, z_scores)
    # STL is biased for K > 1 (Tucker et al. 2018): its encoder mean is off by far more than
    # the sampling error (about 100-400 standard errors here; 20 asserted), which also shows
    # that this test could see a bias. Its decoder gradient is IWAE's, unbiased.
    mean, se = mean_and_standard_error(draws("stl", phi_name, 8, NUM_DRAWS, 12))
    z_scores = (mean - reference) / np.hypot(se, reference_se)
    assert np.max(np.abs(z_scores[ENCODER])) > 20, z_scores
    assert np.max(np.abs(z_scores[:4])) < Z_MAX, z_scores


@pytest.mark.parametrize("num_samples", [1, 8])
def test_lower_encoder_variance_near_the_posterior(num_samples):
    # Variances of the encoder components relative to the plain IWAE gradient's, from 25 000
    # draws each (relative standard error of a variance ~ 1-3 %). Measured: STL 0.15-0.46
    # (K = 1) and 0.14-0.62 (K = 8); DReG = STL at K = 1, 0.006-0.20 at K = 8.
    iwae = draws("iwae", "near", num_samples, NUM_DRAWS, 13)[:, ENCODER].var(0)
    stl = draws("stl", "near", num_samples, NUM_DRAWS, 14)[:, ENCODER].var(0)
    dreg = draws("dreg", "near", num_samples, NUM_DRAWS, 14)[:, ENCODER].var(0)
    assert np.all(stl / iwae < 0.75), stl / iwae
    assert np.all(dreg / iwae < 0.75), dreg / iwae
    if num_samples > 1:
        # The squared weights cut the variance further than STL's weights.
        assert np.all(dreg / stl < 0.5), dreg / stl
    # The decoder gradient is the same estimator in all three.
    decoder = [draws(n, "near", num_samples, NUM_DRAWS, 14)[:, :4] for n in ("stl", "dreg")]
    np.testing.assert_allclose(decoder[0], decoder[1], rtol=1e-5, atol=1e-6)


def test_far_from_the_posterior_the_path_term_can_be_noisier():
    # Not a guarantee: in dimension 0, whose scale is 2.5 times too small, the loc and
    # log-scale gradients of STL / DReG (K = 1) have more variance than IWAE's (measured
    # ratios ~2.2 and ~1.8); in dimension 1 less (~0.44 for both). The module docstring says so.
    iwae = draws("iwae", "far", 1, NUM_DRAWS, 15)[:, ENCODER].var(0)
    stl = draws("stl", "far", 1, NUM_DRAWS, 16)[:, ENCODER].var(0)
    ratio = stl / iwae  # (loc 0, loc 1, log_scale 0, log_scale 1)
    assert ratio[0] > 1.5 and ratio[2] > 1.3, ratio
    assert ratio[1] < 0.75 and ratio[3] < 0.75, ratio


# --- dtypes and errors ----------------------------------------------------------------


def test_dtype_promotion():
    bf = jnp.zeros((3, 2), jnp.bfloat16)
    assert estimators.iwae_stl(bf).dtype == np.float32
    assert estimators.iwae_dreg_encoder(bf).dtype == np.float32
    assert estimators.iwae_dreg(bf, bf).dtype == np.float32
    if X64:
        assert estimators.iwae_dreg(np.zeros((3, 2)), np.zeros((3, 2))).dtype == np.float64


@pytest.mark.skipif(not X64, reason="float64 needs JAX_ENABLE_X64=1")
def test_float64_gradients_match_the_analytic_estimators():
    eps = np.random.default_rng(5).normal(size=(6, 2))
    theta = jax.tree.map(jnp.asarray, THETA)
    phi = jax.tree.map(jnp.asarray, FAR)
    iwae, stl, dreg = analytic_encoder_gradients(FAR, eps)
    for name, expected in (("iwae", iwae), ("stl", stl), ("dreg", dreg)):
        grad = jax.jit(_gradient_fn(name))(theta, phi, jnp.asarray(eps))
        assert grad.dtype == np.float64
        np.testing.assert_allclose(grad[ENCODER], expected, rtol=1e-12, atol=1e-12)


def test_errors_name_the_argument():
    f32 = np.zeros((3, 2), np.float32)
    for fn in (estimators.iwae_stl, estimators.iwae_dreg_encoder):
        with pytest.raises(TypeError, match="log_weights"):
            fn(np.zeros((3, 2), np.int32))
        with pytest.raises(ValueError, match="axis 2"):
            fn(f32, axis=2)
        with pytest.raises(ValueError, match="no samples"):
            fn(np.zeros((0, 2), np.float32))
    with pytest.raises(TypeError, match="decoder_log_weights"):
        estimators.iwae_dreg(f32, np.zeros((3, 2), np.int32))
    with pytest.raises(ValueError, match="decoder_log_weights"):
        estimators.iwae_dreg(f32, np.zeros((3, 1), np.float32))
    with pytest.raises(ValueError, match="iwae_dreg: axis -3"):
        jax.jit(lambda a: estimators.iwae_dreg(a, a, axis=-3))(f32)

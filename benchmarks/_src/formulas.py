"""Hand-written jnp formulas: the textbook expression a user would type.

These are the baseline every genmath kernel is held to (within 1.10x). They take
exactly the inputs the genmath call takes, with no argument checks.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


def bernoulli_log_prob(x, logits):
    return jnp.sum(x * logits - jnp.logaddexp(0.0, logits), axis=-1)


def normal_log_prob(x, loc, log_scale):
    z = (x - loc) / jnp.exp(log_scale)
    return jnp.sum(-0.5 * z * z - log_scale - HALF_LOG_TWO_PI, axis=-1)


def normal_kl_standard(loc, log_scale):
    return 0.5 * jnp.sum(jnp.exp(2.0 * log_scale) + loc * loc - 1.0 - 2.0 * log_scale, axis=-1)


def normal_kl(loc_p, log_scale_p, loc_q, log_scale_q):
    var_p = jnp.exp(2.0 * log_scale_p)
    var_q = jnp.exp(2.0 * log_scale_q)
    terms = log_scale_q - log_scale_p + (var_p + (loc_p - loc_q) ** 2) / (2.0 * var_q) - 0.5
    return jnp.sum(terms, axis=-1)


def _solve_points(scale_tril, diff):
    """Solves L z = diff where diff is (*sample, *batch, D) and L is (*batch, D, D).

    The sample axes are folded into the right-hand-side columns, so one batched
    triangular solve handles every point of every distribution.
    """
    batch_ndim = scale_tril.ndim - 2
    sample_shape = diff.shape[: diff.ndim - 1 - batch_ndim]
    columns = diff.reshape((-1, *diff.shape[len(sample_shape) :]))  # (N, *batch, D)
    columns = jnp.moveaxis(columns, 0, -1)  # (*batch, D, N)
    z = solve_triangular(scale_tril, columns, lower=True)
    return z, sample_shape


def mvn_log_prob(x, loc, scale_tril):
    z, sample_shape = _solve_points(scale_tril, x - loc)
    mahalanobis = jnp.moveaxis(jnp.sum(z * z, axis=-2), -1, 0)  # (N, *batch)
    mahalanobis = mahalanobis.reshape(sample_shape + mahalanobis.shape[1:])
    dim = x.shape[-1]
    half_log_det = jnp.sum(jnp.log(jnp.diagonal(scale_tril, axis1=-2, axis2=-1)), axis=-1)
    return -0.5 * mahalanobis - half_log_det - dim * HALF_LOG_TWO_PI


def mvn_kl(loc_p, scale_tril_p, loc_q, scale_tril_q):
    dim = loc_p.shape[-1]
    m = solve_triangular(scale_tril_q, scale_tril_p, lower=True)
    z = solve_triangular(scale_tril_q, (loc_p - loc_q)[..., None], lower=True)[..., 0]
    log_det_p = jnp.sum(jnp.log(jnp.diagonal(scale_tril_p, axis1=-2, axis2=-1)), axis=-1)
    log_det_q = jnp.sum(jnp.log(jnp.diagonal(scale_tril_q, axis1=-2, axis2=-1)), axis=-1)
    trace = jnp.sum(m * m, axis=(-2, -1))
    return 0.5 * (trace + jnp.sum(z * z, axis=-1) - dim) + log_det_q - log_det_p


def categorical_entropy(logits):
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


def categorical_kl(logits_p, logits_q):
    log_p = jax.nn.log_softmax(logits_p, axis=-1)
    log_q = jax.nn.log_softmax(logits_q, axis=-1)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


def vae_loss(x, logits, loc, log_scale):
    return normal_kl_standard(loc, log_scale) - bernoulli_log_prob(x, logits)


# ---------------------------------------------------------------- 8-bit pixel likelihoods

PIXEL_MAX = 255.0
_LOG_BIN_WIDTH = -math.log(PIXEL_MAX)


def _pixel_bins(x, loc, log_scale):
    """Standardised bin edges of pixel ``x`` (0..255) on the [0, 1] scale, and 1/scale."""
    inv_scale = jnp.exp(-log_scale)
    centred = x / PIXEL_MAX - loc
    lower = inv_scale * (centred - 0.5 / PIXEL_MAX)
    upper = inv_scale * (centred + 0.5 / PIXEL_MAX)
    return centred, lower, upper, inv_scale


def _logistic_bin_log_prob(x, loc, log_scale):
    """PixelCNN++ (Salimans et al. 2017): CDF difference, edge bins to +-inf, and the
    density at the centre times the width where the difference is below 1e-5."""
    centred, lower, upper, inv_scale = _pixel_bins(x, loc, log_scale)
    cdf_delta = jax.nn.sigmoid(upper) - jax.nn.sigmoid(lower)
    log_cdf_upper = upper - jax.nn.softplus(upper)  # log sigmoid(upper), for x = 0
    log_sf_lower = -jax.nn.softplus(lower)  # log(1 - sigmoid(lower)), for x = 255
    mid = inv_scale * centred
    log_pdf_mid = mid - log_scale - 2.0 * jax.nn.softplus(mid)
    interior = jnp.where(
        cdf_delta > 1e-5,
        jnp.log(jnp.maximum(cdf_delta, 1e-12)),
        log_pdf_mid + _LOG_BIN_WIDTH,
    )
    return jnp.where(x < 0.5, log_cdf_upper, jnp.where(x > PIXEL_MAX - 0.5, log_sf_lower, interior))


def discretized_logistic_log_prob(x, loc, log_scale):
    return jnp.sum(_logistic_bin_log_prob(x, loc, log_scale), axis=-1)


def discretized_logistic_mixture_log_prob(x, logits, loc, log_scale):
    per_component = _logistic_bin_log_prob(x[..., None], loc, log_scale)
    mixed = jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1) + per_component, axis=-1)
    return jnp.sum(mixed, axis=-1)


def discretized_normal_log_prob(x, loc, log_scale):
    # As in Ho et al. (2020)'s discretised Gaussian decoder, with the exact CDF.
    _, lower, upper, _ = _pixel_bins(x, loc, log_scale)
    cdf_upper = jax.scipy.special.ndtr(upper)
    cdf_lower = jax.scipy.special.ndtr(lower)
    log_cdf_upper = jnp.log(jnp.maximum(cdf_upper, 1e-12))
    log_sf_lower = jnp.log(jnp.maximum(1.0 - cdf_lower, 1e-12))
    interior = jnp.log(jnp.maximum(cdf_upper - cdf_lower, 1e-12))
    out = jnp.where(x < 0.5, log_cdf_upper, jnp.where(x > PIXEL_MAX - 0.5, log_sf_lower, interior))
    return jnp.sum(out, axis=-1)


def categorical_log_prob_pixels(labels, logits):
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return jnp.sum(jnp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0], axis=-1)


# ---------------------------------------------------------------- cross-entropies


def normal_cross_entropy(loc_p, log_scale_p, loc_q, log_scale_q):
    var_p = jnp.exp(2.0 * log_scale_p)
    var_q = jnp.exp(2.0 * log_scale_q)
    terms = HALF_LOG_TWO_PI + log_scale_q + (var_p + (loc_p - loc_q) ** 2) / (2.0 * var_q)
    return jnp.sum(terms, axis=-1)


def mvn_cross_entropy(loc_p, scale_tril_p, loc_q, scale_tril_q):
    dim = loc_p.shape[-1]
    m = solve_triangular(scale_tril_q, scale_tril_p, lower=True)
    z = solve_triangular(scale_tril_q, (loc_p - loc_q)[..., None], lower=True)[..., 0]
    log_det_q = jnp.sum(jnp.log(jnp.diagonal(scale_tril_q, axis1=-2, axis2=-1)), axis=-1)
    trace = jnp.sum(m * m, axis=(-2, -1))
    return dim * HALF_LOG_TWO_PI + log_det_q + 0.5 * (trace + jnp.sum(z * z, axis=-1))


# ---------------------------------------------------------------- continuous Bernoulli
# Loaiza-Ganem and Cunningham (2019): p(x) = C(eta) lambda^x (1 - lambda)^(1 - x) with
# lambda = sigmoid(eta), C(eta) = eta / tanh(eta / 2); log p(x) = eta x - A(eta) with
# A(eta) = log((e^eta - 1) / eta), mean A'(eta) = 1 / (1 - e^-eta) - 1 / eta.


def _cb_log_partition(logits):
    return jnp.log(jnp.expm1(logits) / logits)


def _cb_mean(logits):
    return 1.0 / -jnp.expm1(-logits) - 1.0 / logits


def continuous_bernoulli_log_prob(x, logits):
    log_norm = jnp.log(logits / jnp.tanh(0.5 * logits))
    terms = x * logits - jnp.logaddexp(0.0, logits) + log_norm
    return jnp.sum(terms, axis=-1)


def continuous_bernoulli_entropy(logits):
    return jnp.sum(_cb_log_partition(logits) - logits * _cb_mean(logits), axis=-1)


def continuous_bernoulli_kl(logits_p, logits_q):
    terms = (
        _cb_log_partition(logits_q)
        - _cb_log_partition(logits_p)
        - (logits_q - logits_p) * _cb_mean(logits_p)
    )
    return jnp.sum(terms, axis=-1)


# ---------------------------------------------------------------- mixtures


def mixture_log_prob(component_log_probs, logits):
    return jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1) + component_log_probs, axis=-1)


# ---------------------------------------------------------------- IWAE gradient surrogates
# Tucker et al. (2019): the value is the IWAE bound; the gradient weights each log w_k by
# the normalised weight (STL: the bound's own gradient, the stop_gradient being inside
# log q, in the caller) or by its square (DReG, encoder path).


def iwae_stl(log_weights):
    return jax.nn.logsumexp(log_weights, axis=0) - math.log(log_weights.shape[0])


def _stopped_bound_and_weights(log_weights):
    log_weights = jax.lax.stop_gradient(log_weights)
    bound = jax.nn.logsumexp(log_weights, axis=0) - math.log(log_weights.shape[0])
    return bound, jax.nn.softmax(log_weights, axis=0)


def iwae_dreg_encoder(log_weights):
    bound, w = _stopped_bound_and_weights(log_weights)
    return bound + jnp.sum(w * w * (log_weights - jax.lax.stop_gradient(log_weights)), axis=0)


def iwae_dreg(log_weights, decoder_log_weights):
    bound, w = _stopped_bound_and_weights(log_weights)
    encoder = w * w * (log_weights - jax.lax.stop_gradient(log_weights))
    decoder = (w - w * w) * (decoder_log_weights - jax.lax.stop_gradient(decoder_log_weights))
    return bound + jnp.sum(encoder + decoder, axis=0)


# ---------------------------------------------------------------- relaxed (Concrete)
# Maddison, Mnih and Teh (2017): the binary Concrete density (eq. 4, n = 2) and the
# Concrete density (Definition 1), in log space as the paper's appendix advises.


def relaxed_bernoulli_log_prob(y, logits, temperature):
    log_y, log_not_y = jnp.log(y), jnp.log1p(-y)
    terms = (
        jnp.log(temperature)
        + logits
        - (temperature + 1.0) * (log_y + log_not_y)
        - 2.0 * jnp.logaddexp(logits - temperature * log_y, -temperature * log_not_y)
    )
    return jnp.sum(terms, axis=-1)


def relaxed_categorical_log_prob(y, logits, temperature):
    k = y.shape[-1]
    log_y = jnp.log(y)
    per_latent = (
        math.lgamma(k)
        + (k - 1) * jnp.log(temperature)
        + jnp.sum(logits - (temperature + 1.0) * log_y, axis=-1)
        - k * jax.nn.logsumexp(logits - temperature * log_y, axis=-1)
    )
    return jnp.sum(per_latent, axis=-1)

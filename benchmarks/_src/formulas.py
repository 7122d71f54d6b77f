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

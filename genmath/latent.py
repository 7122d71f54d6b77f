"""Bounds and estimates for latent-variable models: ELBO, IWAE, Monte-Carlo KL, bits/dim.

These functions take per-sample log-densities that the caller has already computed (for
instance with :mod:`genmath.normal` and :mod:`genmath.bernoulli`) and combine them; the
Monte-Carlo sample axis is ``axis`` (default 0, the leading axis that a ``sample`` call
with ``sample_shape=K`` prepends).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from genmath import bayes
from genmath._src import validation
from genmath._src.typing import Array, ArrayLike, Axis

__all__ = ["bits_per_dim", "elbo", "iwae_bound", "kl_monte_carlo"]

_LN_TWO = math.log(2.0)


def iwae_bound(log_weights: ArrayLike, *, axis: Axis = 0) -> Array:
    """Importance-weighted bound :math:`\\mathcal L_K` on :math:`\\log p(x)`.

    .. math::

        \\mathcal L_K = \\log \\frac1K \\sum_{k=1}^K w_k
        = \\operatorname{logsumexp}_k(\\log w_k) - \\log K,
        \\qquad \\log w_k = \\log p(x, z_k) - \\log q(z_k \\mid x),\\ z_k \\sim q

    With :math:`K = 1` it is the ELBO estimate :math:`\\log w_1`. Its expectation never
    decreases with :math:`K` and tends to :math:`\\log p(x)`. By Jensen's inequality it is
    at least the mean of the log-weights for every draw. If every weight is 0 (all
    log-weights :math:`-\\infty`) it is :math:`-\\infty`, with a zero gradient.

    Args:
        log_weights: :math:`\\log w_k`, floating, with the :math:`K` samples along
            ``axis``.
        axis: the sample axis, or a tuple of axes (:math:`K` is then the product of their
            sizes); it is reduced.

    Returns:
        :math:`\\mathcal L_K` with ``axis`` removed, in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import latent
        >>> log_w = jnp.log(jnp.array([[0.1], [0.3]]))  # K = 2 samples, batch of 1
        >>> print(round(float(latent.iwae_bound(log_w)[0]), 4))  # log 0.2
        -1.6094

    References:
        Y. Burda, R. Grosse and R. Salakhutdinov, "Importance Weighted Autoencoders",
        ICLR 2016, eq. (8) and Theorem 1.
    """
    name = "latent.iwae_bound"
    (log_weights,) = validation.promote(name, {"log_weights": log_weights})
    axes = validation.check_axis(name, axis, log_weights.ndim)
    num_samples = math.prod(log_weights.shape[a] for a in axes)
    if num_samples == 0:
        raise ValueError(f"{name}: `log_weights` has no samples along axis {axis}.")
    return bayes.evidence(log_weights, axis=axes) - math.log(num_samples)


def kl_monte_carlo(log_q: ArrayLike, log_p: ArrayLike, *, axis: Axis = 0) -> Array:
    """Monte-Carlo estimate of :math:`\\mathrm{KL}(q \\,\\|\\, p)` from samples of :math:`q`.

    .. math::

        \\widehat{\\mathrm{KL}}(q \\,\\|\\, p) = \\frac1K \\sum_{k=1}^K
        \\big[\\log q(z_k) - \\log p(z_k)\\big], \\qquad z_k \\sim q

    Unbiased when the :math:`z_k` are drawn from :math:`q`; use it when the KL has no
    closed form (and the closed forms of :mod:`genmath.normal`, :mod:`genmath.bernoulli`
    or :mod:`genmath.categorical` when it has one: they have no variance). Single
    estimates may be negative.

    Args:
        log_q: :math:`\\log q(z_k)`, floating, samples along ``axis``.
        log_p: :math:`\\log p(z_k)` at the same samples, floating, broadcastable with
            ``log_q``.
        axis: the sample axis (or tuple of axes) of the broadcast shape; it is averaged.

    Returns:
        The estimate with ``axis`` removed, in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import latent
        >>> print(round(float(latent.kl_monte_carlo(jnp.array([-1.0, -2.0]),
        ...                                         jnp.array([-1.5, -3.5]))), 4))
        1.0

    References:
        D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014, §2.3.
    """
    name = "latent.kl_monte_carlo"
    log_q, log_p = validation.promote(name, {"log_q": log_q, "log_p": log_p})
    difference = log_q - log_p
    axes = validation.check_axis(name, axis, difference.ndim)
    if math.prod(difference.shape[a] for a in axes) == 0:
        raise ValueError(f"{name}: `log_q` and `log_p` have no samples along axis {axis}.")
    return jnp.mean(difference, axis=axes)


def elbo(log_likelihood: ArrayLike, kl: ArrayLike) -> Array:
    """Evidence lower bound :math:`\\mathbb E_q[\\log p(x \\mid z)] - \\mathrm{KL}(q \\,\\|\\, p)`.

    .. math::

        \\mathrm{ELBO}(x) = \\mathbb E_{q(z \\mid x)}[\\log p(x \\mid z)]
        - \\mathrm{KL}(q(z \\mid x) \\,\\|\\, p(z)) \\le \\log p(x)

    Args:
        log_likelihood: the (estimated) expected reconstruction log-likelihood, floating.
        kl: the KL divergence of the approximate posterior from the prior, floating,
            broadcastable with ``log_likelihood``.

    Returns:
        The ELBO with the broadcast shape, in the compute dtype.

    Example:
        >>> from genmath import latent
        >>> print(round(float(latent.elbo(-90.0, 25.0)), 4))
        -115.0

    References:
        D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014, eq. (3).
    """
    log_likelihood, kl = validation.promote(
        "latent.elbo", {"log_likelihood": log_likelihood, "kl": kl}
    )
    return log_likelihood - kl


def bits_per_dim(nll_nats: ArrayLike, *, num_dims: int | ArrayLike) -> Array:
    """Converts a negative log-likelihood in nats to bits per dimension.

    The argument is the *negative* log-likelihood (a loss), as a training loop has it;
    :func:`genmath.dequantize.bits_per_dim_8bit` takes the log-probability of 8-bit data
    instead.

    .. math::

        \\mathrm{bpd} = \\frac{\\mathrm{NLL}}{D \\ln 2}

    Args:
        nll_nats: negative log-likelihood of whole examples in nats, floating.
        num_dims: the number of dimensions :math:`D` of one example (784 for MNIST), a
            positive integer or an array broadcastable with ``nll_nats``.

    Returns:
        Bits per dimension, the broadcast shape of ``nll_nats`` and ``num_dims``, in the
        compute dtype.

    Example:
        >>> import math
        >>> from genmath import latent
        >>> print(round(float(latent.bits_per_dim(784 * math.log(2.0), num_dims=784)), 4))
        1.0

    References:
        A. van den Oord, N. Kalchbrenner and K. Kavukcuoglu, "Pixel Recurrent Neural
        Networks", ICML 2016, §5.1.
    """
    name = "latent.bits_per_dim"
    validation.check_count(name, "num_dims", num_dims)
    # promote returns the data (num_dims) first, then the parameters.
    num_dims, nll_nats = validation.promote(name, {"nll_nats": nll_nats}, {"num_dims": num_dims})
    return nll_nats / (num_dims * _LN_TWO)

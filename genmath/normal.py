"""Diagonal (and isotropic) Gaussian: log-likelihood, entropy, KL divergence, sampling.

The distribution is :math:`\\mathcal N(\\mu, \\operatorname{diag}\\sigma^2)` over the
event axes, parameterised by its mean ``loc`` and its log standard deviation
``log_scale`` (:math:`\\log\\sigma`). A scalar ``log_scale`` gives the isotropic case
:math:`\\mathcal N(\\mu, \\sigma^2 I)`. Every function sums only over the event ``axis``
(an int or a tuple, default ``-1``); all other axes are batch axes and broadcast
between the arguments.

Everything is computed from ``log_scale``, never from :math:`\\sigma` itself, so values
and gradients stay finite for log-scales anywhere in :math:`[-30, 30]` (as long as the
result itself is representable in the compute dtype).

With a fixed :math:`\\sigma`, the Gaussian log-likelihood is an affine function of the
mean squared error: :math:`\\log p(x) = -\\tfrac D2 \\log 2\\pi - D\\log\\sigma -
\\tfrac{D}{2\\sigma^2}\\,\\mathrm{MSE}(x, \\mu)`. :func:`log_prob_terms` returns the three
pieces separately.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from genmath._src import validation
from genmath._src.typing import Array, ArrayLike, Axis, Key, SampleShape

_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)
_HALF_LOG_TWO_PI_E = 0.5 * (1.0 + math.log(2.0 * math.pi))

__all__ = [
    "LogProbTerms",
    "cross_entropy",
    "entropy",
    "kl",
    "kl_standard",
    "log_prob",
    "log_prob_terms",
    "sample",
]


class LogProbTerms(NamedTuple):
    """The three terms of the diagonal Gaussian log-likelihood, each with the batch shape.

    Attributes:
        constant: :math:`-\\tfrac D2 \\log 2\\pi`, with :math:`D` the number of
            (unmasked) event elements.
        log_scale_term: :math:`-\\sum_i \\log\\sigma_i` (that is :math:`-D\\log\\sigma`
            for an isotropic scale).
        squared_error: :math:`-\\tfrac12 \\sum_i ((x_i-\\mu_i)/\\sigma_i)^2`.
    """

    constant: Array
    log_scale_term: Array
    squared_error: Array


def _event_sum(caller: str, terms: Array, axis: Axis) -> Array:
    axes = validation.check_axis(caller, axis, terms.ndim)
    return jnp.sum(terms, axis=axes)


def _prepare_log_prob(name, x, loc, log_scale, axis, where):
    """Checks and broadcasts the inputs of the log-likelihood.

    Returns ``(diff, log_scale, axes, constant)``: ``x - loc`` and ``log_scale`` with the
    full elementwise shape (zero where masked out), the normalised event axes, and the
    constant term :math:`-\\tfrac D2\\log 2\\pi` with the batch shape.
    """
    x, loc, log_scale = validation.promote(name, {"loc": loc, "log_scale": log_scale}, {"x": x})
    shape = jnp.broadcast_shapes(x.shape, loc.shape, log_scale.shape)
    mask = validation.check_mask(name, where, shape)
    if mask is not None:
        shape = jnp.broadcast_shapes(shape, mask.shape)
    axes = validation.check_axis(name, axis, len(shape))
    diff = jnp.broadcast_to(x - loc, shape)
    log_scale = jnp.broadcast_to(log_scale, shape)
    if mask is None:
        count = math.prod(shape[a] for a in axes)
        batch_shape = tuple(n for i, n in enumerate(shape) if i not in axes)
        constant = jnp.full(batch_shape, -_HALF_LOG_TWO_PI * count, x.dtype)
    else:
        mask = jnp.broadcast_to(mask, shape)
        # Replace masked-out inputs before any arithmetic (not after) so that NaN or inf
        # there cannot leak into the value or, through the chain rule, into gradients;
        # the zeros then contribute exactly nothing to every term.
        diff = jnp.where(mask, diff, 0.0)
        log_scale = jnp.where(mask, log_scale, 0.0)
        constant = -_HALF_LOG_TWO_PI * jnp.sum(mask, axis=axes, dtype=x.dtype)
    return diff, log_scale, axes, constant


def log_prob_terms(
    x: ArrayLike,
    *,
    loc: ArrayLike,
    log_scale: ArrayLike,
    axis: Axis = -1,
    where: ArrayLike | None = None,
) -> LogProbTerms:
    """The constant, log-scale and squared-error terms of the Gaussian log-likelihood.

    .. math::

        \\log \\mathcal N(x; \\mu, \\sigma^2) =
        \\underbrace{-\\tfrac D2 \\log 2\\pi}_{\\texttt{constant}}
        \\underbrace{- \\sum_i \\log\\sigma_i}_{\\texttt{log\\_scale\\_term}}
        \\underbrace{- \\tfrac12 \\sum_i \\Big(\\frac{x_i-\\mu_i}{\\sigma_i}\\Big)^2}
        _{\\texttt{squared\\_error}}

    The sums run over the event ``axis`` of the broadcast shape of ``x``, ``loc``,
    ``log_scale`` (and ``where``): ``log_scale`` is broadcast *before* reducing, so a
    scalar (isotropic) ``log_scale`` contributes :math:`-D\\log\\sigma`. With a fixed
    :math:`\\sigma` only ``squared_error`` depends on :math:`\\mu`, and it equals
    :math:`-\\tfrac{D}{2\\sigma^2}\\mathrm{MSE}`: maximising the likelihood is minimising
    the mean squared error. The three terms add up to :func:`log_prob` (up to rounding:
    :func:`log_prob` sums the elementwise log-density in one pass, for speed).

    Args:
        x: observations, any numeric dtype, broadcastable with ``loc`` and ``log_scale``.
        loc: mean :math:`\\mu`, floating.
        log_scale: log standard deviation :math:`\\log\\sigma`, floating.
        axis: event axis or axes of the broadcast shape to sum over.
        where: optional boolean mask broadcastable with the elementwise shape; masked-out
            elements contribute nothing, and :math:`D` counts only the unmasked ones.
            Masked-out inputs may be NaN or infinite: neither values nor gradients see them.

    Returns:
        A :class:`LogProbTerms` of three arrays with the batch shape (the broadcast
        shape without the event axes), in the compute dtype (float32 for half precision).

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import normal
        >>> t = normal.log_prob_terms(jnp.array([1.0, -1.0]), loc=0.0, log_scale=jnp.log(2.0))
        >>> print([round(float(v), 4) for v in t])  # -log 2pi, -2 log 2, -(1/4 + 1/4) / 2
        [-1.8379, -1.3863, -0.25]

    References:
        C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer 2006, §1.2.4.
    """
    name = "normal.log_prob_terms"
    diff, log_scale, axes, constant = _prepare_log_prob(name, x, loc, log_scale, axis, where)
    standardized = diff * jnp.exp(-log_scale)
    return LogProbTerms(
        constant=constant,
        log_scale_term=-jnp.sum(log_scale, axis=axes),
        squared_error=-0.5 * jnp.sum(jnp.square(standardized), axis=axes),
    )


def log_prob(
    x: ArrayLike,
    *,
    loc: ArrayLike,
    log_scale: ArrayLike,
    axis: Axis = -1,
    where: ArrayLike | None = None,
) -> Array:
    """Log-density of a diagonal Gaussian, summed over the event axes.

    .. math::

        \\log \\mathcal N(x; \\mu, \\operatorname{diag}\\sigma^2) = \\sum_i \\Big[
        -\\tfrac12\\log 2\\pi - \\log\\sigma_i
        - \\tfrac12 \\Big(\\frac{x_i-\\mu_i}{\\sigma_i}\\Big)^2 \\Big]

    With a fixed :math:`\\sigma` this is an affine function of the mean squared error
    between ``x`` and ``loc``; :func:`log_prob_terms` gives the three terms separately.

    Args:
        x: observations, any numeric dtype, broadcastable with ``loc`` and ``log_scale``.
        loc: mean :math:`\\mu`, floating.
        log_scale: log standard deviation :math:`\\log\\sigma`, floating; a scalar gives
            the isotropic Gaussian.
        axis: event axis or axes of the broadcast shape to sum over.
        where: optional boolean mask; only unmasked elements are summed.

    Returns:
        The log-density with the batch shape (broadcast shape without the event axes).

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import normal
        >>> x = jnp.zeros((2, 3))
        >>> print(normal.log_prob(x, loc=0.0, log_scale=0.0).round(4))
        [-2.7568 -2.7568]

    References:
        C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer 2006, §2.3.
    """
    name = "normal.log_prob"
    diff, log_scale, axes, constant = _prepare_log_prob(name, x, loc, log_scale, axis, where)
    # One fused reduction (not the sum of the three reduced terms): as fast as the
    # hand-written formula.
    elementwise = -log_scale - 0.5 * jnp.square(diff * jnp.exp(-log_scale))
    return constant + jnp.sum(elementwise, axis=axes)


def entropy(*, log_scale: ArrayLike, axis: Axis = -1) -> Array:
    """Differential entropy of a diagonal Gaussian, in nats.

    .. math::

        H[\\mathcal N(\\mu, \\operatorname{diag}\\sigma^2)] =
        \\sum_i \\Big[\\tfrac12 (1 + \\log 2\\pi) + \\log\\sigma_i\\Big]

    Args:
        log_scale: log standard deviations, floating, with the event axes present
            (broadcast a scalar to the event shape for the isotropic case).
        axis: event axis or axes to sum over.

    Returns:
        The entropy with the batch shape of ``log_scale``.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import normal
        >>> print(round(float(normal.entropy(log_scale=jnp.zeros(2))), 4))
        2.8379

    References:
        T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
        Wiley 2006, Theorem 8.4.1.
    """
    name = "normal.entropy"
    (log_scale,) = validation.promote(name, {"log_scale": log_scale})
    return _event_sum(name, _HALF_LOG_TWO_PI_E + log_scale, axis)


def _twice_kl_elementwise(loc_p, log_scale_p, loc_q, log_scale_q):
    # 2 KL = sigma_p^2/sigma_q^2 - 1 - log(sigma_p^2/sigma_q^2) + (dmu/sigma_q)^2
    #      = e^r - 1 - r + (dmu e^{-log_scale_q})^2 with r = 2 (log_scale_p - log_scale_q):
    # no sigma^2 that can overflow, exactly 0 with zero gradient when p == q, and the cost of
    # the textbook formula (one exp per term; a cancellation-free series costs 1.2-1.5x).
    r = 2.0 * (log_scale_p - log_scale_q)
    standardized = (loc_p - loc_q) * jnp.exp(-log_scale_q)
    # (d * d, not jnp.square(d): the latter's gradient fused worse, ~1.7x, on XLA:CPU.)
    return jnp.exp(r) - 1.0 - r + standardized * standardized


def _kl_sum(caller: str, twice_elementwise: Array, axis: Axis) -> Array:
    # Halving after the reduction lets XLA:CPU keep its fast reduction kernel (a 0.5 inside
    # fused everything into one slower loop, ~1.2x here). e^r rounded to float
    # can fall a few ulps below 1 + r for r near 0; clamping the sum (one op per row, not
    # per element) keeps KL >= 0 without touching the p == q zero. The clamp is on the
    # value only: its derivative would zero the whole row's gradient wherever rounding
    # made the sum negative, near p == q, where the true gradient is small but well
    # conditioned (e^r - 1 and the standardised difference).
    kl = 0.5 * _event_sum(caller, twice_elementwise, axis)
    # (Not max(kl, 0) - kl, which is inf - inf = NaN where the divergence overflows.)
    return kl + jax.lax.stop_gradient(jnp.where(kl < 0.0, -kl, 0.0))


def kl(
    *,
    loc_p: ArrayLike,
    log_scale_p: ArrayLike,
    loc_q: ArrayLike,
    log_scale_q: ArrayLike,
    axis: Axis = -1,
) -> Array:
    """KL divergence :math:`\\mathrm{KL}(p \\,\\|\\, q)` between two diagonal Gaussians.

    .. math::

        \\mathrm{KL}(p\\,\\|\\,q) = \\tfrac12 \\sum_i \\Big[ e^{r_i} - 1 - r_i
        + \\Big(\\frac{\\mu_{p,i} - \\mu_{q,i}}{\\sigma_{q,i}}\\Big)^2 \\Big],
        \\qquad r_i = 2(\\log\\sigma_{p,i} - \\log\\sigma_{q,i}).

    ``kl(p, p)`` is exactly 0 with a zero gradient, and the result is never negative
    (rounding below 0 is clamped in the value only; the gradient is the formula's).
    Accuracy is that of the textbook formula: the absolute error is a few ulps of
    :math:`\\max(1, \\mathrm{KL}_i)` per event element, i.e. a relative error of about
    ``eps / KL_i`` for small divergences; one of order ``eps`` per element (float32:
    :math:`|\\log\\sigma_p - \\log\\sigma_q| \\lesssim 10^{-4}`) is rounding noise,
    since the float value of :math:`e^{r}` near 1 is off by up to an ulp of 1.
    The result overflows to ``inf`` only near or beyond the dtype's range: twice an
    element's divergence is formed before the halving, so within a factor of 2 of the
    largest float the value may already be ``inf`` (float32:
    :math:`\\log\\sigma_p - \\log\\sigma_q > 44.36`, where the divergence itself
    exceeds the range above 44.7).

    Args:
        loc_p, log_scale_p: mean and log standard deviation of :math:`p`, floating.
        loc_q, log_scale_q: mean and log standard deviation of :math:`q`, floating.
        axis: event axis or axes of the broadcast shape to sum over.

    Returns:
        The divergence in nats, with the broadcast batch shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import normal
        >>> v = normal.kl(loc_p=jnp.array([1.0]), log_scale_p=jnp.array([0.0]),
        ...               loc_q=jnp.array([0.0]), log_scale_q=jnp.array([0.0]))
        >>> print(round(float(v), 4))
        0.5

    References:
        S. Kullback, *Information Theory and Statistics*, Wiley 1959.
    """
    name = "normal.kl"
    loc_p, log_scale_p, loc_q, log_scale_q = validation.promote(
        name,
        {
            "loc_p": loc_p,
            "log_scale_p": log_scale_p,
            "loc_q": loc_q,
            "log_scale_q": log_scale_q,
        },
    )
    return _kl_sum(name, _twice_kl_elementwise(loc_p, log_scale_p, loc_q, log_scale_q), axis)


def cross_entropy(
    *,
    loc_p: ArrayLike,
    log_scale_p: ArrayLike,
    loc_q: ArrayLike,
    log_scale_q: ArrayLike,
    axis: Axis = -1,
) -> Array:
    """Cross-entropy :math:`H(p, q) = -\\mathbb E_p[\\log q]` of two diagonal Gaussians.

    .. math::

        H(p, q) = \\sum_i \\Big[\\tfrac12 \\log 2\\pi + \\log\\sigma_{q,i}
        + \\tfrac12 e^{r_i}
        + \\tfrac12 \\Big(\\frac{\\mu_{p,i} - \\mu_{q,i}}{\\sigma_{q,i}}\\Big)^2\\Big],
        \\qquad r_i = 2(\\log\\sigma_{p,i} - \\log\\sigma_{q,i})

    (:math:`e^{r_i} = \\sigma_{p,i}^2 / \\sigma_{q,i}^2`, computed without a
    :math:`\\sigma^2` that could overflow). It is :func:`entropy` of :math:`p` plus
    :func:`kl`, and equals ``entropy(log_scale=log_scale_q)`` when :math:`p = q`. Like
    :func:`kl`, it overflows to ``inf`` only within a factor of 2 of the dtype's range or
    beyond it.

    Args:
        loc_p, log_scale_p: mean and log standard deviation of :math:`p`, floating.
        loc_q, log_scale_q: mean and log standard deviation of :math:`q`, floating.
        axis: event axis or axes of the broadcast shape to sum over.

    Returns:
        :math:`H(p, q)` in nats, with the broadcast batch shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import normal
        >>> h = normal.cross_entropy(loc_p=jnp.array([1.0]), log_scale_p=jnp.array([0.0]),
        ...                          loc_q=jnp.array([0.0]), log_scale_q=jnp.array([0.0]))
        >>> print(round(float(h), 4))  # entropy 1.4189 + KL 0.5
        1.9189

    References:
        T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed., Wiley
        2006, §2.3 and §8.6.
    """
    name = "normal.cross_entropy"
    loc_p, log_scale_p, loc_q, log_scale_q = validation.promote(
        name,
        {
            "loc_p": loc_p,
            "log_scale_p": log_scale_p,
            "loc_q": loc_q,
            "log_scale_q": log_scale_q,
        },
    )
    r = 2.0 * (log_scale_p - log_scale_q)
    standardized = (loc_p - loc_q) * jnp.exp(-log_scale_q)
    # The same pieces as kl (no sigma^2 that can overflow), plus the normaliser of q.
    elementwise = _HALF_LOG_TWO_PI + log_scale_q + 0.5 * (jnp.exp(r) + standardized * standardized)
    return _event_sum(name, elementwise, axis)


def kl_standard(*, loc: ArrayLike, log_scale: ArrayLike, axis: Axis = -1) -> Array:
    """KL divergence from a diagonal Gaussian to the standard normal (the VAE prior term).

    .. math::

        \\mathrm{KL}(\\mathcal N(\\mu, \\operatorname{diag}\\sigma^2) \\,\\|\\,
        \\mathcal N(0, I)) = \\tfrac12 \\sum_i \\big[ \\sigma_i^2 - 1 - 2\\log\\sigma_i
        + \\mu_i^2 \\big]

    Evaluated as ``kl(loc, log_scale, 0, 0)``: :math:`e^{r}-1-r` with
    :math:`r = 2\\log\\sigma` (no :math:`\\sigma^2` that can overflow), exactly 0
    with zero gradient at the prior, never negative, with :func:`kl`'s accuracy.

    Args:
        loc: posterior mean :math:`\\mu`, floating.
        log_scale: posterior log standard deviation :math:`\\log\\sigma`, floating.
        axis: event axis or axes of the broadcast shape to sum over.

    Returns:
        The divergence in nats, with the broadcast batch shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import normal
        >>> v = normal.kl_standard(loc=jnp.array([0.0, 2.0]), log_scale=jnp.zeros(2))
        >>> print(round(float(v), 4))
        2.0

    References:
        D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014,
        Appendix B.
    """
    name = "normal.kl_standard"
    loc, log_scale = validation.promote(name, {"loc": loc, "log_scale": log_scale})
    return _kl_sum(name, _twice_kl_elementwise(loc, log_scale, 0.0, 0.0), axis)


def sample(
    key: Key,
    *,
    loc: ArrayLike,
    log_scale: ArrayLike,
    sample_shape: SampleShape = (),
) -> Array:
    """Reparameterised samples :math:`x = \\mu + \\sigma \\odot \\varepsilon`.

    .. math::

        \\varepsilon \\sim \\mathcal N(0, I), \\qquad x = \\mu + e^{\\log\\sigma}\\odot\\varepsilon

    Gradients flow to ``loc`` and ``log_scale`` (the reparameterisation trick).

    Args:
        key: a ``jax.random`` key.
        loc: mean, floating.
        log_scale: log standard deviation, floating, broadcastable with ``loc``.
        sample_shape: shape of the independent draws, prepended to the broadcast shape of
            ``loc`` and ``log_scale``: an int ``n`` (meaning ``(n,)``) or a tuple; ``()``
            draws one sample.

    Returns:
        Samples of shape ``sample_shape + broadcast(loc, log_scale).shape`` in the compute dtype.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import normal
        >>> x = normal.sample(jax.random.key(0), loc=jnp.zeros(3), log_scale=0.0, sample_shape=5)
        >>> x.shape
        (5, 3)

    References:
        D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014, §2.4.
    """
    name = "normal.sample"
    loc, log_scale = validation.promote(name, {"loc": loc, "log_scale": log_scale})
    sample_shape = validation.sample_shape(name, sample_shape)
    full_shape = sample_shape + jnp.broadcast_shapes(loc.shape, log_scale.shape)
    noise = jax.random.normal(key, full_shape, loc.dtype)
    return loc + jnp.exp(log_scale) * noise

"""Categorical distributions over the last axis (or given axes) of unnormalised logits.

A categorical distribution with logits :math:`\\ell \\in [-\\infty, \\infty)^K` puts
probability :math:`p_k = e^{\\ell_k} / \\sum_j e^{\\ell_j}` on class :math:`k`; adding a
constant to all logits changes nothing. Everything is computed from the shifted logits
:math:`s = \\ell - \\max\\ell` and :math:`\\log Z = \\log\\sum_k e^{s_k}` (one ``exp`` per
element, like ``log_softmax``), so values stay accurate at logits of :math:`\\pm 10^4`.

A logit of :math:`-\\infty` is a class of probability 0: the convention
:math:`0 \\cdot \\log 0 = 0` is applied and gradients stay finite. A row whose logits are
all :math:`-\\infty`, or any logit of :math:`+\\infty` or NaN, defines no distribution and
gives NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from genmath._src import validation
from genmath._src.typing import Array, ArrayLike, Axis, Key, SampleShape

__all__ = ["cross_entropy", "entropy", "kl", "log_prob", "sample"]


class _Normalised(NamedTuple):
    shifted: Array  # s = logits - max(logits), keepdims
    unnormalised: Array  # e^s (p = e^s / Z)
    z: Array  # Z = sum e^s >= 1, reduced (no keepdims)
    log_z: Array  # log Z, reduced


def _normalise(logits: Array, axes: tuple[int, ...]) -> _Normalised:
    # The shift cancels mathematically, so it carries no gradient (as in logsumexp).
    shift = jax.lax.stop_gradient(jnp.max(logits, axis=axes, keepdims=True))
    shifted = logits - shift
    unnormalised = jnp.exp(shifted)
    z = jnp.sum(unnormalised, axis=axes)
    return _Normalised(shifted, unnormalised, z, jnp.log(z))


def _expectation(p: _Normalised, values: Array, axes: tuple[int, ...]) -> Array:
    """:math:`\\sum_k p_k v_k`, with ``values`` already 0 wherever :math:`p_k = 0`."""
    # Divide the row sum by Z once rather than every e^s_k: one pass fewer over the
    # classes, forward and backward (10-30 % faster than p = exp(log_softmax) on CPU).
    return jnp.sum(p.unnormalised * values, axis=axes) / p.z


def _pair(name: str, logits_p: ArrayLike, logits_q: ArrayLike, axis: Axis):
    logits_p, logits_q = validation.promote(name, {"logits_p": logits_p, "logits_q": logits_q})
    logits_p, logits_q = jnp.broadcast_arrays(logits_p, logits_q)
    axes = validation.check_axis(name, axis, logits_p.ndim)
    return _normalise(logits_p, axes), _normalise(logits_q, axes), axes


def log_prob(labels: ArrayLike, *, logits: ArrayLike) -> Array:
    """Log-probability of integer class labels under a categorical distribution.

    .. math::

        \\log p(y \\mid \\ell) = \\ell_y - \\log\\sum_{k=1}^{K} e^{\\ell_k}

    This is minus the softmax cross-entropy with integer labels. Labels outside
    :math:`[0, K)`, negative ones included (there is no Python-style wrap-around), give
    NaN, so that a padding label such as -1 cannot pass unnoticed; mask those entries with
    ``jnp.where`` after the call (their gradients are 0).

    Args:
        labels: integer class indices; shape broadcastable with ``logits.shape[:-1]``.
        logits: unnormalised log-probabilities, floating, classes on the last axis.

    Returns:
        The log-probabilities with shape ``broadcast(labels.shape, logits.shape[:-1])``, in
        the compute dtype. A label of probability 0 (logit :math:`-\\infty`) gives
        :math:`-\\infty` with a finite gradient.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import categorical
        >>> logits = jnp.log(jnp.array([[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]]))
        >>> print(categorical.log_prob(jnp.array([2, 0]), logits=logits).round(4))
        [-0.6931 -0.5108]

    References:
        C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer 2006, §4.3.4.
    """
    name = "categorical.log_prob"
    labels_dtype = jnp.result_type(labels)
    if not jnp.issubdtype(labels_dtype, jnp.integer):
        raise TypeError(f"{name}: `labels` must be an integer array, got dtype {labels_dtype}.")
    (logits,) = validation.promote(name, {"logits": logits})
    labels = jnp.asarray(labels)
    if logits.ndim == 0:
        raise ValueError(f"{name}: `logits` needs a class axis, got a scalar.")
    num_classes = logits.shape[-1]
    batch_shape = validation.check_broadcast(
        name, {"labels": labels.shape, "logits (without the class axis)": logits.shape[:-1]}
    )
    labels = jnp.broadcast_to(labels, batch_shape)
    valid = (labels >= 0) & (labels < num_classes)
    index = jnp.where(valid, labels, 0)[..., None]
    # Subtract from the *shifted* logits: l_y - logsumexp(l) would cancel catastrophically
    # at large logits (1e4 + log 2 is 1e4 in float32).
    p = _normalise(logits, (logits.ndim - 1,))
    chosen = jnp.take_along_axis(
        jnp.broadcast_to(p.shifted, (*batch_shape, num_classes)), index, axis=-1
    )[..., 0]
    return jnp.where(valid, chosen - p.log_z, jnp.nan)


def entropy(*, logits: ArrayLike, axis: Axis = -1) -> Array:
    """Entropy of a categorical distribution, in nats.

    .. math::

        H[p] = -\\sum_k p_k \\log p_k = \\log Z - \\sum_k p_k s_k,
        \\qquad s = \\ell - \\max\\ell,\\ Z = \\sum_k e^{s_k}

    Args:
        logits: unnormalised log-probabilities, floating.
        axis: the class axis, or a tuple of axes forming one joint distribution.

    Returns:
        The entropy with the other axes' shape, in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import categorical
        >>> logits = jnp.array([0.0, 0.0, 0.0, -jnp.inf])
        >>> print(round(float(categorical.entropy(logits=logits)), 4))  # log 3
        1.0986

    References:
        T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed., Wiley
        2006, §2.1.
    """
    name = "categorical.entropy"
    (logits,) = validation.promote(name, {"logits": logits})
    axes = validation.check_axis(name, axis, logits.ndim)
    p = _normalise(logits, axes)
    # Where p = 0 exactly because s = -inf, p * s would be 0 * inf = NaN in the value and
    # the gradient: replace s *before* the product (then p = 0 gives 0 and a 0 gradient).
    # H = log Z - E_p[s]: both terms are >= 0, so nothing cancels.
    safe_shifted = jnp.where(jnp.isneginf(p.shifted), 0.0, p.shifted)
    return p.log_z - _expectation(p, safe_shifted, axes)


def cross_entropy(*, logits_p: ArrayLike, logits_q: ArrayLike, axis: Axis = -1) -> Array:
    """Cross-entropy :math:`H(p, q) = -\\sum_k p_k \\log q_k` of categorical distributions.

    .. math::

        H(p, q) = \\log Z_q - \\sum_k p_k s^q_k

    (using :math:`\\sum_k p_k = 1`). Classes with :math:`p_k = 0` contribute 0 even where
    :math:`q_k = 0`; it is :math:`+\\infty` where :math:`q_k = 0 < p_k`.

    Args:
        logits_p: logits of :math:`p`, floating.
        logits_q: logits of :math:`q`, floating, broadcastable with ``logits_p``.
        axis: the class axis, or a tuple of axes, of the broadcast shape.

    Returns:
        :math:`H(p, q)` in nats with the other axes' shape, in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import categorical
        >>> h = categorical.cross_entropy(logits_p=jnp.array([0.0, -jnp.inf]),
        ...                               logits_q=jnp.array([0.0, 0.0]))
        >>> print(round(float(h), 4))  # log 2
        0.6931

    References:
        T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed., Wiley
        2006, §2.3.
    """
    p, q, axes = _pair("categorical.cross_entropy", logits_p, logits_q, axis)
    # Double where: zero-probability classes of p must not see s_q = -inf (0 * inf).
    # (Testing s_p = -inf rather than p == 0 fuses better: a faster gradient.)
    safe_shifted_q = jnp.where(jnp.isneginf(p.shifted), 0.0, q.shifted)
    return q.log_z - _expectation(p, safe_shifted_q, axes)


def kl(*, logits_p: ArrayLike, logits_q: ArrayLike, axis: Axis = -1) -> Array:
    """KL divergence :math:`\\mathrm{KL}(p \\,\\|\\, q)` between categorical distributions.

    .. math::

        \\mathrm{KL}(p \\,\\|\\, q) = \\sum_k p_k \\big(s^p_k - s^q_k\\big)
        - \\log Z_p + \\log Z_q

    Exactly 0 when ``logits_p`` and ``logits_q`` are equal. Classes with :math:`p_k = 0`
    contribute 0 (even where :math:`q_k = 0`); the divergence is :math:`+\\infty` where
    :math:`q_k = 0 < p_k`.

    Args:
        logits_p: logits of :math:`p`, floating.
        logits_q: logits of :math:`q`, floating, broadcastable with ``logits_p``.
        axis: the class axis, or a tuple of axes, of the broadcast shape.

    Returns:
        The divergence in nats with the other axes' shape, in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import categorical
        >>> d = categorical.kl(logits_p=jnp.log(jnp.array([0.5, 0.5, 0.0])),
        ...                    logits_q=jnp.zeros(3))
        >>> print(round(float(d), 4))  # log(3/2)
        0.4055

    References:
        S. Kullback and R. A. Leibler, "On Information and Sufficiency", *Ann. Math.
        Statist.* 22(1), 1951.
    """
    p, q, axes = _pair("categorical.kl", logits_p, logits_q, axis)
    # Double where: zero-probability classes of p give s_p - s_q = -inf - (-inf) = NaN or
    # -inf; replacing it before the product keeps NaN out of the value and the gradient.
    safe_difference = jnp.where(jnp.isneginf(p.shifted), 0.0, p.shifted - q.shifted)
    # KL = E_p[s_p - s_q] - log Z_p + log Z_q (the log-normalisers are constants under p).
    return _expectation(p, safe_difference, axes) - p.log_z + q.log_z


def sample(
    key: Key,
    *,
    logits: ArrayLike,
    sample_shape: SampleShape = (),
) -> Array:
    """Draws class labels :math:`y \\sim \\mathrm{Categorical}(\\operatorname{softmax}\\ell)`.

    .. math::

        y = \\arg\\max_k (\\ell_k + g_k), \\qquad g_k \\sim \\mathrm{Gumbel}(0, 1)

    Classes with logit :math:`-\\infty` are never drawn. The labels are discrete, so no
    gradient flows to ``logits``.

    Args:
        key: a ``jax.random`` key.
        logits: unnormalised log-probabilities, floating, classes on the last axis.
        sample_shape: shape of the independent draws, prepended to the batch shape
            ``logits.shape[:-1]``: an int ``n`` (meaning ``(n,)``) or a tuple; ``()`` draws
            one sample.

    Returns:
        Integer labels in :math:`[0, K)` of shape ``sample_shape + logits.shape[:-1]`` (default
        integer dtype: labels are indices, not floats).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import categorical
        >>> logits = jnp.zeros((2, 5))
        >>> categorical.sample(jax.random.key(0), logits=logits, sample_shape=(4, 3)).shape
        (4, 3, 2)

    References:
        E. J. Gumbel, *Statistical Theory of Extreme Values and Some Practical
        Applications*, 1954.
    """
    name = "categorical.sample"
    (logits,) = validation.promote(name, {"logits": logits})
    if logits.ndim == 0:
        raise ValueError(f"{name}: `logits` needs a class axis, got a scalar.")
    sample_shape = validation.sample_shape(name, sample_shape)
    return jax.random.categorical(
        key, jax.lax.stop_gradient(logits), axis=-1, shape=sample_shape + logits.shape[:-1]
    )

"""Bayes' rule in log space: posteriors and evidence from a log-joint table.

Given :math:`\\log p(x, y)` for every value :math:`y` of a discrete variable along an
``axis`` (for example the class log-likelihoods plus log-priors of a generative
classifier, or the per-component terms of a mixture), these functions normalise over
that axis with ``logsumexp``, never leaving log space.
"""

from __future__ import annotations

from genmath._src import special, validation
from genmath._src.typing import Array, ArrayLike, Axis

__all__ = ["evidence", "posterior"]


def _log_joint(name: str, log_joint: ArrayLike, axis: Axis) -> tuple[Array, tuple[int, ...]]:
    (log_joint,) = validation.promote(name, {"log_joint": log_joint})
    axes = validation.check_axis(name, axis, log_joint.ndim)
    validation.check_classes(name, "log_joint", log_joint.shape, axes)
    return log_joint, axes


def posterior(log_joint: ArrayLike, *, axis: Axis = -1) -> Array:
    """Log-posterior :math:`\\log p(y \\mid x)` from the log-joint :math:`\\log p(x, y)`.

    .. math::

        \\log p(y \\mid x) = \\log p(x, y) - \\log \\sum_{y'} p(x, y')

    Entries of :math:`-\\infty` (impossible values of :math:`y`) stay :math:`-\\infty` with
    finite gradients. If *every* entry along ``axis`` is :math:`-\\infty` the observation
    :math:`x` is impossible (the :func:`evidence` is :math:`-\\infty`) and the posterior is
    undefined: the whole slice is NaN, never a made-up distribution, and its gradient is 0,
    so that such observations can be masked out of a loss (``jnp.where`` after the call)
    without putting NaN into the gradient of the rest. An entry of :math:`+\\infty` or NaN
    also gives NaN.

    Args:
        log_joint: :math:`\\log p(x, y)`, floating, with :math:`y` along ``axis``.
        axis: the axis (or tuple of axes) that enumerates :math:`y`.

    Returns:
        :math:`\\log p(y \\mid x)`, same shape as ``log_joint`` (its exponential sums to 1
        over ``axis``), in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import bayes
        >>> log_joint = jnp.log(jnp.array([0.1, 0.3]))
        >>> print(jnp.exp(bayes.posterior(log_joint)).round(4))
        [0.25 0.75]

    References:
        C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer 2006, §1.2.
    """
    log_joint, axes = _log_joint("bayes.posterior", log_joint, axis)
    # Max-shifted log_softmax (no cancellation at -1e4 in float32), NaN with a zero
    # gradient for an all -inf slice.
    return special.log_normalize(log_joint, axes)


def evidence(log_joint: ArrayLike, *, axis: Axis = -1) -> Array:
    """Log-evidence (marginal likelihood) :math:`\\log p(x) = \\log\\sum_y p(x, y)`.

    .. math::

        \\log p(x) = \\log \\sum_y \\exp \\log p(x, y)

    It is :math:`-\\infty` if every entry along ``axis`` is :math:`-\\infty` (an impossible
    observation), with a zero gradient there rather than NaN, so that such entries can be
    masked out of a loss without poisoning its gradient.

    Args:
        log_joint: :math:`\\log p(x, y)`, floating, with :math:`y` along ``axis``.
        axis: the axis (or tuple of axes) that enumerates :math:`y`; it is summed out.

    Returns:
        :math:`\\log p(x)` with ``axis`` removed, in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import bayes
        >>> log_joint = jnp.log(jnp.array([0.1, 0.3]))
        >>> print(round(float(bayes.evidence(log_joint)), 4))  # log 0.4
        -0.9163

    References:
        C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer 2006, §1.2.
    """
    log_joint, axes = _log_joint("bayes.evidence", log_joint, axis)
    return special.logsumexp(log_joint, axes)

"""Finite mixtures: log-likelihood, responsibilities, mean and sampling, grad-safe.

A mixture :math:`p(x) = \\sum_k w_k\\, p_k(x)` with weights
:math:`w = \\operatorname{softmax}(\\ell)` is given by its mixture ``logits``
:math:`\\ell` and by the components' log-densities :math:`\\log p_k(x)` (or their
samples, or means), which the caller computes with the other modules, e.g.
``normal.log_prob(x[..., None, :], loc=loc, log_scale=log_scale)`` for a Gaussian mixture
decoder with ``loc`` of shape ``(batch, K, D)``. Everything stays in log space:
:math:`\\log p(x) = \\operatorname{logsumexp}_k(\\log w_k + \\log p_k(x))`.

Both kinds of zero are exact, with finite gradients: a weight of exactly 0 (a logit of
:math:`-\\infty`) removes its component altogether (its log-density may then be anything,
:math:`\\pm\\infty` or NaN included, and gets a zero gradient), and an observation that
every component (of positive weight) gives density 0 has :math:`\\log p(x) = -\\infty`
with a zero gradient, where ``jax.nn.logsumexp`` gives NaN gradients; such an entry can
be masked out of a loss without poisoning its gradient. Logits that are all
:math:`-\\infty` (no weights) or contain :math:`+\\infty` or NaN define no mixture and
give NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genmath import categorical
from genmath._src import special, validation
from genmath._src.typing import Array, ArrayLike, Axis, Key

__all__ = ["log_prob", "mean", "posterior", "sample", "select"]


def _joint(name: str, component_log_probs: ArrayLike, logits: ArrayLike, axis: Axis):
    """``log w_k + log p_k(x)`` with the broadcast shape, and the normalised axes."""
    component_log_probs, logits = validation.promote(
        name, {"component_log_probs": component_log_probs, "logits": logits}
    )
    shape = jnp.broadcast_shapes(component_log_probs.shape, logits.shape)
    axes = validation.check_axis(name, axis, len(shape))
    validation.check_classes_among(
        name, {"logits": logits.shape, "component_log_probs": component_log_probs.shape}, axes
    )
    # Normalise the logits before broadcasting them over the batch (one log_softmax per
    # distinct set of weights), but over the full component axes: logits of size 1 along
    # one stand for K equal logits there.
    logits = logits.reshape((1,) * (len(shape) - logits.ndim) + logits.shape)
    logits = jnp.broadcast_to(
        logits, tuple(shape[i] if i in axes else n for i, n in enumerate(logits.shape))
    )
    # Max-shifted: accurate at logits of 1e4 (logsumexp(l + c) - logsumexp(l) is not).
    log_weights = jax.nn.log_softmax(logits, axis=axes)
    zero_weight = jnp.isneginf(log_weights)
    # Double where: a component of weight 0 must not bring its log-density (possibly
    # +inf or NaN: -inf + inf = NaN) into the value or the gradient.
    safe = jnp.where(zero_weight, 0.0, component_log_probs)
    return jnp.where(zero_weight, -jnp.inf, log_weights + safe), axes


def log_prob(component_log_probs: ArrayLike, *, logits: ArrayLike, axis: Axis = -1) -> Array:
    """Log-density of a finite mixture from its components' log-densities.

    .. math::

        \\log p(x) = \\log \\sum_k w_k\\, p_k(x)
        = \\operatorname{logsumexp}_k\\big(\\log w_k + \\log p_k(x)\\big),
        \\qquad \\log w = \\ell - \\operatorname{logsumexp}(\\ell)

    Gradients stay finite in the two degenerate cases: a component of weight exactly 0
    (logit :math:`-\\infty`) contributes nothing, whatever its log-density (even
    :math:`\\pm\\infty` or NaN), with zero gradients to it and to its logit; and if every
    component of positive weight has log-density :math:`-\\infty` the result is
    :math:`-\\infty` with a zero gradient (``jax.nn.logsumexp`` gives NaN there). A
    log-density of :math:`+\\infty` (a point mass at :math:`x`) with positive weight gives
    :math:`+\\infty`.

    Args:
        component_log_probs: :math:`\\log p_k(x)`, floating, with the :math:`K`
            components along ``axis`` (event axes already summed out).
        logits: mixture logits :math:`\\ell`, floating, broadcastable with
            ``component_log_probs`` (e.g. ``(K,)`` shared by the whole batch, or
            ``(batch, K)`` from an encoder); only differences along ``axis`` matter.
        axis: the component axis (or a tuple of axes forming one joint index) of the
            broadcast shape.

    Returns:
        :math:`\\log p(x)` with the broadcast shape without ``axis``, in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import mixture
        >>> log_pk = jnp.log(jnp.array([0.2, 0.6, 5.0]))
        >>> logits = jnp.log(jnp.array([0.5, 0.5, 0.0]))  # the third weight is 0
        >>> print(round(float(mixture.log_prob(log_pk, logits=logits)), 4))  # log 0.4
        -0.9163

    References:
        C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer 2006, §9.2;
        G. McLachlan and D. Peel, *Finite Mixture Models*, Wiley 2000.
    """
    terms, axes = _joint("mixture.log_prob", component_log_probs, logits, axis)
    return special.logsumexp(terms, axes)


def posterior(component_log_probs: ArrayLike, *, logits: ArrayLike, axis: Axis = -1) -> Array:
    """Log-responsibilities :math:`\\log r_k = \\log p(k \\mid x)` of the components.

    .. math::

        \\log r_k = \\log w_k + \\log p_k(x) - \\log p(x)

    (the E-step of EM, or which component explains :math:`x`). Components of weight 0 get
    :math:`-\\infty` with zero gradients, as in :func:`log_prob`; if :math:`x` has density
    0 under every component (:func:`log_prob` is :math:`-\\infty`), the responsibilities are
    undefined: NaN, with a zero gradient, as :func:`genmath.bayes.posterior`.

    Args:
        component_log_probs: :math:`\\log p_k(x)`, floating, components along ``axis``.
        logits: mixture logits, floating, broadcastable with ``component_log_probs``.
        axis: the component axis (or axes) of the broadcast shape.

    Returns:
        :math:`\\log r` with the broadcast shape (its exponential sums to 1 over
        ``axis``), in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import mixture
        >>> log_pk = jnp.log(jnp.array([0.2, 0.6]))
        >>> r = mixture.posterior(log_pk, logits=jnp.zeros(2))
        >>> print(jnp.exp(r).round(4))
        [0.25 0.75]

    References:
        A. P. Dempster, N. M. Laird and D. B. Rubin, "Maximum likelihood from incomplete
        data via the EM algorithm", *J. R. Stat. Soc. B* 39(1), 1977.
    """
    terms, axes = _joint("mixture.posterior", component_log_probs, logits, axis)
    return special.log_normalize(terms, axes)


def _component_layout(name: str, values: Array, logits: Array, axis: int, values_name: str):
    """Normalises the component ``axis`` of ``values`` and checks ``logits`` against it.

    Returns ``(axis, batch_shape, K)``: ``values`` has shape ``batch + (K,) + event`` and
    ``logits`` (components last) must broadcast to ``batch + (K,)``.
    """
    axis = validation.one_axis(name, axis, "one component axis")
    (axis,) = validation.check_axis(name, axis, values.ndim)
    batch, num_components = values.shape[:axis], values.shape[axis]
    validation.check_classes(name, values_name, values.shape, (axis,))
    if logits.ndim == 0 or logits.shape[-1] != num_components:
        raise ValueError(
            f"{name}: `logits` must have the K = {num_components} components of "
            f"`{values_name}` (its axis {axis}) in its last axis, got shape {logits.shape}."
        )
    validation.check_broadcast(
        name,
        {
            f"{values_name} (up to the component axis)": batch,
            "logits (without the component axis)": logits.shape[:-1],
        },
    )
    if jnp.broadcast_shapes(batch, logits.shape[:-1]) != batch:
        raise ValueError(
            f"{name}: `logits` {logits.shape} has batch axes that `{values_name}` "
            f"{values.shape} lacks before its component axis {axis}."
        )
    return axis, batch, num_components


def select(component_values: ArrayLike, index: ArrayLike, *, axis: int = -1) -> Array:
    """Picks one component per element: ``component_values[..., index, ...]`` along ``axis``.

    .. math::

        y_{b,e} = v_{b,\\,k_b,\\,e}

    for batch index :math:`b` (the axes before ``axis``), component :math:`k_b =`
    ``index[b]`` and event index :math:`e` (the axes after ``axis``). Use it to take the
    sample, mean or parameters of a chosen component (conditional generation, or with
    indices from :func:`genmath.categorical.sample`). Gradients flow to the selected
    entries of ``component_values``. Indices outside :math:`[0, K)` (negative ones
    included) give NaN for floating values; for integers and booleans JAX's fill value, which
    can pass for a real one (the most negative signed integer, the largest unsigned one,
    ``True``), so check the index there.

    Args:
        component_values: values of shape ``batch + (K,) + event``, any numeric dtype.
        index: integer component indices, broadcastable to ``batch``.
        axis: the component axis of ``component_values`` (an int).

    Returns:
        Shape ``batch + event``, the dtype of ``component_values``.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import mixture
        >>> means = jnp.array([[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]])  # (1, K=3, D=2)
        >>> print(mixture.select(means, jnp.array([2]), axis=-2))
        [[2. 2.]]

    References:
        C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer 2006, §9.2
        (ancestral sampling of a mixture, §8.1.2).
    """
    name = "mixture.select"
    validation.check_array_like(name, "component_values", component_values)
    validation.check_array_like(name, "index", index)
    values = jnp.asarray(component_values)
    if not (jnp.issubdtype(values.dtype, jnp.number) or values.dtype == jnp.bool_):
        raise TypeError(f"{name}: `component_values` must be numeric, got dtype {values.dtype}.")
    index = jnp.asarray(index)
    if not jnp.issubdtype(index.dtype, jnp.integer):
        raise TypeError(f"{name}: `index` must be an integer array, got dtype {index.dtype}.")
    axis = validation.one_axis(name, axis, "one component axis")
    (axis,) = validation.check_axis(name, axis, values.ndim)
    validation.check_classes(name, "component_values", values.shape, (axis,))
    batch, event = values.shape[:axis], values.shape[axis + 1 :]
    validation.check_broadcast(
        name, {"index": index.shape, "component_values (up to the component axis)": batch}
    )
    if jnp.broadcast_shapes(index.shape, batch) != batch:
        raise ValueError(
            f"{name}: `index` {index.shape} has axes that `component_values` "
            f"{values.shape} lacks before its component axis {axis}."
        )
    # Out-of-range indices (negative ones too: no wrap-around) are sent to K, which "fill"
    # mode answers with NaN (or the dtype's fill value).
    num_components = values.shape[axis]
    if jnp.iinfo(index.dtype).bits < 32:
        # K itself goes into the index's dtype below: in int8 or uint8 it would wrap.
        index = index.astype(jnp.int32)
    index = jnp.where((index >= 0) & (index < num_components), index, num_components)
    index = jnp.broadcast_to(index, batch).reshape((*batch, 1) + (1,) * len(event))
    index = jnp.broadcast_to(index, (*batch, 1, *event))
    picked = jnp.take_along_axis(values, index, axis=axis, mode="fill")
    return jnp.squeeze(picked, axis)


def sample(key: Key, *, logits: ArrayLike, component_samples: ArrayLike, axis: int = -1) -> Array:
    """Mixture samples from the components' samples: draws a component per element.

    .. math::

        k_b \\sim \\mathrm{Categorical}(\\operatorname{softmax}\\ell_b), \\qquad
        x_b = x^{(k_b)}_b

    ``component_samples`` holds one sample of every component (drawn by the caller, e.g.
    ``normal.sample(key, loc=loc, log_scale=log_scale, sample_shape=n)`` with ``loc`` of
    shape ``(batch, K, D)``); a component is chosen independently for every element of
    the axes before ``axis`` (sample axes included) and its sample returned, as in
    ancestral sampling. Drawing every component costs :math:`K` times one draw, but keeps
    the per-component reparameterisation: gradients flow to the chosen
    ``component_samples`` (hence to their parameters), not to ``logits`` (a discrete
    choice; train the weights through :func:`log_prob`). The indices are those of
    ``categorical.sample(key, logits=jnp.broadcast_to(logits, batch + (K,)))``; components
    of weight 0 are never chosen, and logits that define no mixture (all :math:`-\\infty`, or
    one of :math:`+\\infty` or NaN) give NaN (the fill value of an integer dtype, as in
    :func:`select`). The number of draws is set by ``component_samples``, so there is no
    ``sample_shape``.

    Args:
        key: a ``jax.random`` key.
        logits: mixture logits, floating, with the :math:`K` components in the *last*
            axis, broadcastable to ``batch + (K,)``.
        component_samples: samples of shape ``batch + (K,) + event``, any numeric dtype.
        axis: the component axis of ``component_samples`` (an int); the axes after it are
            event axes, e.g. ``-2`` for ``(batch, K, D)``, ``-1`` for per-pixel mixtures.

    Returns:
        Samples of shape ``batch + event``, the dtype of ``component_samples``.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import mixture, normal
        >>> loc = jnp.array([[-5.0, 0.0], [5.0, 0.0]])  # K = 2 components in D = 2
        >>> z = normal.sample(jax.random.key(0), loc=loc, log_scale=-3.0, sample_shape=8)
        >>> x = mixture.sample(jax.random.key(1), logits=jnp.zeros(2), component_samples=z,
        ...                    axis=-2)
        >>> x.shape, bool(jnp.all(jnp.abs(jnp.abs(x[:, 0]) - 5.0) < 1.0))
        ((8, 2), True)

    References:
        C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer 2006, §8.1.2
        and §9.2.
    """
    name = "mixture.sample"
    (logits,) = validation.promote(name, {"logits": logits})
    validation.check_array_like(name, "component_samples", component_samples)
    samples = jnp.asarray(component_samples)
    if not (jnp.issubdtype(samples.dtype, jnp.number) or samples.dtype == jnp.bool_):
        raise TypeError(f"{name}: `component_samples` must be numeric, got dtype {samples.dtype}.")
    axis, batch, num_components = _component_layout(
        name, samples, logits, axis, "component_samples"
    )
    logits = jnp.broadcast_to(logits, (*batch, num_components))
    index = categorical.sample(key, logits=logits)
    return select(samples, index, axis=axis)


def mean(component_means: ArrayLike, *, logits: ArrayLike, axis: int = -1) -> Array:
    """Mean of a mixture from its components' means.

    .. math::

        \\mathbb E[x] = \\sum_k w_k\\, \\mu_k, \\qquad w = \\operatorname{softmax}(\\ell)

    A component of weight exactly 0 (logit :math:`-\\infty`) contributes nothing, even if
    its mean is infinite or NaN, and gets zero gradients.

    Args:
        component_means: :math:`\\mu_k`, floating, shape ``batch + (K,) + event``.
        logits: mixture logits, floating, components in the *last* axis, broadcastable to
            ``batch + (K,)``.
        axis: the component axis of ``component_means`` (an int); the axes after it are
            event axes.

    Returns:
        The mean, shape ``batch + event``, in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import mixture
        >>> means = jnp.array([[0.0, 2.0], [4.0, 6.0], [jnp.nan, jnp.nan]])  # K = 3, D = 2
        >>> logits = jnp.log(jnp.array([0.75, 0.25, 0.0]))
        >>> print(mixture.mean(means, logits=logits, axis=-2))
        [1. 3.]

    References:
        C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer 2006, §9.2.
    """
    name = "mixture.mean"
    component_means, logits = validation.promote(
        name, {"component_means": component_means, "logits": logits}, broadcast=False
    )
    axis, batch, num_components = _component_layout(
        name, component_means, logits, axis, "component_means"
    )
    event_ndim = component_means.ndim - axis - 1
    log_weights = jax.nn.log_softmax(jnp.broadcast_to(logits, (*batch, num_components)), axis=-1)
    log_weights = log_weights.reshape(log_weights.shape + (1,) * event_ndim)
    # Double where: a weight of exactly 0 (logit -inf, not one that underflowed) times an
    # infinite or NaN mean.
    safe = jnp.where(jnp.isneginf(log_weights), 0.0, component_means)
    return jnp.sum(jnp.exp(log_weights) * safe, axis=axis)

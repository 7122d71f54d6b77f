"""The Concrete (Gumbel-softmax, relaxed one-hot categorical) distribution, by logits.

A relaxed categorical sample is a point of the probability simplex,

.. math::

    y = \\operatorname{softmax}\\Big(\\frac{\\ell + g}{\\lambda}\\Big), \\qquad
    g_k \\sim \\mathrm{Gumbel}(0, 1)\\ \\text{i.i.d.},

differentiable in the logits :math:`\\ell` and the temperature :math:`\\lambda > 0`. As
:math:`\\lambda \\to 0` it tends to the one-hot vector of
:math:`\\arg\\max_k (\\ell_k + g_k)`, which is :math:`\\mathrm{Categorical}(\\operatorname
{softmax}\\ell)` (the Gumbel-max trick).

Two random variables, two densities, kept apart by their names: :func:`sample` and
:func:`log_prob` are about :math:`y` (on the simplex; the density is with respect to Lebesgue
measure on :math:`K - 1` of its coordinates), :func:`log_sample` and
:func:`log_sample_log_prob` about :math:`\\log y` (Maddison et al.'s ExpConcrete; the density
is that of the :math:`K - 1` log-ratios :math:`\\log y_k - \\log y_K`). The log form is the one
to train with: at small temperatures coordinates of :math:`y` underflow to 0, where its
density is undefined, while :math:`\\log y` is computed as a ``log_softmax`` and stays finite.
The two densities differ by :math:`\\sum_k \\log y_k`, which does not depend on the
parameters, so a KL estimate :math:`\\log q - \\log p` is the same in either form.

Classes with logit :math:`-\\infty` are never drawn and are dropped: the distribution lives on
the face of the simplex spanned by the other :math:`K'` classes, and the densities are with
respect to its :math:`K' - 1` coordinates (with one class left, a point mass of density 1,
log-density 0, at its vertex). A logit of :math:`+\\infty` or NaN defines no distribution and
gives NaN. The classes lie along the last axis for the samplers and along ``axis`` for the
densities; ``temperature`` has the batch shape (no class axis) or broadcasts with it. So a
temperature per row of logits ``(B, K)`` has shape ``(B,)``: one of shape ``(B, 1)``, as
other libraries take it, broadcasts against the batch ``(B,)`` to a ``(B, B)`` batch of
distributions, one per pair of rows and temperatures.
Temperatures are checked when they are concrete (``ValueError`` for a non-positive one); under
``jax.jit`` a non-positive temperature gives NaN.

:func:`straight_through` and :func:`straight_through_sample` give the one-hot vector of the
largest coordinate forward and the relaxed sample's gradient backward.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from genmath._src import relaxed, sampling, special, validation
from genmath._src.typing import Array, ArrayLike, Key, SampleShape

__all__ = [
    "log_prob",
    "log_sample",
    "log_sample_log_prob",
    "sample",
    "straight_through",
    "straight_through_sample",
]


def _class_axis(name: str, axis: int, ndim: int) -> int:
    axis = validation.one_axis(name, axis, "the class axis")
    if ndim == 0:
        raise ValueError(f"{name}: the arguments need a class axis, got scalars.")
    (axis,) = validation.check_axis(name, axis, ndim)
    return axis - ndim  # negative: counts from the end, whatever the batch rank


def _densities_inputs(name: str, data: dict, logits, temperature, axis: int):
    """Promoted (data, logits, temperature), the class axis (negative), and the temperature,
    checked against the batch shape, with a class axis of size 1 where it has batch axes
    before that of the classes."""
    (value, logits, temperature) = validation.promote(
        name, {"logits": logits, "temperature": temperature}, data, broadcast=False
    )
    (data_name,) = data
    shape = validation.check_broadcast(name, {data_name: value.shape, "logits": logits.shape})
    axis = _class_axis(name, axis, len(shape))
    validation.check_classes_among(
        name, {"logits": logits.shape, data_name: value.shape}, (axis % len(shape),)
    )
    batch = shape[:axis] + (shape[axis + 1 :] if axis != -1 else ())
    validation.check_broadcast(name, {"temperature": temperature.shape, "batch": batch})
    relaxed.check_temperature(name, temperature)
    # The class axis goes in without broadcasting to the batch: a scalar temperature stays
    # a scalar (broadcast, it made log_prob 1.25x slower on one XLA:CPU core).
    after = -axis - 1  # batch axes after the class axis
    if temperature.ndim > after:
        temperature = jnp.expand_dims(temperature, temperature.ndim - after)
    full = jnp.broadcast_shapes(shape, temperature.shape)
    if full != shape:
        # The temperature has batch axes the data lacks: the data goes to the result's
        # shape, so that every array has its rank and the class axis is one axis of all.
        value, logits = jnp.broadcast_to(value, full), jnp.broadcast_to(logits, full)
    return value, logits, temperature, axis


def _per_row(temperature: Array, axis: int) -> Array:
    """The temperature of :func:`_densities_inputs` without its class axis, if it has one."""
    return jnp.squeeze(temperature, axis) if temperature.ndim >= -axis else temperature


def _log_gamma(count: Array, classes: int, dtype) -> Array:
    """:math:`\\log\\Gamma(K')` of the active-class counts, from a table of Python floats:
    jax's gammaln is off by a few ulps at small integers (4.8e-7 at 1 in float32), and
    :math:`\\log\\Gamma(1) = 0` should be exact."""
    return jnp.asarray([math.inf] + [math.lgamma(n) for n in range(1, classes + 1)], dtype)[count]


def _log_density(log_y: Array, logits: Array, temperature: Array, axis: int) -> Array:
    """ExpConcrete log-density of the K' - 1 log-ratios of ``log_y`` (classes along ``axis``),
    over the classes of finite logit; -inf where an active log y is not finite or an
    inactive class (logit -inf) has a nonzero y."""
    log_y, logits = jnp.broadcast_arrays(log_y, logits)
    active = logits > -jnp.inf
    bad_inactive = jnp.any(~active & (log_y > -jnp.inf), axis=axis)
    bad_active = jnp.any(active & ~jnp.isfinite(log_y), axis=axis)
    count = jnp.sum(active, axis=axis)
    num_active = count.astype(log_y.dtype)
    log_gamma = _log_gamma(count, log_y.shape[axis], log_y.dtype)
    # Double where: the dropped classes (and non-finite log y, whose density is 0 anyway)
    # are evaluated at 0, so that no inf - inf reaches the value or the gradient.
    usable = active & jnp.isfinite(log_y)
    terms = jnp.where(usable, logits - temperature * jnp.where(usable, log_y, 0.0), -jnp.inf)
    safe_terms = jnp.where(usable, terms, 0.0)
    # log Gamma(K') + (K' - 1) log(lambda) + sum_k a_k - K' logsumexp_k a_k, a_k = l_k - lambda x_k;
    # logsumexp in log space: the terms are of size l / lambda, 1e7 at l = 1e4, lambda = 1e-3.
    value = (
        log_gamma
        + (num_active - 1.0) * jnp.log(_per_row(temperature, axis))
        + jnp.sum(safe_terms, axis=axis)
        - num_active * special.logsumexp(terms, (log_y.ndim + axis,))
    )
    value = jnp.where(bad_inactive | bad_active, -jnp.inf, value)
    undefined = jnp.any(jnp.isnan(log_y) | jnp.isnan(logits) | (logits == jnp.inf), axis=axis)
    undefined = undefined | (num_active == 0)
    value = jnp.where(undefined, jnp.nan, value)
    return relaxed.nan_unless_positive(_per_row(temperature, axis), value)


def log_sample_log_prob(
    log_y: ArrayLike, *, logits: ArrayLike, temperature: ArrayLike, axis: int = -1
) -> Array:
    """Log-density of the log :math:`x = \\log y` of a relaxed categorical sample (ExpConcrete).

    .. math::

        \\log p(x \\mid \\ell, \\lambda) = \\log\\Gamma(K) + (K - 1)\\log\\lambda
        + \\sum_{k=1}^K (\\ell_k - \\lambda x_k)
        - K \\operatorname{logsumexp}_k (\\ell_k - \\lambda x_k)

    the density of the :math:`K - 1` log-ratios :math:`x_k - x_K`. It depends on :math:`x` only
    through them (adding a constant to every :math:`x_k` changes nothing), so unnormalised log
    probabilities such as :math:`(\\ell + g)/\\lambda` give the same value as their
    ``log_softmax``. For :math:`K = 2` it is the logistic density of :math:`x_1 - x_2`,
    :func:`genmath.relaxed_bernoulli.logit_log_prob` with logit :math:`\\ell_1 - \\ell_2`.
    Classes of logit :math:`-\\infty` are dropped (:math:`K` counts the others) and need
    :math:`x_k = -\\infty`; any other non-finite :math:`x_k` has density 0 (:math:`-\\infty`).

    Args:
        log_y: :math:`x = \\log y` (what :func:`log_sample` returns), floating, classes along
            ``axis``, broadcastable with ``logits``.
        logits: :math:`\\ell`, floating, classes along ``axis``; :math:`-\\infty` allowed.
        temperature: :math:`\\lambda > 0`, floating, broadcastable with the batch shape (the
            broadcast shape of ``log_y`` and ``logits`` without ``axis``).
        axis: the class axis (an int); it is reduced.

    Returns:
        The log-density with the batch shape, in the compute dtype.

    Example:
        >>> import math
        >>> import jax.numpy as jnp
        >>> from genmath import relaxed_categorical
        >>> lp = relaxed_categorical.log_sample_log_prob(jnp.zeros(3), logits=jnp.zeros(3),
        ...                                              temperature=1.0)
        >>> print(round(float(lp), 4), round(math.log(2) - 3 * math.log(3), 4))
        -2.6027 -2.6027

    References:
        C. J. Maddison, A. Mnih and Y. W. Teh, "The Concrete Distribution: A Continuous
        Relaxation of Discrete Random Variables", ICLR 2017, App. B and C.
    """
    name = "relaxed_categorical.log_sample_log_prob"
    log_y, logits, temperature, axis = _densities_inputs(
        name, {"log_y": log_y}, logits, temperature, axis
    )
    return _log_density(log_y, logits, temperature, axis)


def log_prob(y: ArrayLike, *, logits: ArrayLike, temperature: ArrayLike, axis: int = -1) -> Array:
    """Log-density of a relaxed categorical sample :math:`y` on the simplex (Concrete).

    .. math::

        p(y \\mid \\ell, \\lambda) = (K - 1)!\\, \\lambda^{K - 1} \\prod_{k=1}^K
        \\frac{e^{\\ell_k} y_k^{-\\lambda - 1}}{\\sum_{j=1}^K e^{\\ell_j} y_j^{-\\lambda}},
        \\qquad
        \\log p(y) = \\log p_{\\log}(\\log y) - \\sum_k \\log y_k

    with respect to Lebesgue measure on :math:`K - 1` coordinates of the simplex, computed
    from :func:`log_sample_log_prob` (in log space: the powers :math:`y_k^{-\\lambda}`
    overflow). ``y`` must lie on the simplex: where its coordinates do not sum to 1 within
    :math:`\\sqrt{\\epsilon}` of the coarser of ``y``'s own dtype and the compute dtype
    (:math:`3.5 \\times 10^{-4}` for float32 ``y``, also against float64 logits) the result
    is NaN, as it is where a coordinate is negative. On the boundary (a coordinate 0 of
    a class with finite logit), where samples at small temperatures land by underflow, the
    density is not defined and the result is NaN: use :func:`log_sample` and
    :func:`log_sample_log_prob` there. Classes of logit :math:`-\\infty` are dropped and need
    :math:`y_k = 0` (else :math:`-\\infty`).

    Args:
        y: relaxed samples (what :func:`sample` returns), floating, classes along ``axis``,
            broadcastable with ``logits``.
        logits: :math:`\\ell`, floating, classes along ``axis``; :math:`-\\infty` allowed.
        temperature: :math:`\\lambda > 0`, floating, broadcastable with the batch shape.
        axis: the class axis (an int); it is reduced.

    Returns:
        The log-density with the batch shape, in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import relaxed_categorical
        >>> lp = relaxed_categorical.log_prob(jnp.array([0.25, 0.75]), logits=jnp.zeros(2),
        ...                                   temperature=1.0)
        >>> print(round(float(lp), 4))  # K = 2, lambda = 1, equal logits: uniform
        0.0

    References:
        C. J. Maddison, A. Mnih and Y. W. Teh, "The Concrete Distribution: A Continuous
        Relaxation of Discrete Random Variables", ICLR 2017, Definition 1 and eq. (4).
    """
    name = "relaxed_categorical.log_prob"
    validation.check_array_like(name, "y", y)  # before jnp.result_type names nothing
    given = jnp.result_type(y)  # y's own precision, before promotion
    y, logits, temperature, axis = _densities_inputs(name, {"y": y}, logits, temperature, axis)
    y, logits = jnp.broadcast_arrays(y, logits)
    # The simplex test allows sqrt(eps) of the coarser of y's own dtype and the compute
    # dtype: a float32 (or bfloat16) sample promoted to float64 (or float32) keeps the
    # rounding of its own dtype, and was judged off the simplex at the finer one.
    eps = jnp.finfo(y.dtype).eps
    if jnp.issubdtype(given, jnp.floating):
        eps = max(eps, jnp.finfo(given).eps)
    tolerance = float(eps) ** 0.5
    return _log_prob(y, logits, temperature, axis, tolerance)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _row_sums(arrays: tuple[Array, ...], axis: int) -> tuple[Array, ...]:
    """The sums of several arrays of one shape along ``axis``, in one pass.

    A variadic reduce: XLA:CPU fuses the elementwise work that produces the arrays into it,
    where separate sums each read a materialised array (``log_prob`` forward 0.9x the jnp
    formula with it, 1.1x without). Differentiable through the rule below.
    """
    zeros = tuple(jnp.zeros((), a.dtype) for a in arrays)
    add = lambda left, right: tuple(u + v for u, v in zip(left, right, strict=True))
    return tuple(jax.lax.reduce(tuple(arrays), zeros, add, (arrays[0].ndim + axis,)))


@_row_sums.defjvp
def _row_sums_jvp(axis, primals, tangents):
    ((arrays,), (arrays_dot,)) = primals, tangents
    return _row_sums(arrays, axis), tuple(jnp.sum(a, axis=axis) for a in arrays_dot)


def _defined(value: Array, y_sum: Array, temperature: Array, axis: int, tolerance: float) -> Array:
    """``value``, NaN off the simplex (NaN fails the comparison) or for a non-positive
    temperature."""
    on_simplex = jnp.abs(y_sum - 1.0) <= tolerance
    value = jnp.where(on_simplex, value, jnp.nan)
    return relaxed.nan_unless_positive(_per_row(temperature, axis), value)


class _Parts(NamedTuple):
    """What the value and the derivatives of :func:`log_prob` share.

    ``value``, with the batch shape; ``log_y``, 0 for a dropped class at y = 0;
    ``exps``, :math:`e^{a_k - \\max_j a_j}` with :math:`a_k = \\ell_k - \\lambda\\log y_k`,
    ``-0.0`` (sign bit set) exactly at the dropped classes; ``scale``, :math:`K' / \\sum_k
    e^{a_k - \\max_j a_j}`, so that the weights :math:`w_k = K' \\operatorname{softmax}_k a_k`
    are ``scale * exps``; ``num_active``, :math:`K'`. The derivative rule forms the weights
    itself, fused with the cotangent's product: one pass over the classes fewer.
    """

    value: Array
    log_y: Array
    exps: Array
    scale: Array
    num_active: Array


def _plain_parts(
    y: Array, logits: Array, temperature: Array, axis: int, tolerance: float
) -> _Parts:
    """:func:`log_prob` without a mask, right wherever no logit is -inf: then every
    undefined case comes out of the arithmetic as NaN (y < 0 or NaN, a NaN logit; y = 0 or a
    logit of +inf give +inf in both the own terms and the logsumexp, hence inf - inf)."""
    classes = y.shape[axis]
    log_y = jnp.log(y)
    # log Gamma(K) + (K - 1) log(lambda) + sum_k own_k - K logsumexp_k shared_k, with the
    # own terms l - (lambda + 1) log y (the density's product and the Jacobian of the
    # log-ratios) and the logsumexp's l - lambda log y.
    own_sum, y_sum = _row_sums((logits - (temperature + 1.0) * log_y, y), axis)
    shared = logits - temperature * log_y
    # logsumexp by hand, in log space (the terms are of size l / lambda, 1e7 at l = 1e4),
    # keeping its exponentials for the derivatives.
    top = jnp.max(shared, axis=axis, keepdims=True)
    exps = jnp.exp(shared - top)
    total = jnp.sum(exps, axis=axis)
    value = (
        math.lgamma(classes)
        + (classes - 1.0) * jnp.log(_per_row(temperature, axis))
        + own_sum
        - classes * (jnp.squeeze(top, axis) + jnp.log(total))
    )
    num_active = jnp.full_like(total, classes)
    return _Parts(
        _defined(value, y_sum, temperature, axis, tolerance),
        log_y,
        exps,
        classes / total,
        num_active,
    )


def _masked_parts(
    y: Array, logits: Array, temperature: Array, axis: int, tolerance: float
) -> _Parts:
    """:func:`log_prob` with dropped classes (logit -inf)."""
    dropped = logits == -jnp.inf
    # A dropped class at y = 0 is the one case plain arithmetic gets wrong (-inf + inf):
    # its log y is taken as 0 (and its logit as 0 in its own term). Every other case comes
    # out of the arithmetic as in _plain_parts; a dropped class with mass gives an own
    # term of -inf, hence -inf.
    at_zero = dropped & (y == 0)
    # Double where: log(0) there would send 0 * inf = NaN through reverse-over-reverse
    # differentiation of the derivative rule's coefficients.
    log_y = jnp.where(at_zero, 0.0, jnp.log(jnp.where(at_zero, 1.0, y)))
    own = jnp.where(at_zero, 0.0, logits) - (temperature + 1.0) * log_y
    shared = logits - temperature * log_y  # -inf exactly at the dropped classes
    own_sum, y_sum, num_active = _row_sums((own, y, (~dropped).astype(y.dtype)), axis)
    top = jnp.max(shared, axis=axis, keepdims=True)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    # A dropped class gets -0.0: the sums are unchanged, and its sign marks it for the
    # derivative rule without reading the logits again.
    exps = jnp.where(shared == -jnp.inf, -0.0, jnp.exp(shared - top))
    total = jnp.sum(exps, axis=axis)
    log_sum_exp = jnp.squeeze(top, axis) + jnp.log(total)
    value = (
        _log_gamma(num_active.astype(jnp.int32), y.shape[axis], y.dtype)  # inf when K' = 0
        + (num_active - 1.0) * jnp.log(_per_row(temperature, axis))
        + own_sum
        - num_active * log_sum_exp
    )
    value = _defined(value, y_sum, temperature, axis, tolerance)
    return _Parts(value, log_y, exps, num_active / total, num_active)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _log_prob(y: Array, logits: Array, temperature: Array, axis: int, tolerance: float) -> Array:
    """The forward pass: the plain form, and the masked one only if some result is not
    finite (a dropped class gives -inf or NaN in the plain form; the masked form then
    decides), chosen once for the whole batch with ``lax.cond``. The masked form took about
    1.2x the plain one's time forward on one XLA:CPU core, and a batch with no -inf logit
    never needs it."""
    plain = _plain_parts(y, logits, temperature, axis, tolerance).value
    return jax.lax.cond(
        jnp.all(jnp.isfinite(plain)),
        lambda: plain,
        lambda: _masked_parts(y, logits, temperature, axis, tolerance).value,
    )


def _log_prob_jvp(axis, tolerance, primals, tangents):
    """Derivatives in closed form, only for the arguments that have a tangent (symbolic
    zeros): with :math:`w_k = K'\\operatorname{softmax}_k`,
    :math:`\\partial/\\partial\\ell_k = 1 - w_k`,
    :math:`\\partial/\\partial y_k = (\\lambda w_k - \\lambda - 1)/y_k` and
    :math:`\\partial/\\partial\\lambda = (K' - 1)/\\lambda - \\sum_k (1 - w_k)\\log y_k`,
    0 for a dropped class. Autodiff of the masked form cost 1.3x the jnp formula's gradient
    on one XLA:CPU core, mostly for the tangents of the arguments held fixed.

    The masked form runs only when some logit is -inf, chosen once for the whole batch by
    ``lax.cond`` on the smallest logit (a NaN logit also takes the masked form): its
    count of the active classes and its guard of the dropped ones cost 15 % of the
    gradient's time (1.15x the jnp formula against 1.0x without them)."""
    y, logits, temperature = primals
    y_dot, logits_dot, temperature_dot = tangents
    parts = jax.lax.cond(
        # An empty batch has no minimum (and needs no mask).
        jnp.min(logits, initial=jnp.inf) > -jnp.inf,
        functools.partial(_plain_parts, axis=axis, tolerance=tolerance),
        functools.partial(_masked_parts, axis=axis, tolerance=tolerance),
        y,
        logits,
        temperature,
    )
    weights = jnp.expand_dims(parts.scale, axis) * parts.exps
    dropped = jnp.signbit(parts.exps)
    tangent = jnp.zeros_like(parts.value)
    if not isinstance(logits_dot, SymbolicZero):
        coefficient = jnp.where(dropped, 0.0, 1.0 - weights)
        tangent = tangent + jnp.sum(coefficient * logits_dot, axis=axis)
    if not isinstance(y_dot, SymbolicZero):
        # Double where: no 1/0 from a dropped class at y = 0.
        log_y_dot = jnp.where(dropped, 0.0, y_dot / jnp.where(dropped, 1.0, y))
        coefficient = temperature * weights - (temperature + 1.0)
        tangent = tangent + jnp.sum(coefficient * log_y_dot, axis=axis)
    if not isinstance(temperature_dot, SymbolicZero):
        rate = (parts.num_active - 1.0) / _per_row(temperature, axis)
        coefficient = rate - jnp.sum(parts.log_y - weights * parts.log_y, axis=axis)
        tangent = tangent + coefficient * _per_row(temperature_dot, axis)
    return parts.value, jnp.broadcast_to(tangent, parts.value.shape)


_log_prob.defjvp(_log_prob_jvp, symbolic_zeros=True)


def _log_sample(name: str, key: Key, logits, temperature, sample_shape) -> Array:
    logits, temperature = validation.promote(
        name, {"logits": logits, "temperature": temperature}, broadcast=False
    )
    if logits.ndim == 0:
        raise ValueError(f"{name}: `logits` needs a class axis, got a scalar.")
    validation.check_classes(name, "logits", logits.shape, (logits.ndim - 1,))
    batch = validation.check_broadcast(
        name,
        {"logits (without the class axis)": logits.shape[:-1], "temperature": temperature.shape},
    )
    relaxed.check_temperature(name, temperature)
    shape = validation.sample_shape(name, sample_shape) + batch + logits.shape[-1:]
    # The upper tail to about 44 (jax.random.gumbel's float32 one stops near 15.9).
    gumbel = sampling.gumbel_noise(key, shape, logits.dtype)
    temperature = temperature[..., None]
    dropped = logits == -jnp.inf
    # Double where: (-inf + g) / lambda would give the temperature a gradient of inf * 0.
    scaled = jnp.where(dropped, -jnp.inf, (jnp.where(dropped, 0.0, logits) + gumbel) / temperature)
    # log_softmax shifts by the maximum first: the scaled values reach 1e7 (l = 1e4 at
    # lambda = 1e-3), where exp would overflow.
    log_y = jax.nn.log_softmax(scaled, axis=-1)
    return relaxed.nan_unless_positive(temperature, log_y)


def log_sample(
    key: Key,
    *,
    logits: ArrayLike,
    temperature: ArrayLike,
    sample_shape: SampleShape = (),
) -> Array:
    """Reparameterised samples of :math:`\\log y`, the log of a relaxed categorical sample.

    .. math::

        \\log y = \\operatorname{log\\_softmax}\\Big(\\frac{\\ell + g}{\\lambda}\\Big),
        \\qquad g_k \\sim \\mathrm{Gumbel}(0, 1)

    Finite for every finite logit at every temperature (``log_softmax`` shifts by the maximum:
    no overflow at :math:`\\ell = 10^4`, :math:`\\lambda = 10^{-3}`), and :math:`-\\infty` for
    classes of logit :math:`-\\infty`, with finite gradients to ``logits`` and
    ``temperature``. Its ``argmax`` is a :math:`\\mathrm{Categorical}(\\operatorname{softmax}
    \\ell)` sample.

    Args:
        key: a ``jax.random`` key.
        logits: :math:`\\ell`, floating, classes on the last axis; :math:`-\\infty` allowed.
        temperature: :math:`\\lambda > 0`, floating, broadcastable with the batch shape
            ``logits.shape[:-1]``.
        sample_shape: shape of the independent draws, prepended to the batch shape: an int
            ``n`` (meaning ``(n,)``) or a tuple.

    Returns:
        :math:`\\log y` of shape ``sample_shape + batch shape + (K,)``, in the compute dtype.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import relaxed_categorical
        >>> log_y = relaxed_categorical.log_sample(jax.random.key(0), logits=jnp.zeros((2, 5)),
        ...                                        temperature=0.5, sample_shape=4)
        >>> log_y.shape, bool(jnp.allclose(jnp.exp(log_y).sum(-1), 1.0))
        ((4, 2, 5), True)

    References:
        C. J. Maddison, A. Mnih and Y. W. Teh, "The Concrete Distribution: A Continuous
        Relaxation of Discrete Random Variables", ICLR 2017, App. C.
    """
    return _log_sample("relaxed_categorical.log_sample", key, logits, temperature, sample_shape)


def sample(
    key: Key,
    *,
    logits: ArrayLike,
    temperature: ArrayLike,
    sample_shape: SampleShape = (),
) -> Array:
    """Reparameterised relaxed categorical (Gumbel-softmax) samples on the simplex.

    .. math::

        y = \\operatorname{softmax}\\Big(\\frac{\\ell + g}{\\lambda}\\Big),
        \\qquad g_k \\sim \\mathrm{Gumbel}(0, 1)

    Computed as the ``exp`` of :func:`log_sample`, so it never overflows; at small
    temperatures coordinates underflow to 0 (and one rounds to 1). The one-hot vector of its
    largest coordinate is a :math:`\\mathrm{Categorical}(\\operatorname{softmax}\\ell)` sample.

    Args:
        key: a ``jax.random`` key.
        logits: :math:`\\ell`, floating, classes on the last axis; :math:`-\\infty` allowed.
        temperature: :math:`\\lambda > 0`, floating, broadcastable with the batch shape.
        sample_shape: shape of the independent draws, prepended to the batch shape.

    Returns:
        Points of the simplex of shape ``sample_shape + batch shape + (K,)``, in the compute
        dtype.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import relaxed_categorical
        >>> y = relaxed_categorical.sample(jax.random.key(0), logits=jnp.zeros(5),
        ...                                temperature=0.5, sample_shape=3)
        >>> y.shape, bool(jnp.allclose(y.sum(-1), 1.0))
        ((3, 5), True)

    References:
        E. Jang, S. Gu and B. Poole, "Categorical Reparameterization with Gumbel-Softmax",
        ICLR 2017, eq. (1); C. J. Maddison, A. Mnih and Y. W. Teh, "The Concrete
        Distribution", ICLR 2017.
    """
    log_y = _log_sample("relaxed_categorical.sample", key, logits, temperature, sample_shape)
    return relaxed.keep_nan(jnp.exp, log_y)


def _one_hot_of_largest(log_or_y: Array, axis: int) -> Array:
    largest = jnp.argmax(log_or_y, axis=axis, keepdims=True)
    classes = jax.lax.broadcasted_iota(jnp.int32, log_or_y.shape, log_or_y.ndim + axis)
    return (classes == largest).astype(log_or_y.dtype)


def straight_through(y: ArrayLike, *, axis: int = -1) -> Array:
    """Straight-through estimator: the one-hot vector of :math:`\\arg\\max_k y_k` forward, the
    gradient of :math:`y` backward.

    .. math::

        h = \\operatorname{one\\_hot}(\\arg\\max_k y_k) + y - \\operatorname{stop\\_gradient}(y),
        \\qquad \\frac{\\partial h}{\\partial y} = I

    The value is exactly one-hot (the first of tied maxima), so a downstream model sees a
    discrete choice, while gradients flow as if it had seen :math:`y`: a biased but
    low-variance gradient.

    Args:
        y: relaxed samples (or anything whose ``argmax`` is the class), floating, classes
            along ``axis``.
        axis: the class axis (an int).

    Returns:
        One-hot vectors with the shape of ``y``, in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import relaxed_categorical
        >>> print(relaxed_categorical.straight_through(jnp.array([0.2, 0.5, 0.3])))
        [0. 1. 0.]

    References:
        E. Jang, S. Gu and B. Poole, "Categorical Reparameterization with Gumbel-Softmax",
        ICLR 2017, §2.2.
    """
    name = "relaxed_categorical.straight_through"
    (y,) = validation.promote(name, {"y": y})
    axis = _class_axis(name, axis, y.ndim)
    return _one_hot_of_largest(y, axis) + (y - jax.lax.stop_gradient(y))


def straight_through_sample(
    key: Key,
    *,
    logits: ArrayLike,
    temperature: ArrayLike,
    sample_shape: SampleShape = (),
) -> Array:
    """One-hot categorical samples with the relaxed sample's gradient (straight-through
    Gumbel-softmax).

    .. math::

        h = \\operatorname{one\\_hot}\\big(\\arg\\max_k (\\ell_k + g_k)\\big) + y
        - \\operatorname{stop\\_gradient}(y), \\qquad
        y = \\operatorname{softmax}\\Big(\\frac{\\ell + g}{\\lambda}\\Big)

    The values are one-hot :math:`\\mathrm{Categorical}(\\operatorname{softmax}\\ell)` samples
    (the class is taken from :math:`\\log y`, which keeps the order of
    :math:`\\ell + g` where :math:`y` would have underflowed to ties), the gradients those of
    :func:`sample`'s :math:`y`.

    Args:
        key: a ``jax.random`` key.
        logits: :math:`\\ell`, floating, classes on the last axis; :math:`-\\infty` allowed.
        temperature: :math:`\\lambda > 0` of the relaxation that gives the gradients,
            floating, broadcastable with the batch shape.
        sample_shape: shape of the independent draws, prepended to the batch shape.

    Returns:
        One-hot vectors of shape ``sample_shape + batch shape + (K,)``, in the compute dtype.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import relaxed_categorical
        >>> h = relaxed_categorical.straight_through_sample(
        ...     jax.random.key(0), logits=jnp.zeros(5), temperature=0.5, sample_shape=3)
        >>> print(h.sum(-1), bool(jnp.all((h == 0) | (h == 1))))
        [1. 1. 1.] True

    References:
        E. Jang, S. Gu and B. Poole, "Categorical Reparameterization with Gumbel-Softmax",
        ICLR 2017, §2.2.
    """
    name = "relaxed_categorical.straight_through_sample"
    log_y = _log_sample(name, key, logits, temperature, sample_shape)
    y = relaxed.keep_nan(jnp.exp, log_y)
    return _one_hot_of_largest(log_y, -1) + (y - jax.lax.stop_gradient(y))

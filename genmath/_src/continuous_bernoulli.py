"""Elementwise moments and quantiles of the continuous Bernoulli distribution.

With natural parameter :math:`\\eta` the density on :math:`[0, 1]` is
:math:`p(x) = e^{\\eta x - A(\\eta)}`, :math:`A(\\eta) = \\log\\frac{e^\\eta - 1}{\\eta}`, so
the mean is :math:`A'`, the variance :math:`A''` and the entropy :math:`A - \\eta A'`. With
:math:`t = \\eta / 2`, :math:`s = t^2`, :math:`u = \\sinh t / t - 1` and
:math:`t\\cosh t - \\sinh t = t s W(s)`:

* :math:`A = t + \\log(1 + u)`,
* mean :math:`= \\tfrac12 + \\tfrac t2 \\, W / (1 + u)` (:math:`\\tfrac12(1 + \\coth t - 1/t)`),
* variance :math:`= \\tfrac14 \\, U (2 + u) / (1 + u)^2` with :math:`U = u / s`,
* entropy :math:`= \\log(1 + u) - s W / (1 + u)` (:math:`1 + \\log\\frac{\\sinh t}{t} -
  t\\coth t`).

:math:`U` and :math:`W` are power series in :math:`s` with positive coefficients
(:math:`1/(2k+1)!` and :math:`2k/(2k+1)!`), free of cancellation, used for
:math:`|\\eta| < 3`; beyond, closed forms in :math:`e^{-|\\eta|}` that cannot overflow.
Every function is accurate to a few ulps (the entropy to a few ulps of itself, though it
is a difference: near 0 it is :math:`-\\eta^2/24`), and the derivatives are given in
closed form (custom JVPs), so that they are as accurate as the values.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from genmath._src import special
from genmath._src.typing import Array

# Series for |eta| < 3, that is s = (eta / 2)^2 < 2.25; closed forms beyond.
_SERIES_LIMIT = 3.0
_S_MAX = (_SERIES_LIMIT / 2.0) ** 2


def _degree(dtype) -> int:
    """Number of terms of U and W for relative truncation error below eps / 16 at s_max."""
    eps = float(jnp.finfo(dtype).eps)
    k = 1
    # The first omitted term of W (the larger), relative to W(0) = 1/3.
    while 3.0 * 2 * (k + 1) * _S_MAX**k / math.factorial(2 * k + 3) > eps / 16:
        k += 1
    return k + 1


def _series(s: Array) -> tuple[Array, Array, Array]:
    """``(u, U, W)`` at ``s``: ``u = s U``, ``U = sum s^k / (2k+3)!``, ``W = sum (2k+2)
    s^k / (2k+3)!`` (Horner, all terms positive)."""
    u_series = jnp.zeros_like(s)
    w_series = jnp.zeros_like(s)
    for k in range(_degree(s.dtype) - 1, -1, -1):
        u_series = u_series * s + 1.0 / math.factorial(2 * k + 3)
        w_series = w_series * s + (2.0 * k + 2.0) / math.factorial(2 * k + 3)
    return s * u_series, u_series, w_series


def _split(logits: Array):
    """``(small, s, a)``: the series mask, ``s`` where it applies (0 elsewhere) and
    ``|eta|`` where the closed forms apply (the series limit elsewhere)."""
    magnitude = jnp.abs(logits)
    small = magnitude < _SERIES_LIMIT
    # Double where: each branch only ever sees inputs it handles (no inf * 0, no 1/0).
    s = jnp.square(jnp.where(small, logits, 0.0) * 0.5)
    a = jnp.where(small, _SERIES_LIMIT, magnitude)
    return small, s, a


def _mean_value(logits: Array) -> Array:
    small, s, a = _split(logits)
    u, _, w = _series(s)
    series = 0.5 + 0.25 * jnp.where(small, logits, 0.0) * w / (1.0 + u)
    # 1/(1 - e^-a) - 1/a for eta > 0 and 1/a - 1/(e^a - 1) for eta < 0: each a difference
    # of terms at most 1.5x the result for a >= 3, and 1, 0 at a = inf.
    upper = 1.0 / (-jnp.expm1(-a)) - 1.0 / a
    lower = 1.0 / a - 1.0 / jnp.expm1(a)
    return jnp.where(small, series, jnp.where(logits > 0, upper, lower))


def variance(logits: Array) -> Array:
    """Variance :math:`A''(\\eta)`: 1/12 at 0, 0 at :math:`\\pm\\infty` (even)."""
    small, s, a = _split(logits)
    u, u_over_s, _ = _series(s)
    series = 0.25 * u_over_s * (2.0 + u) / jnp.square(1.0 + u)
    # 1/a^2 - 1/(4 sinh^2(a/2)), the second term as e^-a / (1 - e^-a)^2 (no overflow).
    closed = 1.0 / jnp.square(a) - jnp.exp(-a) / jnp.square(jnp.expm1(-a))
    return jnp.where(small, series, closed)


@jax.custom_jvp
def mean(logits: Array) -> Array:
    """Mean :math:`A'(\\eta) = 1/(1 - e^{-\\eta}) - 1/\\eta` (1/2 at 0, 1 and 0 at
    :math:`\\pm\\infty`)."""
    return _mean_value(logits)


@mean.defjvp
def _mean_jvp(primals, tangents):
    (logits,), (tangent,) = primals, tangents
    return _mean_value(logits), variance(logits) * tangent


def _log_partition_value(logits: Array) -> Array:
    small, s, a = _split(logits)
    u, _, _ = _series(s)
    series = 0.5 * jnp.where(small, logits, 0.0) + jnp.log1p(u)
    # log((e^eta - 1) / eta) = max(eta, 0) + log(1 - e^-a) - log a.
    closed = jnp.maximum(logits, 0.0) + jnp.log1p(-jnp.exp(-a)) - jnp.log(a)
    return jnp.where(small, series, closed)


@jax.custom_jvp
def log_partition(logits: Array) -> Array:
    """:math:`A(\\eta) = \\log\\frac{e^\\eta - 1}{\\eta} = -\\log C(\\eta) - \\log\\sigma(-\\eta)`
    (finite logits only)."""
    return _log_partition_value(logits)


@log_partition.defjvp
def _log_partition_jvp(primals, tangents):
    (logits,), (tangent,) = primals, tangents
    return _log_partition_value(logits), mean(logits) * tangent


def _entropy_value(logits: Array) -> Array:
    small, s, a = _split(logits)
    u, _, w = _series(s)
    series = jnp.log1p(u) - s * w / (1.0 + u)
    # 1 + log(sinh t / t) - t coth t = 1 - log a + log(1 - e^-a) - a / (e^a - 1).
    closed = 1.0 - jnp.log(a) + jnp.log1p(-jnp.exp(-a)) - a / jnp.expm1(a)
    return jnp.where(small, series, closed)


@jax.custom_jvp
def entropy(logits: Array) -> Array:
    """Differential entropy :math:`A - \\eta A'` (0 at 0, about :math:`1 - \\log|\\eta|` for
    large :math:`|\\eta|`; finite logits only)."""
    return _entropy_value(logits)


@entropy.defjvp
def _entropy_jvp(primals, tangents):
    (logits,), (tangent,) = primals, tangents
    return _entropy_value(logits), -logits * variance(logits) * tangent


# --- the quantile function (inverse CDF) and its derivatives ---------------------------


def _quantile_parts(logits: Array, uniform: Array):
    """``(x, a, safe_a, y, arg, tiny, finite)``: the quantile ``x``; ``a = |eta|`` (and
    ``safe_a``, 1 where ``a`` is tiny or infinite); the quantile
    ``y`` of the mirrored distribution with logit ``-a`` (``x = y`` for eta <= 0,
    ``1 - y`` for eta > 0); ``arg = e^{-a y}``; the mask of ``a`` below sqrt(eps), where
    first-order expansions in ``a`` are used, and that of finite ``a``."""
    a = jnp.abs(logits)
    positive = logits > 0
    # For eta > 0 use the mirror image, 1 - x ~ CB(-eta) at 1 - u: every quantity is then
    # in e^{-a} (no overflow), and each tail keeps its precision.
    v = jnp.where(positive, 1.0 - uniform, uniform)
    one_minus_v = jnp.where(positive, uniform, 1.0 - uniform)  # 1 - v without rounding v
    tiny = a < math.sqrt(float(jnp.finfo(logits.dtype).eps))
    finite = jnp.isfinite(a)
    safe_a = jnp.where(tiny | ~finite, 1.0, a)
    mass = -jnp.expm1(-safe_a)  # 1 - e^{-a}
    # F(y) = (1 - e^{-a y}) / (1 - e^{-a}) = v, so e^{-a y} = 1 - v (1 - e^{-a}): near 1
    # from the small difference (log1p), far from 1 as (1 - v) + v e^{-a} (no
    # cancellation). (log1p only on (-1/4, 0]: XLA's float64 log1p on CPU is off by up to
    # ~120 ulps on (-0.5, -0.3).)
    drop = v * mass
    arg = jnp.where(drop < 0.5, 1.0 - drop, one_minus_v + v * jnp.exp(-safe_a))
    log_arg = jnp.where(drop < 0.25, jnp.log1p(-drop), jnp.log(arg))
    y = -log_arg / safe_a
    # y = v - v (1 - v) a / 2 + O(a^2) near a = 0; a point mass at 0 for a = inf.
    y = jnp.where(tiny, v - 0.5 * v * one_minus_v * a, jnp.where(finite, y, 0.0))
    # Rounding may step just outside [0, 1] (e.g. v = 1 and e^{-a} below eps).
    y = jnp.clip(y, 0.0, 1.0)
    x = jnp.where(positive, 1.0 - y, y)
    return x, a, safe_a, y, arg, tiny, finite


@jax.custom_jvp
def quantile(logits: Array, uniform: Array) -> Array:
    """:math:`F^{-1}(u) = \\log(1 + u(e^\\eta - 1)) / \\eta` (:math:`u` at 0), computed
    without overflow at large :math:`|\\eta|`; 1 and 0 at :math:`\\eta = \\pm\\infty`."""
    return _quantile_parts(logits, uniform)[0]


@quantile.defjvp
def _quantile_jvp(primals, tangents):
    logits, uniform = primals
    tangent_logits, tangent_uniform = tangents
    x, a, safe_a, y, arg, tiny, finite = _quantile_parts(logits, uniform)
    w = 1.0 - y
    mass = -jnp.expm1(-safe_a)
    # dx/d eta = -(dF/d eta) / p(x): the same expression in y for both signs of eta,
    # N / (a (1 - e^{-a})) with N = w expm1(-a) - expm1(-a w). For a <= 2 its linear
    # parts are cancelled exactly, N = w emi(-a) - emi(-a w) (emi(r) = e^r - 1 - r); for
    # a > 2 the typical y are small, where N = y + w e^{-a} - e^{-a w} keeps them exact.
    small_a = safe_a <= 2.0
    numerator_small = w * special.expm1_minus_identity(-safe_a) - special.expm1_minus_identity(
        -safe_a * w
    )
    numerator_large = jnp.where(
        y < 0.5,
        y + w * jnp.exp(-safe_a) - jnp.exp(-safe_a * w),
        w * jnp.expm1(-safe_a) - jnp.expm1(-safe_a * w),
    )
    numerator = jnp.where(small_a, numerator_small, numerator_large)
    d_logits = jnp.where(
        tiny, 0.5 * y * w * (1.0 + a * (2.0 * y - 1.0) / 6.0), numerator / (safe_a * mass)
    )
    # dx/du = 1 / p(x) = (1 - e^{-a}) / (a e^{-a y}) in the mirrored frame (the same for
    # both signs), 1 + a (y - 1/2) to first order near a = 0.
    d_uniform = jnp.where(tiny, 1.0 + a * (y - 0.5), mass / (safe_a * arg))
    # A point mass (eta = +-inf) does not move.
    d_logits = jnp.where(finite, d_logits, 0.0)
    d_uniform = jnp.where(finite, d_uniform, 0.0)
    return x, d_logits * tangent_logits + d_uniform * tangent_uniform

"""Elementwise moments and quantiles of the continuous Bernoulli distribution.

With natural parameter :math:`\\eta` the density on :math:`[0, 1]` is
:math:`p(x) = e^{\\eta x - A(\\eta)}`, :math:`A(\\eta) = \\log\\frac{e^\\eta - 1}{\\eta}`.
Writing :math:`(e^\\eta - 1)/\\eta = e^{\\eta/2} \\sinh(\\eta/2) / (\\eta/2)`, everything
follows from one even function,

.. math::

    \\ell(\\eta) = \\log\\frac{\\sinh(\\eta/2)}{\\eta/2}:
    \\quad A = \\tfrac\\eta2 + \\ell, \\quad \\text{mean } A' = \\tfrac12 + \\ell',
    \\quad \\text{variance } A'' = \\ell'', \\quad \\text{entropy } A - \\eta A'
    = \\ell - \\eta\\ell',

and :math:`\\log p(x) = (x - \\tfrac12)\\eta - \\ell(\\eta)`, the KL divergence the Bregman
divergence :math:`\\ell(\\eta_q) - \\ell(\\eta_p) - (\\eta_q - \\eta_p)\\ell'(\\eta_p)`.
For :math:`|\\eta| < 3` each is a power series in :math:`s = \\eta^2/4` from
:math:`\\ell = \\sum_{n \\ge 1} c_n s^n`, :math:`c_n = 4^n B_{2n} / (2n\\,(2n)!)` (Bernoulli
numbers; radius of convergence :math:`|\\eta| < 2\\pi`, so the terms shrink by about
:math:`(3/2\\pi)^2 \\approx 0.23` each at the limit and the alternating signs cancel at most
a factor 2); beyond, closed forms in :math:`E = e^{-|\\eta|}` that cannot overflow, with
:math:`1 - E` exact there. A polynomial instead of a ``log1p`` and divisions keeps each
function to one ``exp`` and at most one ``log`` per element; every value is accurate to a
few ulps (the entropy, a difference, to a few ulps of itself), and the derivatives are
given in closed form (custom JVPs), so that they are as accurate as the values.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax
import jax.numpy as jnp

from genmath._src import special
from genmath._src.typing import Array

# Series for |eta| < 3, that is s = (eta / 2)^2 < 2.25; closed forms beyond (there the
# closed forms cancel at most a factor 4, below it more).
_SERIES_LIMIT = 3.0
_S_MAX = (_SERIES_LIMIT / 2.0) ** 2


def _bernoulli_numbers(count: int) -> list[Fraction]:
    """B_0 .. B_{count - 1} exactly (the Akiyama-Tanigawa algorithm, B_1 = +1/2)."""
    row: list[Fraction] = []
    numbers = []
    for m in range(count):
        row.append(Fraction(1, m + 1))
        for j in range(m, 0, -1):
            row[j - 1] = j * (row[j - 1] - row[j])
        numbers.append(row[0])
    return numbers


def _coefficients(terms: int) -> list[Fraction]:
    """c_1 .. c_terms of log(sinh t / t) = sum c_n t^(2n)."""
    numbers = _bernoulli_numbers(2 * terms + 1)
    return [
        Fraction(4**n) * numbers[2 * n] / (2 * n * math.factorial(2 * n))
        for n in range(1, terms + 1)
    ]


_COEFFICIENTS = _coefficients(40)


# The series of l and of its derivatives: sum_n weight(n) c_n s^(n - 1).
_WEIGHTS = {
    "log_partition": lambda n: 1,  # l / s
    "mean": lambda n: n,  # 2 l' / eta
    "variance": lambda n: Fraction(n * (2 * n - 1), 2),  # l''
    "negentropy": lambda n: 2 * n - 1,  # (eta l' - l) / s
}


@functools.cache
def _terms(name: str, dtype) -> tuple[float, ...]:
    """The coefficients of series ``name``, enough for a truncation error below eps / 8 of
    its value at s_max (where it is smallest relative to its terms)."""
    eps = float(jnp.finfo(dtype).eps)
    weighted = [_WEIGHTS[name](n) * c for n, c in enumerate(_COEFFICIENTS, start=1)]
    value = abs(sum(float(w) * _S_MAX**k for k, w in enumerate(weighted)))
    for k, w in enumerate(weighted):
        if abs(float(w)) * _S_MAX**k < eps / 8 * value:
            return tuple(float(v) for v in weighted[:k])
    raise AssertionError("the coefficient table is too short")


def _series(s: Array, name: str) -> Array:
    """Series ``name`` at ``s`` by Horner's rule."""
    terms = _terms(name, jnp.dtype(s.dtype))
    out = jnp.full_like(s, terms[-1])
    for term in reversed(terms[:-1]):
        out = out * s + term
    return out


class _Split:
    """The series mask, ``s`` where the series applies (0 elsewhere), and the closed-form
    pieces ``a = |eta|``, ``E = e^-a`` and ``m = 1 - E`` (at ``a = 3`` under the series)."""

    def __init__(self, logits: Array):
        magnitude = jnp.abs(logits)
        self.small = magnitude < _SERIES_LIMIT
        # Double where: each branch only ever sees inputs it handles (no inf * 0, no 1/0).
        self.s = jnp.square(jnp.where(self.small, logits, 0.0) * 0.5)
        self.a = jnp.where(self.small, _SERIES_LIMIT, magnitude)
        self.e = jnp.exp(-self.a)
        # 1 - E without expm1: E <= e^-3, so the subtraction loses nothing.
        self.m = 1.0 - self.e


def _variance_of(split: _Split) -> Array:
    series = _series(split.s, "variance")
    # 1/a^2 - 1/(4 sinh^2(a/2)), the second term as E / (1 - E)^2 (no overflow).
    closed = 1.0 / jnp.square(split.a) - split.e / jnp.square(split.m)
    return jnp.where(split.small, series, closed)


def variance(logits: Array) -> Array:
    """Variance :math:`A''(\\eta) = \\ell''(\\eta)`: 1/12 at 0, 0 at :math:`\\pm\\infty`."""
    return _variance_of(_Split(logits))


def _mean_value(logits: Array, split: _Split | None = None) -> Array:
    split = _Split(logits) if split is None else split
    series = 0.5 + 0.5 * jnp.where(split.small, logits, 0.0) * _series(split.s, "mean")
    # 1/(1 - E) - 1/a for eta > 0 and 1/a - E/(1 - E) for eta < 0: each a difference of
    # terms at most 1.5x the result for a >= 3, and 1, 0 at a = inf.
    upper = 1.0 / split.m - 1.0 / split.a
    lower = 1.0 / split.a - split.e / split.m
    return jnp.where(split.small, series, jnp.where(logits > 0, upper, lower))


@jax.custom_jvp
def mean(logits: Array) -> Array:
    """Mean :math:`A'(\\eta) = 1/(1 - e^{-\\eta}) - 1/\\eta` (1/2 at 0, 1 and 0 at
    :math:`\\pm\\infty`)."""
    return _mean_value(logits)


@mean.defjvp
def _mean_jvp(primals, tangents):
    (logits,), (tangent,) = primals, tangents
    return _mean_value(logits), variance(logits) * tangent


def log_normalizer_slope(logits: Array) -> Array:
    """:math:`\\frac{d}{d\\eta}\\log C(\\eta) = 1/\\eta - 1/\\sinh\\eta` for the normaliser
    :math:`C = \\eta / \\tanh(\\eta/2)` of the density written with :math:`\\sigma(\\eta)`
    (``bernoulli.continuous_log_normalizer``): 0 at 0 and at :math:`\\pm\\infty`, odd."""
    split = _Split(logits)
    # log C = log 2 + log cosh(eta/2) - l, so the slope is tanh(eta/2)/2 - l', with
    # l' = (eta/2) * series: terms of size eta/4 and eta/12 (a cancellation of 1.5x at most
    # 2x at |eta| = 3), where 1/eta - 1/sinh(eta) subtracts terms of size 1/|eta|.
    small_logits = jnp.where(split.small, logits, 0.0)
    series = 0.5 * (jnp.tanh(0.5 * small_logits) - small_logits * _series(split.s, "mean"))
    # Beyond: 1/a - 2E / (1 - E^2) with 1 - E^2 = (1 - E)(1 + E), signed.
    closed = 1.0 / split.a - 2.0 * split.e / (split.m * (1.0 + split.e))
    return jnp.where(split.small, series, jnp.where(logits < 0, -closed, closed))


def _log_partition_value(logits: Array, split: _Split | None = None) -> Array:
    split = _Split(logits) if split is None else split
    series = 0.5 * jnp.where(split.small, logits, 0.0) + split.s * _series(split.s, "log_partition")
    # log((e^eta - 1) / eta) = max(eta, 0) + log((1 - E) / a): no eta/2 + l(eta), whose
    # halves cancel for eta << 0.
    closed = jnp.maximum(logits, 0.0) + jnp.log(split.m / split.a)
    return jnp.where(split.small, series, closed)


@jax.custom_jvp
def log_partition(logits: Array) -> Array:
    """:math:`A(\\eta) = \\log\\frac{e^\\eta - 1}{\\eta} = \\eta/2 + \\ell(\\eta)` (finite
    logits only)."""
    return _log_partition_value(logits)


@log_partition.defjvp
def _log_partition_jvp(primals, tangents):
    (logits,), (tangent,) = primals, tangents
    return _log_partition_value(logits), mean(logits) * tangent


def _log_prob_value(x: Array, logits: Array) -> Array:
    split = _Split(logits)
    series = (x - 0.5) * jnp.where(split.small, logits, 0.0) - split.s * _series(
        split.s, "log_partition"
    )
    # eta x - max(eta, 0) - log((1 - E) / a), the first two as (x - 1) eta for eta > 0 so
    # that x = 1 gives exactly 0 there (no large terms cancelling).
    linear = jnp.where(logits > 0, x - 1.0, x) * logits
    closed = linear - jnp.log(split.m / split.a)
    return jnp.where(split.small, series, closed)


@jax.custom_jvp
def log_prob(x: Array, logits: Array) -> Array:
    """:math:`\\log p(x) = \\eta x - A(\\eta) = (x - \\tfrac12)\\eta - \\ell(\\eta)`
    (finite logits, ``x`` and ``logits`` of one shape): :math:`\\sigma`'s softplus in
    :math:`x\\log\\sigma(\\eta) + (1 - x)\\log\\sigma(-\\eta) + \\log C(\\eta)` cancels
    against that of :math:`\\log C`, leaving one ``exp`` and one ``log``."""
    return _log_prob_value(x, logits)


@log_prob.defjvp
def _log_prob_jvp(primals, tangents):
    (x, logits), (tangent_x, tangent_logits) = primals, tangents
    value = _log_prob_value(x, logits)
    return value, (x - mean(logits)) * tangent_logits + logits * tangent_x


def _entropy_value(logits: Array) -> Array:
    split = _Split(logits)
    # l - eta l' = -sum (2n - 1) c_n s^n: one series, not a difference of two; written as
    # 0 - s P(s) so that eta = 0 gives +0, not -0 (also under jit, where XLA drops a + 0).
    series = 0.0 - split.s * _series(split.s, "negentropy")
    # 1 + log(sinh t / t) - t coth t = 1 + log((1 - E) / a) - a E / (1 - E).
    closed = 1.0 + jnp.log(split.m / split.a) - split.a * split.e / split.m
    return jnp.where(split.small, series, closed)


@jax.custom_jvp
def entropy(logits: Array) -> Array:
    """Differential entropy :math:`A - \\eta A' = \\ell - \\eta\\ell'` (0 at 0, about
    :math:`1 - \\log|\\eta|` for large :math:`|\\eta|`; finite logits only)."""
    return _entropy_value(logits)


@entropy.defjvp
def _entropy_jvp(primals, tangents):
    (logits,), (tangent,) = primals, tangents
    return _entropy_value(logits), -logits * variance(logits) * tangent


def _kl_value(logits_p: Array, logits_q: Array) -> Array:
    split_p = _Split(logits_p)
    log_partition_q = _log_partition_value(logits_q)
    log_partition_p = _log_partition_value(logits_p, split_p)
    return (
        log_partition_q - log_partition_p - (logits_q - logits_p) * _mean_value(logits_p, split_p)
    )


@jax.custom_jvp
def kl(logits_p: Array, logits_q: Array) -> Array:
    """:math:`\\mathrm{KL}(p\\|q) = A(\\eta_q) - A(\\eta_p) - (\\eta_q - \\eta_p)A'(\\eta_p)`
    per element (finite logits only), exactly 0 at :math:`p = q`.

    One derivative rule for the whole divergence, :math:`\\partial/\\partial\\eta_q =
    A'(\\eta_q) - A'(\\eta_p)` and :math:`\\partial/\\partial\\eta_p =
    -(\\eta_q - \\eta_p)A''(\\eta_p)` (exactly 0 at :math:`p = q`), each logit's split
    computed once. Autodiff of the composition of ``log_partition`` and ``mean`` gives
    :math:`A'(\\eta_p) - (\\eta_q - \\eta_p)A''(\\eta_p) - A'(\\eta_p)`, which rounds the
    first difference to the precision of :math:`A'` (up to 10 ulps of the result off in
    float32); the speed is the same within noise.
    """
    return _kl_value(logits_p, logits_q)


@kl.defjvp
def _kl_jvp(primals, tangents):
    (logits_p, logits_q), (tangent_p, tangent_q) = primals, tangents
    split_p, split_q = _Split(logits_p), _Split(logits_q)
    mean_p = _mean_value(logits_p, split_p)
    value = (
        _log_partition_value(logits_q, split_q)
        - _log_partition_value(logits_p, split_p)
        - (logits_q - logits_p) * mean_p
    )
    tangent = (_mean_value(logits_q, split_q) - mean_p) * tangent_q - (
        logits_q - logits_p
    ) * _variance_of(split_p) * tangent_p
    return value, tangent


# --- the quantile function (inverse CDF) and its derivatives ---------------------------


def _quantile_parts(logits: Array, uniform: Array):
    """``(x, a, safe_a, y, arg, tiny, finite)``: the quantile ``x``; ``a = |eta|`` (and
    ``safe_a``, 1 where ``a`` is tiny or infinite); the quantile
    ``y`` of the mirrored distribution with logit ``-a`` (``x = y`` for eta <= 0,
    ``1 - y`` for eta > 0); ``arg = e^{-a y}``; the mask of ``a`` below sqrt(eps), where
    first-order expansions in ``a`` are used, and that of finite ``a``."""
    positive = logits > 0
    # |eta| as a select on the same test as the mirror (jnp.abs has derivative +1 at 0,
    # where eta = 0 takes the unmirrored branch): second derivatives right at eta = 0.
    a = jnp.where(positive, logits, -logits)
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

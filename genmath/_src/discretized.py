"""The machinery shared by the discretised 8-bit likelihoods (logistic and Gaussian).

Data convention (the one used by every public function): a pixel is an integer
:math:`x \\in \\{0, 1, \\dots, 255\\}` (any numeric dtype); the continuous distribution
lives on the rescaled value :math:`y = x / 255 \\in [0, 1]`, the scale a VAE decoder with a
sigmoid output or a ``[0, 1]`` Gaussian decoder already uses. Bin :math:`x` is the
interval :math:`[(x - \\tfrac12)/255, (x + \\tfrac12)/255]` of width :math:`1/255`, except
the edge bins, which extend to :math:`-\\infty` (:math:`x = 0`) and :math:`+\\infty`
(:math:`x = 255`), so the 256 probabilities sum to exactly 1.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from genmath import categorical
from genmath._src import special, validation, value_checks
from genmath._src.typing import Array, ArrayLike, Axis, Key, SampleShape

NUM_BINS = 256
_MAX_VALUE = 255.0
_HALF_WIDTH = 0.5 / 255.0
_WIDTH = 1.0 / 255.0
_LOG_WIDTH = -math.log(255.0)
_LN_TWO = math.log(2.0)
_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


def log1mexp(d: Array) -> Array:
    """:math:`\\log(1 - e^{-d})` for :math:`d > 0`, accurate for small and large ``d``."""
    # Maechler's switch at log 2: expm1 keeps the digits of a small d, log1p those of a
    # large one; double `where` so the unselected branch never sees log(0) (NaN gradients).
    small = d < _LN_TWO
    d_small = jnp.where(small, d, 1.0)
    d_large = jnp.where(small, 1.0, d)
    return jnp.where(small, jnp.log(-jnp.expm1(-d_small)), jnp.log1p(-jnp.exp(-d_large)))


def _log1mexp_slope(d: Array) -> Array:
    """:math:`\\frac{d}{dd}\\log(1 - e^{-d}) = e^{-d} / (1 - e^{-d})`, from the same two
    exponentials as :func:`log1mexp` (XLA computes them once for both)."""
    small = d < _LN_TWO
    shrunk = jnp.expm1(-jnp.where(small, d, 1.0))  # e^-d - 1 in (-1/2, 0), to full precision
    tail = jnp.exp(-jnp.where(small, 1.0, d))  # e^-d < 1/2: 1 - e^-d does not cancel
    return jnp.where(small, (1.0 + shrunk) / -shrunk, tail / (1.0 - tail))


_SQRT_HALF = math.sqrt(0.5)


def _valid_and_edges(x: Array):
    valid = (x >= 0.0) & (x <= _MAX_VALUE) & (x == jnp.round(x))
    has_lower = x > 0.5  # bin has a finite lower edge (x >= 1)
    has_upper = x < _MAX_VALUE - 0.5  # bin has a finite upper edge (x <= 254)
    return valid, has_lower, has_upper


def _edges(x: Array, loc: Array, inv_scale: Array):
    # Each edge as (x -+ 0.5)/255: the upper edge of bin x and the lower edge of bin x + 1
    # are then the same float, so the rounded bins still tile the line and the 256
    # probabilities sum to 1 (computing x/255 -+ 0.5/255 would round them differently).
    # Under jit XLA forms the division as a product with the rounded reciprocal of 255,
    # within an ulp of it (see the conditioning note of the public modules). A true
    # division behind a barrier was exact but cost the Gaussian's gradient 10 % (1.15x
    # the jnp formula against 1.06x), since its loops recompute the edges.
    lower = ((x - 0.5) / _MAX_VALUE - loc) * inv_scale
    upper = ((x + 0.5) / _MAX_VALUE - loc) * inv_scale
    return lower, upper


def logistic_bin_log_prob(x: Array, loc: Array, log_scale: Array) -> Array:
    """Elementwise log-probability of bin ``x`` under a logistic on the [0, 1] scale."""
    valid, has_lower, has_upper = _valid_and_edges(x)
    inv_scale = jnp.exp(-log_scale)
    lower, upper = _edges(x, loc, inv_scale)
    # sigma(b) - sigma(a) = sigma(b) sigma(-a) (1 - e^(a-b)): a product, never a difference
    # of CDFs, so the bin mass cannot cancel or underflow (log_sigmoid of either tail is
    # exact) and the PixelCNN++ midpoint fallback is never needed; b - a = width/scale is
    # computed directly, without rounding from the subtraction.
    out = jnp.where(has_upper, special.log_sigmoid(upper), 0.0)
    out = out + jnp.where(has_lower, special.log_sigmoid(-lower), 0.0)
    out = out + jnp.where(has_lower & has_upper, log1mexp(_WIDTH * inv_scale), 0.0)
    return jnp.where(valid, out, jnp.nan)


def logistic_bin_partials(x: Array, loc: Array, log_scale: Array) -> tuple[Array, Array, Array]:
    """:func:`logistic_bin_log_prob` and its partial derivatives in ``loc`` and ``log_scale``.

    With :math:`b` and :math:`a` the upper and lower edges in units of the scale,
    :math:`\\partial/\\partial b\\,\\log\\sigma(b) = \\sigma(-b)`,
    :math:`\\partial/\\partial a\\,\\log\\sigma(-a) = -\\sigma(a)` and the width term's
    :func:`_log1mexp_slope`; the edges move by :math:`-1/s` with ``loc`` and by minus
    themselves with ``log_scale``. Every exponential is the value's own (XLA shares them),
    and the partials are 0 off the grid, as autodiff of the value gives.
    """
    value = logistic_bin_log_prob(x, loc, log_scale)
    valid, has_lower, has_upper = _valid_and_edges(x)
    inv_scale = jnp.exp(-log_scale)
    lower, upper = _edges(x, loc, inv_scale)
    # sigma(-b) and sigma(a) from e^-|t|, the exponential log_sigmoid computes.
    # |t| as selects on the tests of the branches below (jnp.abs has derivative +1 at 0,
    # wrong for the lower edge, where t = 0 takes the `lower >= 0` branch).
    tail_upper = jnp.exp(-jnp.where(upper >= 0.0, upper, -upper))
    tail_lower = jnp.exp(-jnp.where(lower >= 0.0, lower, -lower))
    sigmoid_neg_upper = jnp.where(upper >= 0.0, tail_upper, 1.0) / (1.0 + tail_upper)
    sigmoid_lower = jnp.where(lower >= 0.0, 1.0, tail_lower) / (1.0 + tail_lower)
    d_upper = jnp.where(has_upper, sigmoid_neg_upper, 0.0)
    d_lower = jnp.where(has_lower, -sigmoid_lower, 0.0)
    width = _WIDTH * inv_scale
    d_width = jnp.where(has_lower & has_upper, _log1mexp_slope(width), 0.0)
    d_loc = -inv_scale * (d_upper + d_lower)
    d_log_scale = -(upper * d_upper + lower * d_lower + width * d_width)
    return value, jnp.where(valid, d_loc, 0.0), jnp.where(valid, d_log_scale, 0.0)


def _midpoint_radius(dtype) -> float:
    # The series below is truncated after h^4: its error is ~ m^6 / 336 (m = h max(1, |c|));
    # the CDF-difference form loses ~ eps / m. Switching at m = 2 eps^(1/6) keeps both
    # within a few ulps of the result (0.14 in float32, 0.005 in float64).
    return 2.0 * float(jnp.finfo(dtype).eps) ** (1.0 / 6.0)


def _normal_tail(t: Array, cut: float) -> Array:
    """:math:`\\Phi(t)\\sqrt{2\\pi}e^{t^2/2}` for :math:`t` below ``cut`` (the asymptotic
    series :math:`(1 - t^{-2} + 3t^{-4} - 15t^{-6})/|t|`, as ``log_ndtr`` uses); evaluated
    at ``cut`` for larger ``t`` (double where: no 1/0 at t = 0)."""
    low = jnp.minimum(t, cut)
    r = 1.0 / (low * low)
    return (1.0 + r * (-1.0 + r * (3.0 - 15.0 * r))) / -low


def _normal_tail_slope(t: Array, cut: float) -> Array:
    """The derivative of :func:`_normal_tail`'s series, :math:`r - 3r^2 + 15r^3 - 105r^4`
    with :math:`r = t^{-2}` (at ``cut`` for larger ``t``)."""
    low = jnp.minimum(t, cut)
    r = 1.0 / (low * low)
    return r * (1.0 + r * (-3.0 + r * (15.0 - 105.0 * r)))


class _NormalBin(NamedTuple):
    """What :func:`normal_bin_log_prob`'s derivative rule takes from its forward pass."""

    valid: Array
    interior: Array
    narrow: Array
    right: Array
    has_lower: Array
    tail: Array
    cut: float
    hi: Array
    lo: Array
    c: Array
    h: Array
    inv_scale: Array
    ratio: Array
    body: Array
    series_lo: Array


def _normal_bin_parts(x: Array, loc: Array, log_scale: Array):
    """The value of :func:`normal_bin_log_prob` and the pieces its derivative rule needs."""
    valid, has_lower, has_upper = _valid_and_edges(x)
    inv_scale = jnp.exp(-log_scale)
    lower, upper = _edges(x, loc, inv_scale)
    c = 0.5 * (lower + upper)
    h = _HALF_WIDTH * inv_scale
    interior = has_lower & has_upper
    # Interior bins: reflect the bin into the left half (Phi(b) - Phi(a) = Phi(-a) - Phi(-b)),
    # where Phi is relatively accurate from erfc; edge bins are one CDF, Phi(b) at x = 0 and
    # Phi(-a) at x = 255, taken as `hi` with no `lo`.
    right = c > 0.0
    lo = jnp.where(right, -upper, lower)
    hi = jnp.where(interior, jnp.where(right, -lower, upper), jnp.where(has_lower, -lower, upper))
    # A narrow bin (relative to the scale and to the tail's slope): the two CDFs agree to
    # most of their digits and their difference cancels; use the density at the bin centre
    # times the width instead, with the Taylor correction of the integral:
    # int_{c-h}^{c+h} phi = 2h phi(c) [1 + He2(c) h^2/6 + He4(c) h^4/120 + O(h^6)], whose log
    # is expanded to the same order, (c^2 - 1) h^2/6 - (c^4 + 4c^2 - 2) h^4/180 + O(h^6).
    narrow = interior & (h * jnp.maximum(1.0, jnp.abs(c)) < _midpoint_radius(x.dtype))
    # Double where: c^4 overflows at tiny scales, and the series is only used where narrow.
    c2 = jnp.square(jnp.where(narrow, c, 0.0))
    h2 = jnp.square(jnp.where(narrow, h, 0.0))
    series = (c2 - 1.0) * h2 / 6.0 - (c2 * c2 + 4.0 * c2 - 2.0) * h2 * h2 / 180.0
    midpoint = (_LOG_WIDTH - log_scale) - 0.5 * c2 - _HALF_LOG_TWO_PI + series
    # Every other bin is log(A) + B with a single log. Above the tail cut, A = Phi(hi) -
    # Phi(lo) (0 for an edge bin) and B = 0: Phi(hi) is 1 - Phi(-hi) for hi > 0, and the
    # difference cancels at most ~5x where the bin is not narrow (the CDFs then differ by
    # e^(-2h|c|) <= ~0.8 in ratio). Below it, where Phi underflows, both CDFs are
    # phi(t) S(t) with the asymptotic series S, so Phi(hi) - Phi(lo) = phi(hi) [S(hi) -
    # e^(-2h|c|) S(lo)] (phi(lo) / phi(hi) = e^(-2h|c|), -|c| the reflected centre).
    cut = -20.0 if x.dtype == jnp.float64 else -10.0
    tail = hi < cut
    # |hi| as a select (not jnp.abs, whose derivative at 0 is 0): e_hi = Phi(-|hi|).
    e_hi = 0.5 * jax.lax.erfc(jnp.where(hi > 0.0, hi, -hi) * _SQRT_HALF)
    cdf_hi = jnp.where(hi > 0.0, 1.0 - e_hi, e_hi)
    e_lo = 0.5 * jax.lax.erfc(-lo * _SQRT_HALF)  # Phi(lo), lo < 0 where it is used
    # The reflected centre is -|c|, |c| as a select on `right` (jnp.abs has derivative +1
    # at c = 0, where the bin is not reflected and the ratio is e^(2hc)).
    ratio = jnp.exp(-2.0 * h * jnp.where(right, c, -c))
    body = cdf_hi - jnp.where(interior, e_lo, 0.0)
    series_hi, series_lo = _normal_tail(hi, cut), _normal_tail(lo, cut)
    tail_body = series_hi - jnp.where(interior, ratio * series_lo, 0.0)
    # Double where: a narrow bin's body may cancel to 0 (log 0 in the gradient).
    body = jnp.where(narrow, 1.0, jnp.where(tail, tail_body, body))
    offset = jnp.where(tail, -0.5 * hi * hi - _HALF_LOG_TWO_PI, 0.0)
    out = jnp.where(narrow, midpoint, jnp.log(body) + offset)
    value = jnp.where(valid, out, jnp.nan)
    return value, _NormalBin(
        valid, interior, narrow, right, has_lower, tail, cut, hi, lo, c, h, inv_scale, ratio,
        body, series_lo,
    )  # fmt: skip


@jax.custom_jvp
def normal_bin_log_prob(x: Array, loc: Array, log_scale: Array) -> Array:
    """Elementwise log-probability of bin ``x`` under a Gaussian on the [0, 1] scale."""
    return _normal_bin_parts(x, loc, log_scale)[0]


def normal_bin_partials(x: Array, loc: Array, log_scale: Array) -> tuple[Array, Array, Array]:
    """:func:`normal_bin_log_prob` and its partial derivatives in ``loc`` and ``log_scale``,
    in closed form from the forward pass's own pieces (0 off the grid)."""
    value, pieces = _normal_bin_parts(x, loc, log_scale)
    (
        valid,
        interior,
        narrow,
        right,
        has_lower,
        tail,
        cut,
        hi,
        lo,
        c,
        h,
        inv_scale,
        ratio,
        body,
        series_lo,
    ) = pieces
    lo_weight = jnp.where(interior, ratio, 0.0)
    # Above the cut, log P = log(Phi(hi) - Phi(lo)): d/dhi = phi(hi) / P and d/dlo =
    # -phi(lo) / P, with phi(lo) = phi(hi) e^(-2h|c|).
    density = jnp.exp(-0.5 * hi * hi - _HALF_LOG_TWO_PI)
    d_hi = density / body
    d_lo = -lo_weight * d_hi
    # Below it, log P = log(S(hi) - R S(lo)) - hi^2/2 + const with R = e^((hi^2 - lo^2)/2),
    # differentiated as written: with the truncated series S, S'/S is more accurate than
    # the identity S' = 1 + t S would make 1/S (4e-9 against 8e-11 relative at t = -20).
    slope_hi, slope_lo = _normal_tail_slope(hi, cut), _normal_tail_slope(lo, cut)
    tail_d_hi = (slope_hi - lo_weight * hi * series_lo) / body - hi
    tail_d_lo = lo_weight * (lo * series_lo - slope_lo) / body
    d_hi = jnp.where(tail, tail_d_hi, d_hi)
    d_lo = jnp.where(tail, tail_d_lo, d_lo)
    # hi and lo are (edge - loc) / s up to a common sign: +1 when the bin was reflected or
    # is the top edge (hi = -lower), so d/dloc = sign / s and d/dlog s = -hi, -lo.
    sign = jnp.where(interior, jnp.where(right, 1.0, -1.0), jnp.where(has_lower, 1.0, -1.0))
    d_loc = sign * inv_scale * (d_hi + d_lo)
    d_log_scale = -(hi * d_hi + lo * d_lo)
    # The midpoint: -c^2/2 + (c^2 - 1) h^2/6 - (c^4 + 4c^2 - 2) h^4/180 - log s, with
    # dc/dloc = -1/s, dc/dlog s = -c and dh/dlog s = -h.
    c_n = jnp.where(narrow, c, 0.0)
    h_n = jnp.where(narrow, h, 0.0)
    c2, h2 = c_n * c_n, h_n * h_n
    d_c = -c_n + c_n * h2 / 3.0 - (4.0 * c2 + 8.0) * c_n * h2 * h2 / 180.0
    d_h = (c2 - 1.0) * h_n / 3.0 - (c2 * c2 + 4.0 * c2 - 2.0) * h2 * h_n / 45.0
    d_loc = jnp.where(narrow, -inv_scale * d_c, d_loc)
    d_log_scale = jnp.where(narrow, -1.0 - c_n * d_c - h_n * d_h, d_log_scale)
    # Off the grid the value is NaN whatever the parameters: no derivative.
    return value, jnp.where(valid, d_loc, 0.0), jnp.where(valid, d_log_scale, 0.0)


@normal_bin_log_prob.defjvp
def _normal_bin_log_prob_jvp(primals, tangents):
    # In closed form, from the forward pass's own pieces: differentiating through erfc,
    # the tail series and the selects took 1.27x the jnp formula's time with gradients on
    # one XLA:CPU core, this rule 0.92-1.06x (benchmarks/results, issues-12-13 run).
    x, loc, log_scale = primals
    x_dot, loc_dot, log_scale_dot = tangents
    value, d_loc, d_log_scale = normal_bin_partials(x, loc, log_scale)
    # Both edges move with x / 255 as they move against loc.
    tangent = d_loc * (loc_dot - x_dot / _MAX_VALUE) + d_log_scale * log_scale_dot
    return value, tangent


BinLogProb = Callable[[Array, Array, Array], Array]


class BinLaw(NamedTuple):
    """A continuous law on the [0, 1] scale as the 256 pixel bins see it, elementwise in
    ``(x, loc, log_scale)``: ``log_prob`` gives log P(bin x), ``partials`` that value with
    its derivatives in ``loc`` and ``log_scale`` (the mixture's derivative rule takes them)."""

    log_prob: BinLogProb
    partials: Callable[[Array, Array, Array], tuple[Array, Array, Array]]


LOGISTIC = BinLaw(logistic_bin_log_prob, logistic_bin_partials)
NORMAL = BinLaw(normal_bin_log_prob, normal_bin_partials)


def log_prob(name: str, law: BinLaw, x: ArrayLike, loc, log_scale, axis: Axis) -> Array:
    x, loc, log_scale = validation.promote(name, {"loc": loc, "log_scale": log_scale}, {"x": x})
    value_checks.check_pixels(name, "x", x)
    shape = jnp.broadcast_shapes(x.shape, loc.shape, log_scale.shape)
    axes = validation.check_axis(name, axis, len(shape))
    x, loc, log_scale = (jnp.broadcast_to(a, shape) for a in (x, loc, log_scale))
    return jnp.sum(law.log_prob(x, loc, log_scale), axis=axes)


def _mixture_args(name, x, logits, loc, log_scale):
    data = {} if x is None else {"x": x}
    params = {"logits": logits, "loc": loc, "log_scale": log_scale}
    promoted = validation.promote(name, params, data, broadcast=False)
    x = promoted[0] if x is not None else None
    logits, loc, log_scale = promoted[-3:]
    if logits.ndim == 0:
        raise ValueError(f"{name}: `logits` needs a trailing component axis, got a scalar.")
    shapes = {"logits": logits.shape, "loc": loc.shape, "log_scale": log_scale.shape}
    if x is not None:
        shapes = {"x (with a component axis appended)": (*x.shape, 1), **shapes}
    shape = validation.check_broadcast(name, shapes)
    # Name the argument that is empty: a logit axis of size 1 broadcasts to loc's K = 0.
    for argument in ("logits", "loc", "log_scale"):
        if shapes[argument] and shapes[argument][-1] == 0:
            validation.check_classes(name, argument, shapes[argument], (-1,))
    return x, logits, loc, log_scale, shape


def mixture_log_prob(
    name: str, law: BinLaw, x: ArrayLike, logits, loc, log_scale, axis: Axis
) -> Array:
    x, logits, loc, log_scale, shape = _mixture_args(name, x, logits, loc, log_scale)
    value_checks.check_pixels(name, "x", x)
    axes = validation.check_axis(name, axis, len(shape) - 1)
    x, logits, loc, log_scale = (
        a.reshape((1,) * (len(shape) - a.ndim) + a.shape)
        for a in (x[..., None], logits, loc, log_scale)
    )
    # A component axis of size 1 in `logits` means K equal weights, so it is broadcast to
    # loc's K before it is normalised (normalising one logit would give every weight 1).
    logits = jnp.broadcast_to(logits, (*logits.shape[:-1], shape[-1]))
    return jnp.sum(_mixed(law, x, logits, loc, log_scale), axis=axes)


def _mix(bin_log_prob: BinLogProb, x, logits, loc, log_scale, axis: int) -> Array:
    """log sum_k w_k P_k(x) per pixel, the components along ``axis`` (all arguments of one
    rank; x with a component axis of size 1)."""
    shape = jnp.broadcast_shapes(x.shape, logits.shape, loc.shape, log_scale.shape)
    x, loc, log_scale = (jnp.broadcast_to(a, shape) for a in (x, loc, log_scale))
    log_weights = jax.nn.log_softmax(logits, axis=axis)
    # Mix in log space: a component's bin mass may be far below the float range.
    return jax.nn.logsumexp(log_weights + bin_log_prob(x, loc, log_scale), axis=axis)


def _through_buffers(*arrays: Array) -> tuple[Array, ...]:
    """The arrays unchanged, behind a ``lax.cond`` that XLA cannot see through: its
    predicate is always true, but only at run time (x == x or x is NaN), so each array is
    computed into a buffer of its own instead of being recomputed inside every loop that
    reads it (the other branch, never taken, differs only so as not to be merged). Under
    ``vmap`` the conditional becomes a select and the arrays are fused as usual; on several
    devices the probe is one element, which XLA broadcasts (one scalar per call)."""
    if arrays[0].size == 0:  # nothing to compute, and no element to probe
        return arrays
    probe = arrays[0].reshape(-1)[0]
    always = (probe == probe) | jnp.isnan(probe)
    return jax.lax.cond(always, lambda *a: a, lambda *a: tuple(v + 0.0 for v in a), *arrays)


def _materialized(*arrays: Array) -> tuple[Array, ...]:
    """:func:`_through_buffers` on XLA:CPU, the arrays as they are elsewhere.

    XLA:CPU fuses a transpose, and an exponential with several readers, into each loop that
    reads it: in the mixture's derivative every loop then read the parameters across the
    component axis and recomputed the bin's exponentials (the derivative took about 1.6x the
    time it takes with the arrays materialised, on one core). Accelerators fuse differently and
    pay for a conditional, so they are left to their compiler.
    """
    return jax.lax.platform_dependent(*arrays, cpu=_through_buffers, default=lambda *a: a)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _mixed(law: BinLaw, x, logits, loc, log_scale) -> Array:
    """:func:`_mix` over the last axis, computed with the components moved to the first.

    XLA:CPU vectorises a fused elementwise loop along the minor axis: with a handful of
    components there (10 in PixelCNN++) the discretised logistic mixture took 4x longer
    forward than with the pixels there. Its derivatives come from the rule below, on the
    same layout.
    """
    moved = (jnp.moveaxis(a, -1, 0) for a in (x, logits, loc, log_scale))
    return _mix(law.log_prob, *moved, axis=0)


def _mixed_jvp(law: BinLaw, primals, tangents):
    """Derivatives of the mixture in closed form, only for the arguments with a tangent.

    With the responsibilities :math:`r_k = w_k P_k / \\sum_j w_j P_j` and the mixture
    weights :math:`w = \\operatorname{softmax}(\\ell)`,
    :math:`\\partial/\\partial \\ell_k = r_k - w_k` and, for a component parameter
    :math:`\\theta_k`, :math:`\\partial/\\partial \\theta_k = r_k\\,\\partial \\log P_k /
    \\partial \\theta_k` (the pixel moves the edges as :math:`-\\mathrm{loc}` does, over
    255). Everything is computed with the components first, as the value is, and only the
    coefficients are moved back; autodiff of the components-last form took about 1.6x as
    long on one XLA:CPU core.
    """
    x, logits, loc, log_scale = primals
    x_dot, logits_dot, loc_dot, log_scale_dot = tangents
    shape = jnp.broadcast_shapes(x.shape, logits.shape, loc.shape, log_scale.shape)

    def first(a: Array) -> Array:
        return jnp.moveaxis(jnp.broadcast_to(a, shape), -1, 0)

    x_f, loc_f, log_scale_f = _materialized(first(x), first(loc), first(log_scale))
    bin_log_prob, d_loc, d_log_scale = law.partials(x_f, loc_f, log_scale_f)
    moves_loc = not (isinstance(loc_dot, SymbolicZero) and isinstance(x_dot, SymbolicZero))
    moves_scale = not isinstance(log_scale_dot, SymbolicZero)
    live = {"loc": (d_loc, moves_loc), "log_scale": (d_log_scale, moves_scale)}
    live = {name: partial for name, (partial, moves) in live.items() if moves}
    if live:  # the value and the partials that are used, each into a buffer of its own
        bin_log_prob, *partials = _materialized(bin_log_prob, *live.values())
        live = dict(zip(live, partials, strict=True))
    log_weights = jax.nn.log_softmax(jnp.moveaxis(logits, -1, 0), axis=0)
    joint = log_weights + bin_log_prob
    value = jax.nn.logsumexp(joint, axis=0)
    # A pixel off the grid, or of mass 0 in every component, has no responsibilities: 0,
    # so that its coefficients stay finite and a masked NaN value has zero gradients.
    responsibility = jnp.where(jnp.isfinite(value), jnp.exp(joint - value), 0.0)

    def last(coefficient: Array) -> Array:
        return jnp.moveaxis(coefficient, 0, -1)

    tangent = jnp.zeros_like(value)
    if not isinstance(logits_dot, SymbolicZero):
        coefficient = last(responsibility - jnp.exp(log_weights))
        tangent = tangent + jnp.sum(coefficient * logits_dot, axis=-1)
    if moves_loc:
        coefficient = last(responsibility * live["loc"])
        if not isinstance(loc_dot, SymbolicZero):
            tangent = tangent + jnp.sum(coefficient * loc_dot, axis=-1)
        if not isinstance(x_dot, SymbolicZero):
            tangent = tangent - jnp.sum(coefficient * x_dot, axis=-1) / _MAX_VALUE
    if moves_scale:
        coefficient = last(responsibility * live["log_scale"])
        tangent = tangent + jnp.sum(coefficient * log_scale_dot, axis=-1)
    return value, tangent


_mixed.defjvp(_mixed_jvp, symbolic_zeros=True)


def to_grid(y: Array) -> Array:
    """Maps a continuous draw on the [0, 1] scale to its bin, an int32 in 0..255; a NaN
    draw (NaN parameters: no distribution) to -1, as ``categorical.sample`` labels one."""
    pixel = jnp.clip(jnp.round(y * _MAX_VALUE), 0.0, _MAX_VALUE).astype(jnp.int32)
    return jnp.where(jnp.isnan(y), -1, pixel)


Noise = Callable[[Key, tuple[int, ...], object], Array]


def sample(name: str, noise: Noise, key: Key, loc, log_scale, sample_shape: SampleShape):
    loc, log_scale = validation.promote(name, {"loc": loc, "log_scale": log_scale})
    sample_shape = validation.sample_shape(name, sample_shape)
    shape = sample_shape + jnp.broadcast_shapes(loc.shape, log_scale.shape)
    eps = noise(key, shape, loc.dtype)
    loc, log_scale = jax.lax.stop_gradient(loc), jax.lax.stop_gradient(log_scale)
    return to_grid(loc + jnp.exp(log_scale) * eps)


def mixture_sample(
    name: str, noise: Noise, key: Key, logits, loc, log_scale, sample_shape: SampleShape
):
    _, logits, loc, log_scale, shape = _mixture_args(name, None, logits, loc, log_scale)
    sample_shape = validation.sample_shape(name, sample_shape)
    out_shape = sample_shape + shape[:-1]
    key_component, key_noise = jax.random.split(key)
    logits = jax.lax.stop_gradient(jnp.broadcast_to(logits, shape))
    # -1 where the weights define no distribution (all -inf, +inf or NaN).
    component = categorical.sample(key_component, logits=logits, sample_shape=sample_shape)
    index = jnp.maximum(component, 0)[..., None]

    def pick(param):
        param = jax.lax.stop_gradient(jnp.broadcast_to(param, out_shape + shape[-1:]))
        return jnp.take_along_axis(param, index, axis=-1)[..., 0]

    eps = noise(key_noise, out_shape, loc.dtype)
    return jnp.where(component < 0, -1, to_grid(pick(loc) + jnp.exp(pick(log_scale)) * eps))

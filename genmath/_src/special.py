"""Special functions shared by the distribution modules."""

from __future__ import annotations

import math

import jax.numpy as jnp

from genmath._src.typing import Array

_SERIES_RADIUS = 0.7


def _series_degree(dtype) -> int:
    """Smallest Taylor degree ``n`` of e^r - 1 - r accurate to eps (relative) for |r| < 0.7."""
    eps = float(jnp.finfo(dtype).eps)
    n = 2
    # Relative truncation error of the series to r**n: (r**(n+1) / (n+1)!) / (r**2 / 2).
    while 2.0 * _SERIES_RADIUS ** (n - 1) / math.factorial(n + 1) > eps:
        n += 1
    return n


def expm1_minus_identity(r: Array) -> Array:
    """Computes :math:`e^r - 1 - r` to a few ulps everywhere, including near ``r = 0``.

    ``exp(r) - 1 - r`` cancels catastrophically near 0 (``expm1`` would help but is twice
    as slow as ``exp`` on CPU), so for ``|r| < 0.7`` the Taylor series is used, to the
    degree the dtype needs (9 for float32, 16 for float64). Exactly 0 with gradient 0 at
    ``r = 0``.
    """
    small = jnp.abs(r) < _SERIES_RADIUS
    # Double `where`: the series of a huge unselected r would overflow and give 0 * inf.
    r_small = jnp.where(small, r, 0.0)
    series = 0.0
    for n in range(_series_degree(r.dtype), 1, -1):
        series = (series + 1.0 / math.factorial(n)) * (r_small if n > 2 else 1.0)
    series = series * jnp.square(r_small)
    return jnp.where(small, series, jnp.exp(r) - 1.0 - r)

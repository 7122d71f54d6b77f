"""Uniform variates fine enough near 0 for the probabilities genmath's samplers compare."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genmath._src.typing import Array, Key, Shape

_TWO_TO_MINUS_32 = 2.0**-32


def uniform_from_words(high: Array, low: Array, dtype) -> Array:
    """:math:`(h + l\\,2^{-32})\\,2^{-32}` for 32-bit words ``high`` and ``low``.

    A uniform on :math:`[0, 1]` with a resolution of :math:`2^{-64}` near 0, where
    ``jax.random.uniform`` steps by :math:`2^{-23}` (float32) or :math:`2^{-52}` (float64):
    with it, ``u < p`` holds with probability ``p`` to within :math:`2^{-64}` absolute and
    :math:`2^{-24}` relative, where the coarser grid made every probability below its step
    the step itself (logit -30: 1.2e-7 instead of 9.4e-14). 1 itself comes out only by
    rounding, with probability below :math:`2^{-24}`, and satisfies no ``u < p`` with
    ``p <= 1/2``.
    """
    # The high word is an integer below 2^32; the low word adds its fraction before the
    # exact power-of-two scaling.
    return (high.astype(dtype) + low.astype(dtype) * _TWO_TO_MINUS_32) * _TWO_TO_MINUS_32


def fine_uniform(key: Key, shape: Shape, dtype) -> Array:
    """Uniform variates of :func:`uniform_from_words`, from 64 random bits each."""
    words = jax.random.bits(key, (2, *shape), jnp.uint32)
    return uniform_from_words(words[0], words[1], dtype)


def bernoulli_draws(key: Key, logits: Array, shape: Shape) -> Array:
    """Draws of :math:`\\mathrm{Bernoulli}(\\sigma(\\ell))` as 0/1 in ``logits.dtype``, NaN
    for a NaN logit.

    The rarer outcome, of probability :math:`\\sigma(-|\\ell|) \\le 1/2`, is drawn as
    ``u < p`` with a :func:`fine_uniform` ``u``, so that a probability far below the float
    grid's step near 0 is drawn at its own rate (down to :math:`2^{-64}`, logit about -44),
    and one near 1 is not rounded to 1.
    """
    minority = jax.nn.sigmoid(-jnp.abs(logits))
    rare = fine_uniform(key, shape, logits.dtype) < minority
    draws = jnp.where(logits >= 0.0, ~rare, rare).astype(logits.dtype)
    return jnp.where(jnp.isnan(logits), jnp.nan, draws)

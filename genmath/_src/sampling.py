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
    # The two words of a variate side by side (last axis): with partitionable threefry the
    # first n draws of a longer sample are then those of a sample of n.
    words = jax.random.bits(key, (*shape, 2), jnp.uint32)
    return uniform_from_words(words[..., 0], words[..., 1], dtype)


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


def _half_and_side(key: Key, shape: Shape, dtype) -> tuple[Array, Array]:
    """A uniform ``v`` on :math:`(0, 1/2)` with a resolution of :math:`2^{-64}` near 0 (the
    middle of cells of that width, so never 0) and a fair coin ``side``, from 64 random
    bits: :math:`u = v` or :math:`1 - v` by the coin is uniform on :math:`(0, 1)`, fine near
    both ends, for the noises whose two tails come from the two ends."""
    words = jax.random.bits(key, (*shape, 2), jnp.uint32)  # side by side, as above
    return half_and_side_from_words(words[..., 0], words[..., 1], dtype)


def half_and_side_from_words(high: Array, low: Array, dtype) -> tuple[Array, Array]:
    """:func:`_half_and_side` of given 32-bit words (the coin is the low word's last bit)."""
    side = (low & 1) == 1
    fraction = ((low >> 1).astype(dtype) + 0.5) * 2.0**-31
    return (high.astype(dtype) + fraction) * 2.0**-33, side


def logistic_noise(key: Key, shape: Shape, dtype) -> Array:
    """Standard logistic variates :math:`\\log u - \\log(1 - u)`, with both tails out to
    about :math:`\\pm 44` where ``jax.random.logistic`` (float32) stops near -87 and +15.9,
    so that :math:`\\mathbb 1[\\ell + L > 0]` is :math:`\\mathrm{Bernoulli}(\\sigma(\\ell))`
    down to probabilities of :math:`2^{-64}`."""
    return logistic_from(*_half_and_side(key, shape, dtype))


def logistic_from(v: Array, side: Array) -> Array:
    """The logistic variate of ``u = 1 - v`` (``side``) or ``u = v``."""
    # |L| = log((1 - v) / v) for the smaller of u and 1 - u; the coin gives the sign.
    magnitude = jnp.log1p(-v) - jnp.log(v)
    return jnp.where(side, magnitude, -magnitude)


def gumbel_noise(key: Key, shape: Shape, dtype) -> Array:
    """Standard Gumbel variates :math:`-\\log(-\\log u)`, the upper tail out to about 44
    where ``jax.random.gumbel`` (float32) stops near 15.9, so that the Gumbel-max draw picks
    a class whose logit is far below the others at its own rate."""
    return gumbel_from(*_half_and_side(key, shape, dtype))


def gumbel_from(v: Array, side: Array) -> Array:
    """The Gumbel variate of ``u = 1 - v`` (``side``) or ``u = v``."""
    # -log u for u = 1 - v is -log1p(-v), accurate where u is near 1 (the upper tail).
    exponential = jnp.where(side, -jnp.log1p(-v), -jnp.log(v))
    return -jnp.log(exponential)

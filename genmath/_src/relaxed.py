"""Pieces shared by the relaxed (Concrete / Gumbel-softmax) distributions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from genmath._src.typing import Array


def check_temperature(caller: str, temperature: Array) -> None:
    """Raises ``ValueError`` naming ``temperature`` if a concrete value is not positive.

    A traced value (inside ``jax.jit``) cannot be checked; :func:`nan_unless_positive` then
    makes the result NaN wherever the temperature is not positive.
    """
    if isinstance(temperature, jax.core.Tracer):
        return
    values = np.asarray(temperature)
    if not np.all(values > 0):
        raise ValueError(f"{caller}: `temperature` must be positive, got minimum {values.min()}.")


def nan_unless_positive(temperature: Array, value: Array) -> Array:
    """``value`` where the temperature is positive, NaN elsewhere (traced temperatures)."""
    return jnp.where(temperature > 0, value, jnp.nan)


def keep_nan(fn, value: Array) -> Array:
    """``fn(value)`` with NaN kept NaN. On CPU (jax 0.9.2) a jit-compiled ``exp`` or
    ``logistic`` of ``jnp.where(t > 0, x, nan)`` (a scalar ``t``) returned arbitrary finite
    numbers instead of NaN where the NaN branch was taken."""
    return jnp.where(jnp.isnan(value), jnp.nan, fn(value))


def logistic_log_density(shifted: Array) -> Array:
    """:math:`\\log \\frac{e^{-u}}{(1 + e^{-u})^2} = -|u| - 2\\log(1 + e^{-|u|})` of a finite
    ``u``: even in ``u`` and free of overflow; its derivative is :math:`-\\tanh(u/2)`."""
    nonneg = shifted >= 0
    # |u| as a select (not jnp.abs): derivative 1 at 0, so second derivatives come out right.
    magnitude = jnp.where(nonneg, shifted, -shifted)
    return -magnitude - 2.0 * jnp.log1p(jnp.exp(-magnitude))

"""Uniform dequantisation of 8-bit data and the one definition of bits/dim for it.

A continuous density :math:`p` on :math:`[0, 1]^D` says nothing by itself about the
probability of an 8-bit image :math:`x \\in \\{0, \\dots, 255\\}^D`: its log-density is in
nats per unit volume and can be made arbitrarily large. Uniform dequantisation fixes this.
Cut :math:`[0, 1]^D` into the :math:`256^D` cubes :math:`C_x = \\prod_i [x_i/256, (x_i +
1)/256)` of volume :math:`256^{-D}`; then :math:`P(x) = \\int_{C_x} p(y)\\,dy` is a proper
distribution over images and, by Jensen's inequality with :math:`y = (x + u)/256`,
:math:`u \\sim U[0, 1)^D`,

.. math::

    \\log P(x) = \\log \\mathbb E_u\\big[p(y)\\big] - D\\log 256
    \\;\\ge\\; \\mathbb E_u\\big[\\log p(y)\\big] - D \\log 256.

So: train and evaluate :math:`p` on :func:`uniform` draws (data in :math:`[0, 1)`), pass
its log-density to :func:`log_prob_lower_bound`, and report :func:`bits_per_dim_8bit` of
that bound, an upper bound on the true bits/dim. Worked example, MNIST (:math:`D = 784`): a
model with :math:`\\log p(y) = 2000` nats on :math:`[0, 1]^{784}` has
:math:`\\log P(x) \\ge 2000 - 784 \\log 256 = -2347.4` nats, that is
:math:`2347.4 / (784 \\ln 2) = 4.32` bits/dim (:math:`= 8 - 2000 / (784 \\ln 2)`). The
same :func:`bits_per_dim_8bit` of a discrete log-probability (from
:mod:`genmath.discretized_logistic`, :mod:`genmath.discretized_normal` or a 256-way
categorical) is directly comparable; the density's own :math:`-\\log p(y) / (D \\ln 2)`
is not, being off by exactly 8 bits/dim.

The (dequantised) scale is :math:`y = (x + u)/256`, bins of width 1/256 whose union is
:math:`[0, 1)`; the discretised likelihoods use bin centres :math:`x/255` instead (the edge
bins there extend to infinity), each convention being the standard one for its model
family.

References:
    L. Theis, A. van den Oord, M. Bethge, *A note on the evaluation of generative models*,
    ICLR 2016, §3.1. L. Dinh, J. Sohl-Dickstein, S. Bengio, *Density estimation using Real
    NVP*, ICLR 2017, §4.1.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from genmath._src import validation, value_checks
from genmath._src.typing import Array, ArrayLike, Key, SampleShape

__all__ = ["bits_per_dim_8bit", "log_prob_lower_bound", "uniform"]

_LOG_256 = math.log(256.0)
_LN_TWO = math.log(2.0)


def uniform(key: Key, x: ArrayLike, *, sample_shape: SampleShape = ()) -> Array:
    """Dequantises 8-bit pixels with uniform noise onto :math:`[0, 1)`.

    .. math::

        y = \\frac{x + u}{256}, \\qquad u \\sim U[0, 1)^D

    Args:
        key: a ``jax.random`` key.
        x: pixel values in :math:`\\{0, \\dots, 255\\}`, any numeric dtype (e.g. ``uint8``).
        sample_shape: shape of the independent noise draws, prepended to ``x.shape``.

    Returns:
        Floats in :math:`[0, 1)` of shape ``sample_shape + x.shape``, in the compute dtype
        (for integer ``x`` JAX's default float: float32, float64 with ``jax_enable_x64``);
        :math:`\\lfloor 256 y \\rfloor = x`. NaN where ``x`` is not an integer in 0..255
        (with :mod:`genmath.debug` value checks on, an error naming ``x``).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import dequantize
        >>> x = jnp.array([0, 255], jnp.uint8)
        >>> y = dequantize.uniform(jax.random.key(0), x, sample_shape=3)
        >>> y.shape, bool(((y * 256).astype(int) == x).all())
        ((3, 2), True)

    References:
        L. Theis, A. van den Oord, M. Bethge, *A note on the evaluation of generative
        models*, ICLR 2016, §3.1.
    """
    name = "dequantize.uniform"
    (x,) = validation.promote(name, {}, {"x": x})
    value_checks.check_pixels(name, "x", x)
    sample_shape = validation.sample_shape(name, sample_shape)
    u = jax.random.uniform(key, sample_shape + x.shape, x.dtype)
    # (x + u) / 256 may round up to the next bin edge for u just below 1: keep y in C_x.
    y = (x + u) * (1.0 / 256.0)
    y = jnp.minimum(y, jnp.nextafter((x + 1.0) * (1.0 / 256.0), 0.0).astype(x.dtype))
    # A value off the pixel grid has no bin: NaN, as in the discretised likelihoods.
    on_grid = (x >= 0.0) & (x <= 255.0) & (x == jnp.round(x))
    return jnp.where(on_grid, y, jnp.nan)


def log_prob_lower_bound(log_density: ArrayLike, *, num_dims: int | ArrayLike) -> Array:
    """Turns a log-density on :math:`[0, 1]^D` into a lower bound on :math:`\\log P(x)`.

    .. math::

        \\log P(x) \\ge \\log p\\big((x + u)/256\\big) - D \\log 256
        \\quad\\text{(in expectation over } u\\text{)}

    The change of variables from the unit cube to the 256 bins per dimension; the bound
    holds in expectation over the noise (average over draws, or pass an importance-sampled
    :math:`\\log \\mathbb E_u[p]` estimate for a tighter one).

    Args:
        log_density: :math:`\\log p(y)` of whole examples in nats, at :math:`y` from
            :func:`uniform`, floating.
        num_dims: the number of dimensions :math:`D` of one example (784 for MNIST), a
            positive integer or an array broadcastable with ``log_density``.

    Returns:
        The lower bound on :math:`\\log P(x)` in nats, the broadcast shape of
        ``log_density`` and ``num_dims``.

    Example:
        >>> from genmath import dequantize
        >>> print(round(float(dequantize.log_prob_lower_bound(2000.0, num_dims=784)), 1))
        -2347.4

    References:
        L. Dinh, J. Sohl-Dickstein, S. Bengio, *Density estimation using Real NVP*, ICLR
        2017, §4.1.
    """
    name = "dequantize.log_prob_lower_bound"
    validation.check_count(name, "num_dims", num_dims)
    num_dims, log_density = validation.promote(
        name, {"log_density": log_density}, {"num_dims": num_dims}
    )
    return log_density - num_dims * _LOG_256


def bits_per_dim_8bit(log_prob: ArrayLike, *, num_dims: int | ArrayLike) -> Array:
    """Bits per dimension of 8-bit data: :math:`-\\log_2 P(x) / D`.

    .. math::

        \\mathrm{bpd}(x) = -\\frac{\\log P(x)}{D \\ln 2}

    ``log_prob`` must be a log-*probability* of the 8-bit image (in nats, at most 0): from a
    discretised likelihood, a 256-way categorical, or :func:`log_prob_lower_bound` of a
    dequantised density (then the result is an upper bound). A uniform model gives 8.
    :func:`genmath.latent.bits_per_dim` takes the opposite sign, a negative log-likelihood;
    under :mod:`genmath.debug` a positive ``log_prob`` here raises.

    Args:
        log_prob: :math:`\\log P(x)` of whole examples in nats, floating.
        num_dims: :math:`D`, a positive integer or an array broadcastable with
            ``log_prob``.

    Returns:
        Bits per dimension, the broadcast shape of ``log_prob`` and ``num_dims``.

    Example:
        >>> import math
        >>> from genmath import dequantize
        >>> bpd = dequantize.bits_per_dim_8bit(-784 * math.log(256.0), num_dims=784)
        >>> print(round(float(bpd), 4))
        8.0

    References:
        A. van den Oord, N. Kalchbrenner, K. Kavukcuoglu, *Pixel recurrent neural
        networks*, ICML 2016, §5.1.
    """
    name = "dequantize.bits_per_dim_8bit"
    validation.check_count(name, "num_dims", num_dims)
    num_dims, log_prob = validation.promote(name, {"log_prob": log_prob}, {"num_dims": num_dims})
    value_checks.check_log_probability(name, "log_prob", log_prob)
    return -log_prob / (num_dims * _LN_TWO)

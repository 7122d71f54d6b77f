"""Tests for genmath.dequantize: uniform dequantisation, the -D log 256 bound, bits/dim."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genmath import dequantize, latent, normal
from tests.genmath.helpers import DTYPE, f64


def test_uniform_stays_in_each_bin_and_is_uniform_there():
    x = jnp.array([0, 1, 128, 254, 255], jnp.uint8)
    y = dequantize.uniform(jax.random.key(0), x, sample_shape=20_000)
    assert y.shape == (20_000, 5) and y.dtype == DTYPE
    assert np.all(np.floor(np.asarray(y, np.float64) * 256) == np.asarray(x))
    assert np.all((y >= 0.0) & (y < 1.0))
    u = np.asarray(y, np.float64) * 256 - np.asarray(x)
    assert stats.kstest(u[:, 2], "uniform").pvalue > 1e-3
    np.testing.assert_array_equal(
        dequantize.uniform(jax.random.key(1), x, sample_shape=3),
        dequantize.uniform(jax.random.key(1), x, sample_shape=(3,)),
    )


def test_lower_bound_is_the_change_of_variables_and_holds():
    # A Gaussian density on the unit interval (D = 1): E_u log p((x+u)/256) - log 256 must
    # not exceed log P(x) = log of the density's mass over the bin [x/256, (x+1)/256).
    loc, scale = 0.4, 0.05
    x = jnp.arange(256)
    # E_u by the midpoint rule over u (deterministic, unlike a Monte-Carlo mean).
    u = (jnp.arange(400) + 0.5) / 400
    y = (x + u[:, None]) / 256
    log_density = normal.log_prob(y[..., None], loc=loc, log_scale=math.log(scale))
    bound = dequantize.log_prob_lower_bound(log_density, num_dims=1).mean(0)
    xs = np.arange(60, 160)
    exact = np.log(
        stats.norm.cdf((xs + 1) / 256, loc, scale) - stats.norm.cdf(xs / 256, loc, scale)
    )
    near = np.abs(xs / 256 - loc) < 2 * scale
    bound = bound[60:160]
    assert np.all(np.asarray(bound)[near] <= exact[near] + 1e-5)
    # The bound itself against the same midpoint rule in float64 with scipy's density ...
    ys = (xs + f64(u)[:, None]) / 256
    reference = np.mean(stats.norm.logpdf(ys, loc, scale), axis=0) - math.log(256.0)
    np.testing.assert_allclose(bound, reference, rtol=0, atol=2e-5)
    # ... and its gap to log P(x): Jensen's, below 1.1e-3 nats within two scales of loc.
    gap = exact[near] - np.asarray(bound)[near]
    assert np.all(gap <= 1.1e-3), gap.max()
    np.testing.assert_allclose(
        dequantize.log_prob_lower_bound(2000.0, num_dims=784), 2000.0 - 784 * math.log(256.0)
    )


def test_bits_per_dim_8bit_definition():
    # Uniform over 256 levels is 8 bits/dim; the definition agrees with latent.bits_per_dim.
    lp = -784 * math.log(256.0)
    np.testing.assert_allclose(dequantize.bits_per_dim_8bit(lp, num_dims=784), 8.0, rtol=1e-6)
    np.testing.assert_allclose(
        dequantize.bits_per_dim_8bit(jnp.array([-1000.0, -2000.0]), num_dims=784),
        latent.bits_per_dim(jnp.array([1000.0, 2000.0]), num_dims=784),
        rtol=1e-6,
    )
    # The docstring's worked example: a density of 2000 nats on [0, 1]^784 is <= 4.32 bpd.
    bpd = dequantize.bits_per_dim_8bit(
        dequantize.log_prob_lower_bound(2000.0, num_dims=784), num_dims=784
    )
    np.testing.assert_allclose(bpd, 8.0 - 2000.0 / (784 * math.log(2.0)), rtol=1e-6)
    assert round(float(bpd), 2) == 4.32


def test_pixels_off_the_grid_are_nan():
    # Like the discretised likelihoods: a value that is no 8-bit pixel has no bin.
    x = jnp.array([-3.0, 0.0, 12.5, 255.0, 256.0, 300.0, jnp.nan])
    y = jax.jit(dequantize.uniform)(jax.random.key(0), x)
    np.testing.assert_array_equal(np.isnan(y), [True, False, True, False, True, True, True])
    assert 0.0 <= float(y[1]) < 1.0 / 256 and 255.0 / 256 <= float(y[3]) < 1.0


def test_bad_input_raises_naming_the_argument():
    with pytest.raises(ValueError, match="num_dims"):
        dequantize.bits_per_dim_8bit(-1.0, num_dims=0)
    with pytest.raises(ValueError, match="num_dims"):
        dequantize.log_prob_lower_bound(-1.0, num_dims=True)
    for bad in (784.5, np.int64(0), math.inf, np.array([784.0, np.inf])):
        for fn in (dequantize.log_prob_lower_bound, dequantize.bits_per_dim_8bit):
            with pytest.raises(ValueError, match="`num_dims` must be a positive integer"):
                fn(-1.0, num_dims=bad)
    with pytest.raises(TypeError, match="`log_prob`"):
        dequantize.bits_per_dim_8bit(jnp.array([1, 2]), num_dims=784)
    with pytest.raises(TypeError, match="`x`"):
        dequantize.uniform(jax.random.key(0), jnp.zeros(2, jnp.complex64))
    with pytest.raises(TypeError, match="sample_shape"):
        dequantize.uniform(jax.random.key(0), jnp.zeros(2), sample_shape=1.5)

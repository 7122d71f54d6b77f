"""A 256-way categorical per pixel of an 8-bit image through categorical.log_prob(axis=)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genmath import categorical, dequantize


def test_event_axis_sums_the_pixels(rng):
    labels = jnp.asarray(rng.integers(0, 256, size=(3, 784)), jnp.uint8)
    logits = jnp.asarray(rng.normal(size=(3, 784, 256)), jnp.float32)
    per_pixel = categorical.log_prob(labels, logits=logits)
    assert per_pixel.shape == (3, 784)
    summed = categorical.log_prob(labels, logits=logits, axis=-1)
    assert summed.shape == (3,)
    np.testing.assert_allclose(summed, per_pixel.sum(-1), rtol=1e-6)
    reference = jax.nn.log_softmax(np.asarray(logits, np.float64), axis=-1)
    expected = np.take_along_axis(reference, np.asarray(labels)[..., None].astype(int), -1)
    np.testing.assert_allclose(summed, expected[..., 0].sum(-1), rtol=1e-5)
    images = labels.reshape(3, 28, 28)
    np.testing.assert_allclose(
        categorical.log_prob(images, logits=logits.reshape(3, 28, 28, 256), axis=(1, 2)),
        summed,
        rtol=1e-6,
    )


def test_uniform_logits_give_eight_bits_per_dim():
    labels = jnp.zeros((2, 784), jnp.uint8)
    lp = categorical.log_prob(labels, logits=jnp.zeros((784, 256)), axis=-1)
    np.testing.assert_allclose(dequantize.bits_per_dim_8bit(lp, num_dims=784), 8.0, rtol=1e-6)


def test_gradients_are_finite_and_axis_errors_name_it():
    labels = jnp.array([[0, 255, 17]])
    grad = jax.grad(lambda lg: categorical.log_prob(labels, logits=lg, axis=-1).sum())(
        jnp.zeros((1, 3, 256))
    )
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad.sum(-1), 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="axis"):
        categorical.log_prob(labels, logits=jnp.zeros((1, 3, 256)), axis=2)

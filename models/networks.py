"""Encoder and decoder networks: MLPs and small convolutional networks, in Flax NNX.

They know nothing of likelihoods: an encoder maps flat images ``(..., 784)`` to a vector,
a decoder maps a vector to ``(..., 784 * outputs_per_pixel)`` raw outputs, and the
likelihood (:mod:`models.likelihoods`) reads those. An optional ``context`` vector (the
one-hot label of a conditional model) is an extra input to either.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from models.mnist import IMAGE_SHAPE, NUM_PIXELS

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
}


def _with_context(h: jax.Array, context: jax.Array | None) -> jax.Array:
    if context is None:
        return h
    return jnp.concatenate([h, jnp.broadcast_to(context, (*h.shape[:-1], context.shape[-1]))], -1)


class MLP(nnx.Module):
    """Dense layers ``sizes[0] (+ context) -> ... -> sizes[-1]``, activation between them.

    The context, if any, is concatenated to the input, so ``sizes[0]`` counts it.
    """

    def __init__(self, sizes: tuple[int, ...], activation: str, *, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)])
        self.activation = activation

    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        x = _with_context(x, context)
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)

    @property
    def output_layer(self) -> nnx.Linear:
        return self.layers[-1]


def conv_output_size(num_layers: int) -> int:
    """Side of the 28x28 image after ``num_layers`` stride-2 "SAME" convolutions."""
    size = IMAGE_SHAPE[0]
    for _ in range(num_layers):
        size = -(-size // 2)  # "SAME" padding rounds up
    return size


class ConvEncoder(nnx.Module):
    """Stride-2 3x3 convolutions, then a dense layer on the flat features (and the context).

    Takes flat images ``(..., 784)``; the context joins the convolutional features before
    the dense layer, not the pixels.
    """

    def __init__(
        self,
        channels: tuple[int, ...],
        context_size: int,
        out_features: int,
        activation: str,
        *,
        rngs: nnx.Rngs,
    ):
        self.convs = nnx.List(
            [
                nnx.Conv(a, b, kernel_size=(3, 3), strides=(2, 2), padding="SAME", rngs=rngs)
                for a, b in itertools.pairwise((1, *channels))
            ]
        )
        size = conv_output_size(len(channels))
        self.head = nnx.Linear(size * size * channels[-1] + context_size, out_features, rngs=rngs)
        self.activation = activation

    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        batch_shape = x.shape[:-1]
        h = x.reshape(-1, *IMAGE_SHAPE, 1)  # NHWC, leading dimensions as one batch
        for conv in self.convs:
            h = act(conv(h))
        h = h.reshape(*batch_shape, math.prod(h.shape[1:]))
        return self.head(_with_context(h, context))


class ConvDecoder(nnx.Module):
    """A dense layer to a small feature map, then stride-2 3x3 transposed convolutions.

    Mirrors :class:`ConvEncoder`: ``(..., in_features)`` (context included) -> flat
    ``(..., 784 * outputs_per_pixel)``, pixel-major (the ``outputs_per_pixel`` values of a
    pixel are its last-axis channels), with an activation after every layer but the last.
    """

    def __init__(
        self,
        in_features: int,
        channels: tuple[int, ...],
        activation: str,
        *,
        outputs_per_pixel: int = 1,
        rngs: nnx.Rngs,
    ):
        self.size = conv_output_size(len(channels))
        if self.size * 2 ** len(channels) != IMAGE_SHAPE[0]:
            raise ValueError(
                f"ConvDecoder: {len(channels)} stride-2 layers do not map back to 28x28."
            )
        self.channels = channels[-1]
        self.dense = nnx.Linear(in_features, self.size * self.size * channels[-1], rngs=rngs)
        self.deconvs = nnx.List(
            [
                nnx.ConvTranspose(
                    a, b, kernel_size=(3, 3), strides=(2, 2), padding="SAME", rngs=rngs
                )
                for a, b in itertools.pairwise((*reversed(channels), outputs_per_pixel))
            ]
        )
        self.activation = activation

    def __call__(self, h: jax.Array, context: jax.Array | None = None) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        batch_shape = h.shape[:-1]
        h = _with_context(h, context)
        h = act(self.dense(h)).reshape(-1, self.size, self.size, self.channels)
        for deconv in self.deconvs[:-1]:
            h = act(deconv(h))
        h = self.deconvs[-1](h)  # (N, 28, 28, outputs_per_pixel)
        return h.reshape(*batch_shape, -1)

    @property
    def output_layer(self) -> nnx.ConvTranspose:
        return self.deconvs[-1]


def output_size(outputs_per_pixel: int) -> int:
    """A decoder's flat output size for ``outputs_per_pixel`` values per pixel."""
    return NUM_PIXELS * outputs_per_pixel

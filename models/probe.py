"""A linear probe: multinomial logistic regression on frozen features, trained with optax.

The probe's test accuracy measures how linearly a representation (e.g. a VAE's encoder
means) separates the classes. Features are standardised with the training statistics;
the loss is the mean negative ``genmath.categorical.log_prob`` plus a small L2 penalty.
The problem is convex, so the probe starts at zero and needs no random key.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from genmath import categorical


class LinearProbe(NamedTuple):
    """A fitted probe: ``logits = ((features - mean) / std) @ weights + bias``."""

    weights: jax.Array  # (features, classes)
    bias: jax.Array  # (classes,)
    mean: jax.Array  # (features,)
    std: jax.Array  # (features,)


def probe_logits(probe: LinearProbe, features: jax.Array) -> jax.Array:
    """Class logits of the probe for ``features`` of shape ``(n, features)``."""
    return ((features - probe.mean) / probe.std) @ probe.weights + probe.bias


def _check_features(where: str, features, labels):
    features = jnp.asarray(features)
    labels = jnp.asarray(labels)
    if features.ndim != 2 or not jnp.issubdtype(features.dtype, jnp.floating):
        raise ValueError(
            f"{where}: `features` must be a floating (n, features) array, "
            f"got {features.dtype} {features.shape}."
        )
    if labels.shape != features.shape[:1] or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"{where}: `labels` must be integers of shape {features.shape[:1]}, "
            f"got {labels.dtype} {labels.shape}."
        )
    return features, labels


@functools.partial(jax.jit, static_argnames=("num_classes", "steps", "learning_rate"))
def _fit(features, labels, l2, *, num_classes, steps, learning_rate):
    mean = jnp.mean(features, axis=0)
    std = jnp.std(features, axis=0) + 1e-6
    standardised = (features - mean) / std
    params = (
        jnp.zeros((features.shape[1], num_classes), features.dtype),
        jnp.zeros((num_classes,), features.dtype),
    )
    tx = optax.adam(learning_rate)

    def loss(params):
        weights, bias = params
        logits = standardised @ weights + bias
        nll = -jnp.mean(categorical.log_prob(labels, logits=logits))
        return nll + l2 * jnp.sum(weights**2)

    def step(carry, _):
        params, opt_state = carry
        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return LinearProbe(params[0], params[1], mean, std), losses


def fit_linear_probe(
    features: jax.Array,
    labels: jax.Array,
    *,
    num_classes: int = 10,
    steps: int = 500,
    learning_rate: float = 0.05,
    l2: float = 1e-4,
) -> LinearProbe:
    """Fits the probe by full-batch Adam for ``steps`` steps (one compiled ``lax.scan``)."""
    features, labels = _check_features("fit_linear_probe", features, labels)
    if steps < 1:
        raise ValueError(f"fit_linear_probe: `steps` must be positive, got {steps}.")
    probe, _ = _fit(
        features, labels, l2, num_classes=num_classes, steps=steps, learning_rate=learning_rate
    )
    return probe


def probe_accuracy(probe: LinearProbe, features: jax.Array, labels: jax.Array) -> float:
    """Fraction of ``features`` whose most likely class is the label."""
    features, labels = _check_features("probe_accuracy", features, labels)
    return float(_accuracy(probe, features, labels))


@jax.jit
def _accuracy(probe, features, labels):
    return jnp.mean(jnp.argmax(probe_logits(probe, features), axis=-1) == labels)

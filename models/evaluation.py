"""Batched evaluation of a model over a data set: pad, ``lax.map`` over batches, trim.

Every model's evaluation (test ELBO and NLL, the importance-sampled bound, encoder
features, class posteriors) goes through :func:`map_batches`. It is compiled once per
(function, model structure, shapes, options): a second call with the same arguments
reuses the executable, because the function it maps is a module-level function (hashed
by identity) and the model enters as its ``nnx`` graph definition (static) and state (an
argument), never as a closure.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


def map_batches(
    fn: Callable[..., Any],
    model: nnx.Module,
    *arrays: jax.Array,
    batch_size: int,
    key: jax.Array | None = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """``fn(model, *batch, key=..., **options)`` over batches of ``arrays``, concatenated.

    Args:
      fn: a module-level function ``fn(model, *batch_arrays, key, **options)`` returning a
        pytree of arrays whose leading axis is the batch (per-example results). Define it
        once at module level: a fresh closure per call would compile per call.
      model: an ``nnx.Module``; split once into graph definition and state.
      *arrays: arrays with the same leading size ``n`` (e.g. images and labels).
      batch_size: examples per batch; the last batch is padded with copies of the first
        example and the padding is trimmed from the result.
      key: a PRNG key, split into one key per batch (``None`` passes ``key=None``).
      options: static keyword arguments of ``fn`` (hashable values, e.g. ``num_samples``).

    Returns:
      ``fn``'s pytree with leading axis ``n``.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> def double(model, x, *, key):
    ...     return model(x)
    >>> out = map_batches(double, nnx.Linear(2, 1, rngs=nnx.Rngs(0)), jnp.ones((5, 2)),
    ...                   batch_size=2)
    >>> print(out.shape)
    (5, 1)
    """
    if not arrays:
        raise ValueError("map_batches: pass at least one array to map over.")
    arrays = tuple(jnp.asarray(a) for a in arrays)
    num = arrays[0].shape[0] if arrays[0].ndim else 0
    if num == 0 or any(a.ndim == 0 or a.shape[0] != num for a in arrays):
        raise ValueError(
            "map_batches: `arrays` must share a non-empty leading (example) axis, got shapes "
            f"{[a.shape for a in arrays]}."
        )
    batch_size = _positive_int("batch_size", batch_size)
    options = tuple(sorted((options or {}).items()))
    graphdef, state = nnx.split(model)
    return _map_batches(
        fn, graphdef, state, arrays, key, batch_size=min(batch_size, num), options=options
    )


@functools.partial(jax.jit, static_argnames=("fn", "graphdef", "batch_size", "options"))
def _map_batches(fn, graphdef, state, arrays, key, *, batch_size, options):
    model = nnx.merge(graphdef, state)
    num = arrays[0].shape[0]
    pad = -num % batch_size
    num_batches = (num + pad) // batch_size

    def batched(a):
        # Padding repeats the first example, so padded rows stay valid inputs (no NaN).
        padding = jnp.broadcast_to(a[:1], (pad, *a.shape[1:]))
        return jnp.concatenate([a, padding]).reshape(num_batches, batch_size, *a.shape[1:])

    keys = None if key is None else jax.random.split(key, num_batches)
    kwargs = dict(options)

    def one(inputs):
        batch, batch_key = inputs
        return fn(model, *batch, key=batch_key, **kwargs)

    out = jax.lax.map(one, (tuple(batched(a) for a in arrays), keys))
    return jax.tree.map(lambda t: t.reshape(num_batches * batch_size, *t.shape[2:])[:num], out)


def _positive_int(name: str, value) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"map_batches: `{name}` must be an int, got {value!r}.") from None
    if value < 1:
        raise ValueError(f"map_batches: `{name}` must be positive, got {value}.")
    return value

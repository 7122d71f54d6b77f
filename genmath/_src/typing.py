"""Type aliases shared by every genmath module (annotations only, no runtime checks)."""

from __future__ import annotations

from collections.abc import Sequence

import jax

__all__ = ["Array", "ArrayLike", "Axis", "Key", "SampleShape", "Shape"]

#: A JAX array (what every genmath function returns).
Array = jax.Array
#: Anything ``jnp.asarray`` accepts: JAX or NumPy arrays, NumPy and Python scalars.
ArrayLike = jax.typing.ArrayLike
#: An event axis or a tuple of axes (negative values count from the end).
Axis = int | tuple[int, ...]
#: A ``jax.random`` key: a typed key (``jax.random.key``) or a legacy uint32 key.
Key = jax.Array
#: A static array shape.
Shape = tuple[int, ...]
#: The ``sample_shape`` of a ``sample`` call: an int ``n`` (meaning ``(n,)``) or a tuple.
SampleShape = int | Sequence[int]

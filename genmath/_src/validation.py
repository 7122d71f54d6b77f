"""Argument checks and dtype promotion shared by every distribution module.

All checks run on static information (dtypes and shapes), so they fire at trace
time inside ``jax.jit`` and cost nothing at run time.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


def _is_python_scalar(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compute_dtype(*values: ArrayLike) -> np.dtype:
    """The floating dtype to compute in: the promoted dtype, at least float32.

    Half-precision inputs (bfloat16, float16) are accumulated in float32 because
    sums over hundreds of pixels lose several digits in 8 mantissa bits.
    """
    dtype = jnp.result_type(*values)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(dtype, float)
    if jnp.finfo(dtype).bits < 32:
        dtype = jnp.dtype(jnp.float32)
    return dtype


def promote(
    where: str,
    params: Mapping[str, ArrayLike],
    data: Mapping[str, ArrayLike] | None = None,
    *,
    broadcast: bool = True,
) -> list[Array]:
    """Checks and promotes arguments to one floating dtype.

    Args:
        where: the public function's name, used in error messages.
        params: distribution parameters by name. Each must be a floating-point array
            or a Python scalar; anything else raises ``TypeError`` naming it.
        data: observed values by name (may be bool or integer, e.g. binary pixels).
        broadcast: also check that all shapes broadcast together.

    Returns:
        The data values followed by the parameters, in order, as arrays of the
        common compute dtype (see :func:`compute_dtype`).
    """
    data = dict(data or {})
    for name, value in params.items():
        if _is_python_scalar(value):
            continue
        dtype = jnp.result_type(value)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"{where}: `{name}` must be a floating-point array, got dtype {dtype}.")
    for name, value in data.items():
        dtype = jnp.result_type(value)
        if not (jnp.issubdtype(dtype, jnp.number) or dtype == jnp.bool_):
            raise TypeError(f"{where}: `{name}` must be numeric, got dtype {dtype}.")
        if jnp.issubdtype(dtype, jnp.complexfloating):
            raise TypeError(f"{where}: `{name}` must be real, got dtype {dtype}.")
    everything = {**data, **params}
    dtype = compute_dtype(*everything.values())
    arrays = {name: jnp.asarray(value, dtype) for name, value in everything.items()}
    if broadcast:
        check_broadcast(where, {n: a.shape for n, a in arrays.items()})
    return list(arrays.values())


def check_broadcast(where: str, shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
    """Returns the broadcast shape or raises ``ValueError`` naming every argument."""
    try:
        return jnp.broadcast_shapes(*shapes.values())
    except ValueError:
        described = ", ".join(f"`{n}` {tuple(s)}" for n, s in shapes.items())
        raise ValueError(f"{where}: shapes do not broadcast: {described}.") from None


def check_axis(where: str, axis: int | tuple[int, ...], ndim: int) -> tuple[int, ...]:
    """Normalises an event ``axis`` (int or tuple) against ``ndim``, with a clear error."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    normalised = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{where}: axis {a} is out of range for an array of rank {ndim}.")
        normalised.append(a % ndim)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"{where}: repeated axis in {axis}.")
    return tuple(normalised)


def check_mask(where: str, mask: ArrayLike | None, shape: tuple[int, ...]) -> Array | None:
    """Checks an optional boolean ``where=`` mask against the elementwise shape."""
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"{where}: `where` must be a boolean mask, got dtype {mask.dtype}.")
    check_broadcast(where, {"where": mask.shape, "elementwise terms": shape})
    return mask

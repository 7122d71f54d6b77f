"""Argument checks and dtype promotion shared by every distribution module.

All checks run on static information (dtypes and shapes), so they fire at trace
time inside ``jax.jit`` and cost nothing at run time.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from genmath._src.typing import Array, ArrayLike, Axis, SampleShape, Shape


def _is_python_scalar(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_array_like(caller: str, name: str, value) -> None:
    """``TypeError`` naming ``name`` unless ``value`` is what ``jax.typing.ArrayLike`` admits
    (a JAX or NumPy array, a NumPy scalar, a Python scalar): lists, tuples, ``None`` and
    strings are refused here, as ``jax.numpy`` refuses them, rather than by a message of
    ``jnp.result_type`` or ``jnp.asarray`` that names neither the function nor the argument."""
    if isinstance(value, (jax.Array, np.ndarray, np.generic, bool, int, float, complex)):
        return
    if hasattr(value, "__jax_array__"):
        return
    raise TypeError(
        f"{caller}: `{name}` must be an array or a scalar, got {type(value).__name__}"
        + (" (use jnp.asarray)" if isinstance(value, (list, tuple)) else "")
        + "."
    )


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
    caller: str,
    params: Mapping[str, ArrayLike],
    data: Mapping[str, ArrayLike] | None = None,
    *,
    broadcast: bool = True,
) -> list[Array]:
    """Checks and promotes arguments to one floating dtype.

    Args:
        caller: the public function's name, used in error messages.
        params: distribution parameters by name. Each must be a floating-point array
            or a Python scalar; anything else raises ``TypeError`` naming it.
        data: observed values by name (may be bool or integer, e.g. binary pixels).
        broadcast: also check that all shapes broadcast together.

    Returns:
        The data values followed by the parameters, in order, as arrays of the
        common compute dtype (see :func:`compute_dtype`).
    """
    data = dict(data or {})
    for name, value in {**data, **params}.items():
        check_array_like(caller, name, value)
    for name, value in params.items():
        if _is_python_scalar(value):
            continue
        dtype = jnp.result_type(value)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{caller}: `{name}` must be a floating-point array, got dtype {dtype}."
            )
    for name, value in data.items():
        dtype = jnp.result_type(value)
        if not (jnp.issubdtype(dtype, jnp.number) or dtype == jnp.bool_):
            raise TypeError(f"{caller}: `{name}` must be numeric, got dtype {dtype}.")
        if jnp.issubdtype(dtype, jnp.complexfloating):
            raise TypeError(f"{caller}: `{name}` must be real, got dtype {dtype}.")
    everything = {**data, **params}
    dtype = compute_dtype(*everything.values())
    arrays = {name: jnp.asarray(value, dtype) for name, value in everything.items()}
    if broadcast:
        check_broadcast(caller, {n: a.shape for n, a in arrays.items()})
    return list(arrays.values())


def check_broadcast(caller: str, shapes: Mapping[str, Shape]) -> Shape:
    """Returns the broadcast shape or raises ``ValueError`` naming every argument."""
    try:
        return jnp.broadcast_shapes(*shapes.values())
    except ValueError:
        described = ", ".join(f"`{n}` {tuple(s)}" for n, s in shapes.items())
        raise ValueError(f"{caller}: shapes do not broadcast: {described}.") from None


def _ints(caller: str, name: str, value) -> tuple[int, ...]:
    """An int or a sequence of ints (NumPy integers included, bools not) as a tuple of
    Python ints; ``TypeError`` naming ``name`` for anything else."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    try:
        if any(isinstance(n, (bool, np.bool_)) for n in items):
            raise TypeError
        return tuple(operator.index(n) for n in items)
    except TypeError:
        raise TypeError(
            f"{caller}: `{name}` must be an int or a tuple of ints, got {value!r}."
        ) from None


def one_axis(caller: str, axis, what: str) -> int:
    """A single axis (a Python or NumPy integer, or a concrete 0-d integer array; not a
    tuple, not a bool) as a Python int; ``TypeError`` naming ``axis`` and ``what`` it is
    for anything else."""
    error = TypeError(f"{caller}: `axis` must be an int ({what}), got {axis!r}.")
    if isinstance(axis, (tuple, list, bool, np.bool_)):
        raise error
    try:
        return operator.index(axis)
    except TypeError:
        raise error from None


def check_axis(caller: str, axis: Axis, ndim: int) -> tuple[int, ...]:
    """Normalises an event ``axis`` (int or tuple) against ``ndim``, with a clear error."""
    axes = _ints(caller, "axis", axis)
    normalised = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{caller}: axis {a} is out of range for an array of rank {ndim}.")
        normalised.append(a % ndim)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"{caller}: repeated axis in {axis}.")
    return tuple(normalised)


def check_count(caller: str, name: str, value) -> None:
    """Raises ``ValueError`` naming ``name`` unless a concrete ``value`` (a Python or NumPy
    number or array, or a concrete jax array) holds positive integers only; a traced value
    cannot be read at trace time and passes unchecked."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{caller}: `{name}` must be a positive integer, got {value!r}.")
    try:
        array = np.asarray(value)
    except jax.errors.TracerArrayConversionError:
        return
    numeric = np.issubdtype(array.dtype, np.number) and not np.issubdtype(
        array.dtype, np.complexfloating
    )
    # (inf passes both > 0 and == round(inf): it needs its own test.)
    if not numeric or not np.all((array > 0) & np.isfinite(array) & (array == np.round(array))):
        raise ValueError(f"{caller}: `{name}` must be a positive integer, got {value!r}.")


def check_mask(caller: str, mask: ArrayLike | None, shape: Shape) -> Array | None:
    """Checks an optional boolean ``where=`` mask against the elementwise shape."""
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"{caller}: `where` must be a boolean mask, got dtype {mask.dtype}.")
    check_broadcast(caller, {"where": mask.shape, "elementwise terms": shape})
    return mask


def sample_shape(caller: str, value: SampleShape) -> Shape:
    """Normalises a ``sample_shape`` (an int ``n`` means ``(n,)``) to a tuple of sizes.

    Raises ``TypeError`` for anything but an int or a sequence of ints (a float, a bool,
    ``None``) and ``ValueError`` for a negative size, naming ``sample_shape``.
    """
    shape = _ints(caller, "sample_shape", value)
    if any(n < 0 for n in shape):
        raise ValueError(f"{caller}: `sample_shape` must not be negative, got {value!r}.")
    return shape


def check_classes(caller: str, name: str, shape: Shape, axes: tuple[int, ...]) -> None:
    """Raises ``ValueError`` naming ``name`` when its class (component) axes hold no class:
    a distribution over nothing has no log-probability, entropy or sample."""
    empty = [axis for axis in axes if shape[axis] == 0]
    if empty:
        raise ValueError(
            f"{caller}: `{name}` has no classes (size 0 along axis {empty[0]} of shape "
            f"{tuple(shape)}); a distribution needs at least one."
        )


def check_classes_among(caller: str, shapes: dict[str, Shape], axes: tuple[int, ...]) -> None:
    """:func:`check_classes` for arguments that broadcast together, naming the one that is
    empty along the class axes ``axes`` (non-negative, of the broadcast rank) with its own
    shape and axis; an argument without such an axis (size 1 there) cannot be the empty one."""
    ndim = max(len(shape) for shape in shapes.values())
    for name, shape in shapes.items():
        offset = ndim - len(shape)
        check_classes(caller, name, shape, tuple(a - offset for a in axes if a >= offset))

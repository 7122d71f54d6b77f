"""Opt-in run-time checks of argument values, built on ``jax.experimental.checkify``.

Shapes and dtypes are checked at trace time (:mod:`genmath._src.validation`); values
cannot be, since under ``jax.jit`` they are abstract. Each helper here adds one
``checkify.check`` naming the public function and the argument, but only while the
switch :data:`ENABLED` is on when the function is *traced*; with it off (the default) the
helpers emit nothing, so the traced program is exactly the one without them.

The switch is a JAX configuration state that is part of the jit cache key: a function
jit-compiled with the checks off is traced again, with them, when it is called with the
checks on, and vice versa.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
from jax.experimental import checkify

from genmath._src.typing import Array


def _make_switch():
    """The switch, or ``None`` where this jax lacks the private API it is built on."""
    # Private JAX API (`bool_state`): the one way to make a switch read at trace time part
    # of the jit cache key, so that cached traces never mix the two modes. The environment
    # variable GENMATH_VALUE_CHECKS=1 turns it on for a whole process. A jax release that
    # changes it must not break `import genmath`: the checks are then unavailable (off),
    # and turning them on raises, saying why (see `require_switch`).
    try:
        from jax._src import config as jax_config

        return jax_config.bool_state(
            "genmath_value_checks",
            False,
            "Add checkify checks of argument values to genmath functions (see genmath.debug).",
            include_in_jit_key=True,
            include_in_trace_context=True,
        )
    except (ImportError, AttributeError, TypeError):
        return None


ENABLED = _make_switch()


def _make_runtime_errors():
    """JAX's switch that lowers a ``checkify.check`` left unfunctionalised under ``jit``
    to a run-time error on CPU and GPU, or ``None`` where this jax lacks it."""
    # Private JAX API too (`xla_runtime_errors`, the jax_experimental_unsafe_xla_runtime_errors
    # flag): without it, a plain `jax.jit` of code that contains a check fails to compile
    # ("Cannot abstractly evaluate a checkify.check which was not functionalized"), even
    # on valid input, so turning the checks on for a whole process would break every
    # jitted training step that does not call `checkify.checkify` itself.
    try:
        from jax._src import config as jax_config

        return jax_config.xla_runtime_errors
    except (ImportError, AttributeError):
        return None


RUNTIME_ERRORS = _make_runtime_errors()
# Whether genmath turned RUNTIME_ERRORS on for the process (and so may turn it off again).
_TURNED_ON = False


def raising_under_jit(on: bool):
    """A context in which checks that no ``checkify.checkify`` functionalises raise when
    the compiled program runs (``on``), or one that changes nothing."""
    if on and RUNTIME_ERRORS is not None:
        return RUNTIME_ERRORS(True)
    return contextlib.nullcontext()


def raise_under_jit_for_the_process() -> None:
    """Turns on the run-time errors of unfunctionalised checks for the whole process."""
    # The global value, not `.value`: inside `debug.checks()` the thread-local True
    # would hide a global False that stays after the block.
    global _TURNED_ON
    if RUNTIME_ERRORS is not None and not RUNTIME_ERRORS.get_global():
        jax.config.update(RUNTIME_ERRORS.name, True)
        _TURNED_ON = True


def restore_for_the_process() -> None:
    """JAX's flag back off, if :func:`raise_under_jit_for_the_process` turned it on."""
    global _TURNED_ON
    if _TURNED_ON:
        jax.config.update(RUNTIME_ERRORS.name, False)
        _TURNED_ON = False


if ENABLED is not None and ENABLED.value:  # GENMATH_VALUE_CHECKS=1 in the environment
    raise_under_jit_for_the_process()


def require_switch(caller: str):
    """The switch, or a ``RuntimeError`` naming ``caller`` where this jax has none."""
    if ENABLED is None:
        import jax

        raise RuntimeError(
            f"{caller}: the value checks need jax's config.bool_state, which jax "
            f"{jax.__version__} does not offer; the checks are unavailable (off)."
        )
    return ENABLED


_PIXEL_MAX = 255.0


def enabled() -> bool:
    return ENABLED is not None and bool(ENABLED.value)


def _check(caller: str, name: str, ok: Array, value: Array, requirement: str) -> None:
    """One check that every element of ``value`` satisfies ``ok``, naming the argument.

    The message carries the first offending value (in row-major order), read at run time.
    """
    ok = jnp.broadcast_to(ok, jnp.shape(value)).reshape(-1)
    flat = jnp.reshape(value, -1)
    # Picked by a masked sum, not by indexing: an index into an array sharded in explicit
    # mode is a dynamic slice that JAX refuses on a sharded dimension.
    first = jnp.arange(flat.size) == jnp.argmin(ok)
    first_bad = jnp.sum(jnp.where(first, flat, 0)) if flat.size else jnp.zeros((), flat.dtype)
    checkify.check(
        jnp.all(ok),
        f"{caller}: `{name}` {requirement}, got {{}}.",
        first_bad,
    )


def check_in_unit_interval(caller: str, name: str, value: Array) -> None:
    """Every element in [0, 1] (NaN fails)."""
    if enabled():
        _check(caller, name, (value >= 0) & (value <= 1), value, "must lie in [0, 1]")


def check_log_probability(caller: str, name: str, value: Array) -> None:
    """Every element a log-probability, at most 0 (NaN fails)."""
    if enabled():
        _check(caller, name, value <= 0, value, "must be a log-probability (at most 0)")


def check_pixels(caller: str, name: str, value: Array) -> None:
    """Every element an integer in 0..255 (an 8-bit pixel value)."""
    if enabled():
        ok = (value >= 0) & (value <= _PIXEL_MAX) & (value == jnp.round(value))
        _check(caller, name, ok, value, "must hold integers in 0..255")


def check_labels(caller: str, name: str, labels: Array, num_classes: int) -> None:
    """Every label in [0, num_classes)."""
    if enabled():
        ok = (labels >= 0) & (labels < num_classes)
        _check(caller, name, ok, labels, f"must hold class indices in [0, {num_classes})")


def check_scale_tril(caller: str, name: str, tril: Array, *, inverted: bool) -> None:
    """A Cholesky factor's lower triangle finite and, where it is inverted, its diagonal
    non-zero.

    A zero on the diagonal is a singular covariance: harmless for a factor that is only
    multiplied (a degenerate :math:`p`, whose entropy is :math:`-\\infty`), but ``inf`` or
    NaN wherever the factor is solved with (``inverted=True``). A negative entry is allowed,
    as documented in :mod:`genmath.mvn`.
    """
    if enabled():
        lower = jnp.tril(tril)
        _check(caller, name, jnp.isfinite(lower), lower, "must hold finite values")
        if inverted:
            diagonal = jnp.diagonal(tril, axis1=-2, axis2=-1)
            requirement = "must have a non-zero diagonal (a singular covariance)"
            _check(caller, name, diagonal != 0, diagonal, requirement)

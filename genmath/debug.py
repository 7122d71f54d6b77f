"""Opt-in checks of argument *values*, which raise even under ``jax.jit``.

genmath checks shapes and dtypes at trace time, and gives documented NaN (or
:math:`\\pm\\infty`) for values outside a function's domain, since a jitted function
cannot look at its values. With the checks on, the functions below also check the values
that would otherwise silently give NaN, through JAX's own
:mod:`jax.experimental.checkify`, and the failure names the function and the argument:

* :func:`genmath.bernoulli.log_prob` and :func:`~genmath.bernoulli.continuous_log_prob`:
  ``x`` outside :math:`[0, 1]`; :func:`~genmath.bernoulli.logits_from_probs`: ``probs``
  outside :math:`[0, 1]`;
* :func:`genmath.categorical.log_prob`: a label outside :math:`[0, K)` (negative ones
  included);
* :mod:`genmath.mvn` (``log_prob``, ``entropy``, ``kl``, ``cross_entropy``, ``sample``): a
  non-finite entry of a ``scale_tril``; and a zero diagonal entry (a singular covariance)
  of the factors that are solved with, ``log_prob``'s ``scale_tril`` and the
  ``scale_tril_q`` of ``kl`` and ``cross_entropy`` (a singular ``p`` is a valid, degenerate
  distribution: entropy :math:`-\\infty`);
* :mod:`genmath.discretized_logistic`, :mod:`genmath.discretized_normal` (``log_prob``,
  ``mixture_log_prob``) and :func:`genmath.dequantize.uniform`: ``x`` not an integer in
  0..255;
* :func:`genmath.dequantize.bits_per_dim_8bit`: a ``log_prob`` above 0 (a negative
  log-likelihood, which :func:`genmath.latent.bits_per_dim` takes, given by mistake).

The switch is read when a function is traced. Off (the default), nothing is added: the
traced program is identical to one without checks, so they cost nothing. On, each check is
a ``checkify.check``, and a failure surfaces in one of three ways:

* under :func:`checked` (``checkify``, ``jit`` and raise in one) a
  ``checkify.JaxRuntimeError`` whose message names the function and the argument; under
  your own ``checkify.checkify``, the same message in the returned error;
* under a plain ``jax.jit`` or ``lax.scan`` (a training step left as it is): while the
  checks are on, genmath also turns on JAX's
  ``jax_experimental_unsafe_xla_runtime_errors``, so that the compiled program raises
  when it runs, on CPU and GPU, a ``JaxRuntimeError`` whose message ends with the same
  text. On TPU, and for programs sharded over several devices, which that switch does
  not cover, wrap the step in :func:`checked` or ``checkify.checkify`` instead;
* called eagerly, a failing check raises at once.

The switch is part of JAX's jit cache key, so a jitted function is traced again when it is
called in the other mode. ``GENMATH_VALUE_CHECKS=1`` in the environment turns the checks
on for a whole process, so that an existing script runs with them unchanged.

Example:
    >>> import jax.numpy as jnp
    >>> from genmath import bernoulli, debug
    >>> x = jnp.array([1.0, 1.5])  # 1.5 is not a probability of a pixel being on
    >>> print(bernoulli.log_prob(x, logits=jnp.zeros(2)))  # checks off: documented NaN
    nan
    >>> checked_log_prob = debug.checked(bernoulli.log_prob)  # checkify + jit + throw
    >>> checked_log_prob(x, logits=jnp.zeros(2))
    Traceback (most recent call last):
        ...
    jax._src.checkify.JaxRuntimeError: bernoulli.log_prob: `x` must lie in [0, 1], got 1.5. ...
    >>> print(checked_log_prob(jnp.array([1.0, 0.0]), logits=jnp.zeros(2)).round(4))
    -1.3863
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import jax
import numpy as np
from jax.experimental import checkify

from genmath._src import value_checks

__all__ = ["checked", "checks", "checks_enabled", "enable_checks"]


def checks_enabled() -> bool:
    """Whether functions traced now include the value checks.

    Returns:
        ``True`` inside :func:`checks`, after ``enable_checks(True)``, or with
        ``GENMATH_VALUE_CHECKS=1`` in the environment; ``False`` otherwise.

    Example:
        >>> from genmath import debug
        >>> debug.checks_enabled()
        False
    """
    return value_checks.enabled()


@contextlib.contextmanager
def checks(*, enabled: bool = True) -> Iterator[None]:
    """Context manager: functions traced inside it include the value checks (or not).

    Args:
        enabled: ``True`` to add the checks, ``False`` to leave them out inside a region
            where they are on.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from jax.experimental import checkify
        >>> from genmath import categorical, debug
        >>> f = checkify.checkify(jax.jit(lambda y: categorical.log_prob(y, logits=jnp.zeros(3))))
        >>> with debug.checks():
        ...     error, _ = f(jnp.array([0, 3]))
        >>> print(error.get())
        categorical.log_prob: `labels` must hold class indices in [0, 3), got 3. (`check` failed)
    """
    switch = value_checks.require_switch("debug.checks")
    with switch(bool(enabled)), value_checks.raising_under_jit(bool(enabled)):
        yield


def enable_checks(enabled: bool) -> None:
    """Turns the value checks on or off for the whole process (for code traced from now).

    Args:
        enabled: the new default, overridden inside :func:`checks`.

    Example:
        >>> from genmath import debug
        >>> debug.enable_checks(True)
        >>> debug.checks_enabled()
        True
        >>> debug.enable_checks(False)
    """
    value_checks.require_switch("debug.enable_checks")
    jax.config.update("genmath_value_checks", bool(enabled))
    if enabled:
        value_checks.raise_under_jit_for_the_process()
    else:
        value_checks.restore_for_the_process()


def _cache_key(value):
    """A hashable, type-exact stand-in for a static option: a list becomes a tuple, and
    2, 2.0 and True stay apart (as dictionary keys they are one), so that a call with a
    bad ``sample_shape=2.0`` is not served the compilation of ``sample_shape=2``."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_cache_key(item) for item in value))
    return (type(value).__name__, value)


def _staging() -> bool:
    """Whether the caller is being staged out (``jit``, ``scan``, ...); ``True`` where this
    jax lacks the probe, so that a traced call is refused rather than failing to compile."""
    probe = getattr(jax.core, "unsafe_am_i_under_a_jit_DO_NOT_USE", None)
    return True if probe is None else bool(probe())


def checked(fn: Callable, *, jit: bool = True) -> Callable:
    """``fn`` with the value checks on, functionalised, (by default) jitted and raising.

    The returned function traces ``fn`` with the checks on, runs it through
    ``checkify.checkify`` and ``jax.jit``, and raises the first failed check as a
    ``checkify.JaxRuntimeError`` (a ``ValueError``) naming the function and the argument;
    otherwise it returns ``fn``'s value. It is the outermost staged wrapper:
    ``debug.checked(jax.jit(f))`` works, and so do ``jax.vmap`` and ``jax.grad`` of the
    checked function, but calling it inside ``jax.jit`` or ``lax.scan`` is a ``TypeError``
    (the throw cannot be compiled; to check inside a jitted function see :func:`checks`).
    Keyword arguments that are not arrays (``axis=-1``, ``sample_shape=3``, a Python
    float) are options, fixed at trace time: one compilation per distinct set of them.

    Args:
        fn: any function calling genmath functions.
        jit: ``False`` to trace without ``jax.jit`` (checkify still stages the function).

    Returns:
        A function with ``fn``'s signature and value.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import bernoulli, debug
        >>> checked_logits = debug.checked(bernoulli.logits_from_probs)
        >>> print(checked_logits(jnp.array([0.5, 1.0])))
        [ 0. inf]
        >>> checked_logits(jnp.array([0.5, -0.25]))
        Traceback (most recent call last):
            ...
        jax._src.checkify.JaxRuntimeError: bernoulli.logits_from_probs: `probs` must lie in ...
    """

    compiled = {}

    def compile_for(options: dict) -> Callable:
        """The checkified (and jitted) function with the non-array keyword options (an
        ``axis``, a ``sample_shape``) bound as constants: they must stay static."""
        key = tuple(sorted((name, _cache_key(value)) for name, value in options.items()))
        if key not in compiled:

            def with_checks(*args, **kwargs):
                with checks():
                    return fn(*args, **kwargs, **options)

            functionalised = checkify.checkify(with_checks)
            compiled[key] = jax.jit(functionalised) if jit else functionalised
        return compiled[key]

    @functools.wraps(fn)
    def run(*args, **kwargs):
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kwargs)))
        # Under a staging trace (jit, scan, ...) the throw, a Python-level step on the
        # error's value, could not compile; under an eager vmap or grad it raises as usual.
        if traced and _staging():
            raise TypeError(
                "debug.checked: the checked function was called on traced values inside "
                "jax.jit or lax.scan; wrap the other way round, as in "
                "debug.checked(jax.jit(f)), or use debug.checks() inside the jitted function."
            )
        arrays = {k: v for k, v in kwargs.items() if isinstance(v, (jax.Array, np.ndarray))}
        options = {k: v for k, v in kwargs.items() if k not in arrays}
        error, value = compile_for(options)(*args, **arrays)
        error.throw()
        return value

    return run

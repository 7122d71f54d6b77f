"""Dtypes, tolerances and float64 reference helpers shared by the genmath tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# float32 by default, float64 under JAX_ENABLE_X64=1. The float32 cases are not repeated in
# the float64 pass: the default pass runs them, and CI runs both passes.
X64 = jax.config.jax_enable_x64
DTYPE = jnp.asarray(0.0).dtype
DTYPES = [np.float64] if X64 else [np.float32]


def tol(dtype) -> dict:
    """Tolerance for comparing a result in ``dtype`` with a float64 reference of its inputs."""
    eps = float(np.finfo(dtype).eps)
    return {"rtol": 32 * eps, "atol": 32 * eps}


def grad_tol(dtype) -> dict:
    """Finite-difference step and tolerance for ``check_grads`` in ``dtype``.

    In float32 a finite difference is coarse (truncation of order eps^2 times the third
    derivative, rounding of order 1e-7 / eps, and worse for second derivatives), so the
    float32 check catches a wrong rule, not an inaccurate one; the float64 pass checks
    the rules to 1e-6, and float32-only code paths are compared with float64 directly."""
    if np.dtype(dtype) == np.float64:
        return {"eps": 1e-5, "atol": 1e-6, "rtol": 1e-6}
    return {"eps": 1e-2, "atol": 2e-2, "rtol": 2e-2}


def f64(a) -> np.ndarray:
    return np.asarray(a, np.float64)


def rounding_tol(dtype) -> float:
    """Relative tolerance for a handful of roundings in ``dtype``: sums over ~100 terms or
    well-conditioned triangular solves."""
    return {jnp.dtype(jnp.float32): 2e-5, jnp.dtype(jnp.float64): 1e-12}[jnp.dtype(dtype)]


def assert_close(actual, expected, dtype=DTYPE, scale=None):
    """Checks against a float64 reference with ``rounding_tol``; ``scale`` sets the absolute
    tolerance for values that are sums of terms of mixed sign (the error follows the terms,
    not the sum)."""
    expected = np.asarray(expected, np.float64)
    scale = np.max(np.abs(expected)) if scale is None else scale
    np.testing.assert_allclose(
        np.asarray(actual, np.float64),
        expected,
        rtol=rounding_tol(dtype),
        atol=rounding_tol(dtype) * scale,
    )

"""Turning an implementation into a compiled, timed callable (JAX or torch).

``forward`` evaluates one value per row. ``value_and_grad`` differentiates the sum
of those values with respect to the workload's parameters (not the data).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

MODES = ("forward", "value_and_grad")


@dataclasses.dataclass
class Prepared:
    """A compiled implementation: ``call()`` runs once and blocks on the result."""

    call: Callable[[], object]
    compile_s: float | None  # None for eager frameworks (torch)
    first_call_s: float
    output: np.ndarray | None  # forward output, for the accuracy check
    finite: bool  # every value (and gradient) of the first call is finite


def prepare_jax(fn: Callable, params: dict, data: dict, mode: str) -> Prepared:
    """jit-compiles ``fn`` ahead of time, timing tracing + lowering + compilation."""
    if mode == "forward":
        traced = lambda p, d: fn(**p, **d)
    else:
        traced = jax.value_and_grad(lambda p, d: jnp.sum(fn(**p, **d)))
    start = time.perf_counter()
    compiled = jax.jit(traced).lower(params, data).compile()
    compile_s = time.perf_counter() - start

    def call():
        return jax.block_until_ready(compiled(params, data))

    start = time.perf_counter()
    result = call()
    first_call_s = time.perf_counter() - start
    output = np.asarray(result, dtype=np.float64) if mode == "forward" else None
    finite = all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(result))
    return Prepared(call, compile_s, first_call_s, output, finite)


def prepare_torch(fn: Callable, params: dict, data: dict, mode: str) -> Prepared:
    """Eager torch on CPU: no compilation; the first call is timed separately."""
    import torch

    def tensor(v):
        # Class labels as int64, torch's index dtype; everything else in float32.
        v = np.asarray(v)
        return torch.from_numpy(
            v.astype(np.int64 if np.issubdtype(v.dtype, np.integer) else np.float32)
        )

    data_t = {k: tensor(v) for k, v in data.items()}
    if mode == "forward":
        params_t = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in params.items()}

        def call():
            with torch.inference_mode():
                return fn(**params_t, **data_t)
    else:
        params_t = {
            k: torch.from_numpy(np.asarray(v, np.float32)).requires_grad_()
            for k, v in params.items()
        }

        def call():
            total = fn(**params_t, **data_t).sum()
            grads = torch.autograd.grad(total, list(params_t.values()))
            return total, grads

    start = time.perf_counter()
    result = call()
    first_call_s = time.perf_counter() - start
    leaves = [result] if mode == "forward" else [result[0], *result[1]]
    finite = all(bool(torch.all(torch.isfinite(leaf))) for leaf in leaves)
    output = result.double().numpy() if mode == "forward" else None
    return Prepared(call, None, first_call_s, output, finite)

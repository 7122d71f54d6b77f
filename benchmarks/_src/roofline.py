"""Memory roofline: the least time a kernel can take if it only moves its bytes.

The floor is (bytes the kernel must read + bytes it must write) divided by the
device-to-device copy bandwidth measured in the same run, so it reflects this
device under this load rather than a datasheet figure.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._src import timing

MIB = 1 << 20


def copy_bandwidth(nbytes: int, reps: int) -> dict:
    """Times a jit-compiled ``x + 1`` over ``nbytes`` of float32 (read once, write once).

    ``x + 1`` rather than ``jnp.copy``: jit may return an unchanged input without
    copying it, while an addition has to stream every byte in and out. The input
    buffer is donated, so the result is written in place: a fresh output buffer
    would also time the operating system zeroing new pages (on CPU that alone
    divides the figure by ten), which says nothing about the memory system. The
    fresh-buffer figure is recorded too, for reference.
    """
    state = {"x": jnp.ones((nbytes // 4,), jnp.float32)}
    in_place = jax.jit(lambda v: v + 1.0, donate_argnums=0)
    fresh = jax.jit(lambda v: v + 1.0)

    def step_in_place():
        state["x"] = in_place(state["x"]).block_until_ready()

    runners = [
        timing.Runner(key=("in place",), call=step_in_place),
        timing.Runner(key=("fresh",), call=lambda: fresh(state["x"]).block_until_ready()),
    ]
    timing.run_interleaved(runners, reps=reps, min_sample_s=0.0)
    in_place_s, fresh_s = (timing.summarise(r).median_s for r in runners)
    del state["x"]
    return {
        "bytes": 2 * nbytes,
        "median_s": in_place_s,
        "gbps": 2 * nbytes / in_place_s / 1e9,
        "fresh_output_gbps": 2 * nbytes / fresh_s / 1e9,
        "what": f"jit(x + 1) over {nbytes // MIB} MiB float32, input donated",
    }


def min_bytes(inputs: dict[str, np.ndarray], params: tuple[str, ...], rows: int, mode: str) -> int:
    """Inputs read plus outputs written.

    forward writes one float32 per row; value_and_grad writes a scalar and one
    gradient the size of each differentiated input.
    """
    read = sum(int(np.asarray(v).nbytes) for v in inputs.values())
    if mode == "forward":
        return read + 4 * rows
    return read + 4 + sum(int(np.asarray(inputs[name]).nbytes) for name in params)

"""How the length of the minor (last) axis changes XLA's speed on one elementwise loop.

Run ``python -m benchmarks.minor_axis`` (about a minute on one CPU core; ``--quick`` for a
smoke run). The same 1,228,800 float32 numbers (4096 rows x 30 latents x 10 classes, the
relaxed categorical workload of ``benchmarks.kernels``) are laid out as ``(N / m, m)`` for
minor axes ``m`` of 8, 10, 16, 30 and 64, and flat ``(N,)``; on each layout it times, with
interleaved repetitions in one process (``benchmarks._src.timing``), four jit-compiled
elementwise expressions of two arrays:

* ``a - b``: arithmetic only;
* ``exp(a) + b``: a transcendental of one input, then the second;
* ``exp(a - b)``: a transcendental of an expression of both inputs;
* ``log(b) * a``: the same with ``log``.

The values are the same on every layout (only the shape changes), so any difference is
the compiled loop's. ``docs/performance.md`` explains what the results mean for kernels with
a small event or component axis. Results go to ``benchmarks/results/minor-axis-<slug>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._src import device, timing

RESULTS_DIR = pathlib.Path(__file__).parent / "results"
SCHEMA_VERSION = 1
SIZE = 4096 * 30 * 10
MINOR_AXES = (8, 10, 16, 30, 64, None)  # None: flat
EXPRESSIONS = {
    "a - b": lambda a, b: a - b,
    "exp(a) + b": lambda a, b: jnp.exp(a) + b,
    "exp(a - b)": lambda a, b: jnp.exp(a - b),
    "log(b) * a": lambda a, b: jnp.log(b) * a,
}


def _layout(values: np.ndarray, minor: int | None) -> jax.Array:
    shape = (SIZE,) if minor is None else (SIZE // minor, minor)
    return jnp.asarray(values.reshape(shape))


def time_layouts(size: int, reps: int, min_sample_s: float) -> list[dict]:
    rng = np.random.default_rng(0)
    a = rng.normal(size=size).astype(np.float32)
    b = rng.uniform(0.01, 1.0, size=size).astype(np.float32)
    runners, results = [], {}
    for minor in MINOR_AXES:
        args = (_layout(a, minor), _layout(b, minor))
        for name, expression in EXPRESSIONS.items():
            compiled = jax.jit(expression)
            results[(minor, name)] = np.asarray(compiled(*args)).reshape(-1)

            def call(compiled=compiled, args=args):
                return jax.block_until_ready(compiled(*args))

            runners.append(timing.Runner(key=(minor, name), call=call))
    timing.run_interleaved(runners, reps, min_sample_s)
    records = []
    for runner in runners:
        minor, name = runner.key
        summary = timing.summarise(runner)
        records.append(
            {
                "minor_axis": minor,
                "expression": name,
                "elements": size,
                "median_s": summary.median_s,
                "p25_s": summary.p25_s,
                "p75_s": summary.p75_s,
                # The same numbers on every layout: the loops must agree to rounding.
                "max_rel_diff_vs_flat": float(
                    np.max(
                        np.abs(results[runner.key] - results[(None, name)])
                        / np.abs(results[(None, name)])
                    )
                ),
            }
        )
        print(
            f"minor {minor or 'flat':>5}  {name:12s} {summary.median_s * 1e3:8.3f} ms", flush=True
        )
    return records


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.minor_axis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="few repetitions")
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions")
    parser.add_argument(
        "--out", default=None, help="results file (default under results/; --quick: a temp dir)"
    )
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    reps = args.reps or (3 if args.quick else 15)
    info = device.describe()
    records = time_layouts(SIZE, reps, 0.002 if args.quick else 0.05)
    result = {
        "suite": "minor_axis",
        "schema": SCHEMA_VERSION,
        **info,
        "quick": args.quick,
        "reps": reps,
        "load_average": os.getloadavg(),
        "records": records,
    }
    # A smoke run never replaces the committed results: it goes to a temporary folder.
    results = pathlib.Path(tempfile.mkdtemp(prefix="genmath-bench-")) if args.quick else RESULTS_DIR
    out = pathlib.Path(args.out) if args.out else results / f"minor-axis-{info['slug']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()

"""The process-spread section of ``benchmarks/README.md`` (``python -m benchmarks.spread``)."""

from __future__ import annotations

import pathlib

from benchmarks._src.render import table

TITLE = "genmath / jnp formula across fresh processes"

INTRO = """\
`python -m benchmarks.spread` times genmath and the hand-written jnp formula of every
workload at its headline size, forward and with gradients, in several fresh processes one
after another, each visiting the workloads in its own random order. The kernel benchmark
above measures each ratio once, in one long process; the spread below is how far that one
figure can move with nothing changed but the process (on XLA:CPU, where the runtime places a
function's buffers depends on what the process did before). Each cell is the median ratio
genmath / jnp over the processes, with the lowest and highest in brackets: below 1, genmath
is faster.
"""


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "–"
    return f"{entry['median']:.2f} ({entry['min']:.2f}–{entry['max']:.2f})"


def section(result: dict, results_dir: pathlib.Path) -> str:
    """Markdown for one ``spread-*.json`` file."""
    del results_dir
    by_key = {(e["workload"], e["mode"]): e for e in result["summary"]}
    workloads = list(dict.fromkeys(e["workload"] for e in result["summary"]))
    rows = [
        [w, _cell(by_key.get((w, "forward"))), _cell(by_key.get((w, "value_and_grad")))]
        for w in workloads
    ]
    load = result.get("load_average")
    load_text = f"; 1-minute load average {load[0]:.1f} at the end" if load else ""
    return (
        f"### {result['backend']}: {result['device']}\n\n"
        f"Results file `results/{result['_file']}` ({result['date'][:10]}, jax {result['jax']}, "
        f"{result['processes']} processes, {result['reps']} interleaved repetitions each, "
        f"{result['wall_s'] / 60:.0f} minutes{load_text}). Ratio genmath / jnp, median over "
        "the processes (lowest–highest):\n\n"
        + table(["workload", "forward", "value_and_grad"], rows, markdown=True)
        + "\n"
    )

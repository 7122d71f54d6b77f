"""The minor-axis section of ``benchmarks/README.md`` (``python -m benchmarks.minor_axis``)."""

from __future__ import annotations

import pathlib

from benchmarks._src.render import fmt_time, table

TITLE = "XLA:CPU elementwise loops and the length of the minor axis"

INTRO = """\
`python -m benchmarks.minor_axis` times four elementwise expressions of two float32 arrays
on the same 1,228,800 numbers laid out with minor (last) axes of 8, 10, 16, 30 and 64, and
flat. The ratio is to the flat layout's time of the same expression. It is why genmath
evaluates the discretised logistic mixture with its ten components on the first axis
(`docs/performance.md`, "Small axes first").
"""


def _axis(minor) -> str:
    return "flat" if minor is None else str(minor)


def section(result: dict, results_dir: pathlib.Path) -> str:
    """Markdown for one ``minor-axis-*.json`` file."""
    del results_dir
    expressions = list(dict.fromkeys(r["expression"] for r in result["records"]))
    minors = list(dict.fromkeys(r["minor_axis"] for r in result["records"]))
    by_key = {(r["minor_axis"], r["expression"]): r["median_s"] for r in result["records"]}
    rows = []
    for minor in minors:
        cells = []
        for expression in expressions:
            seconds = by_key[(minor, expression)]
            ratio = seconds / by_key[(None, expression)]
            cells.append(f"{fmt_time(seconds)} ({ratio:.1f}×)")
        rows.append([_axis(minor), *cells])
    return (
        f"### {result['backend']}: {result['device']}\n\n"
        f"Results file `results/{result['_file']}` ({result['date'][:10]}, jax {result['jax']}, "
        f"{'quick' if result.get('quick') else 'full'} run, "
        f"{result['reps']} interleaved repetitions; 1-minute load average "
        f"{result['load_average'][0]:.1f} at the end). Medians (ratio to the flat layout):\n\n"
        + table(["minor axis", *expressions], rows, markdown=True)
        + "\n"
    )

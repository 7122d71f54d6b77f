"""The kernel-suite section of ``benchmarks/README.md``, from one results file."""

from __future__ import annotations

import pathlib

from benchmarks._src import plots, render

TITLE = "Kernels"

INTRO = f"""\
`python -m benchmarks.kernels` times every genmath kernel against the hand-written
`jnp` formula (the textbook expression, in `benchmarks/_src/formulas.py`) and the
library peers that express the same quantity: `jax.scipy.stats`/`special`, optax,
numpyro (`validate_args=False`), distrax, TensorFlow Probability on JAX and
`torch.distributions` (eager, CPU). All run in one process on the same inputs.
Where a peer takes another parameterisation (a scale for a log-scale, a probability
for a logit, a covariance for its Cholesky factor), the conversion a user would write
is part of the timed function (see `benchmarks/_src/peers.py`).

* **compile**: `jax.jit(f).lower(...).compile()` wall time (trace + lower + XLA).
  torch is eager: its first call is shown instead.
* **median**: steady-state median over the interleaved repetitions (every repetition
  runs each implementation once, in a shuffled order, each call blocked until
  ready; a repetition's sample averages enough calls to last ≥ 2 ms).
  `value_and_grad` differentiates the sum of the per-row outputs with respect to the
  parameters (not the data). The per-peer tables add the fastest sample (min) and the
  median process CPU time per call (all threads): on a shared machine wall time also
  counts waiting for a core, CPU time does not.
* **max rel err**: max over rows of |y − y₆₄| / max(|y₆₄|, 1) against a float64
  numpy/scipy reference on the same inputs; **WRONG** beyond
  1e-4 for float32 inputs (1e-2 for bfloat16 inputs).
* **GB/s** and **×floor** (memory-bound workloads): minimum bytes (inputs read +
  outputs written) over the measured time, and measured time over the floor
  `bytes / copy bandwidth`, the bandwidth being a jit-compiled in-place `x + 1` timed in
  the same run.
* **Noise**: on a machine shared with other jobs, repeated full runs differed by
  10–30 % at single sizes (and more at the smallest, microsecond-scale ones); the
  genmath / jnp table across batch sizes shows whether a gap is systematic.
* **CPU time**: where other jobs share the cores, a process can wait for a core for
  most of a call; the table "by wall and by CPU time" shows genmath / jnp both ways.
* **Tagged runs** (`--tag`): a run of some workloads only, e.g. kernels added after the
  full run, has its own results file and section below; it never replaces the full run.
* **Targets**: genmath ≤ {render.TARGET_VS_JNP:.2f}× the `jnp` formula (median against
  median) and no slower than the fastest *correct* JAX library peer, forward and
  backward. "Slower than a peer" needs evidence beyond the noise: genmath's
  interquartile range of repetition times lies wholly above the peer's. A median
  gap with overlapping interquartile ranges is shown as "≈ peer, within noise".
"""


def _fmt_load(values) -> str:
    return "?" if not values else " / ".join(f"{v:.1f}" for v in values)


def _peer_table(result: dict, workload: str, batch: int, dim: int, dtype: str) -> str:
    headers = [
        "peer",
        "fwd compile",
        "fwd median (min)",
        "fwd CPU",
        "max rel err",
        "fwd ×floor",
        "grad compile",
        "grad median (min)",
        "grad CPU",
        "grad ×floor",
    ]
    records = [
        r
        for r in result["records"]
        if r["workload"] == workload
        and r["batch"] == batch
        and r["dim"] == dim
        and r["dtype"] == dtype
    ]
    rows = []
    for peer in dict.fromkeys(r["peer"] for r in records):
        by_mode = {r["mode"]: r for r in records if r["peer"] == peer}
        cells = [peer]
        for mode in ("forward", "value_and_grad"):
            record = by_mode.get(mode, {})
            if record.get("status") != "ok":
                cells += [record.get("status", "—"), "", "", ""] + (
                    [""] if mode == "forward" else []
                )
                continue
            compile_s = record.get("compile_s")
            cells.append(
                render.fmt_time(compile_s)
                if compile_s is not None
                else f"eager, 1st {render.fmt_time(record['first_call_s'])}"
            )
            cells.append(
                f"{render.fmt_time(record['median_s'])} ({render.fmt_time(record.get('min_s'))})"
            )
            cells.append(render.fmt_time(record.get("cpu_median_s")))
            if mode == "forward":
                cells.append(render.fmt_error(record))
            cells.append(render.fmt_ratio(record.get("vs_floor")) if "vs_floor" in record else "—")
        rows.append(cells)
    return render.table(headers, rows, markdown=True)


def _cpu_ratio_table(result: dict) -> str:
    """genmath / jnp by wall time and by process CPU time at the headline sizes: on a
    machine shared with other jobs the wall time also counts waiting for a core."""
    rows = []
    for row in render.headline_rows(result):
        genmath, jnp_ = row["genmath"] or {}, row["jnp"] or {}
        if not genmath.get("cpu_median_s") or not jnp_.get("cpu_median_s"):
            continue
        rows.append(
            [
                row["workload"],
                row["dtype"],
                row["mode"],
                render.fmt_ratio(row["vs_jnp"]),
                render.fmt_ratio(genmath["cpu_median_s"] / jnp_["cpu_median_s"]),
            ]
        )
    headers = ["workload", "dtype", "mode", "genmath/jnp (wall)", "genmath/jnp (CPU)"]
    return render.table(headers, rows, markdown=True)


def section(result: dict, results_dir: pathlib.Path) -> str:
    """Markdown for one kernel results file; writes its plots next to it."""
    slug = result["slug"]
    tag = result.get("tag")
    lines = [
        f"### {result['backend']}: {result['device']}" + (f" — {tag} workloads" if tag else ""),
        "",
        f"Results file `results/{slug}.json`: "
        f"{'quick' if result['quick'] else 'full'} run"
        f"{'' if result.get('complete', True) else ' (INTERRUPTED: partial results)'} "
        f"on {result['date']}, "
        f"jax {result['jax']}, {result['reps']} interleaved repetitions, "
        f"{result['wall_s']:.0f} s. Load average (1/5/15 min) before "
        f"{_fmt_load(result['load_average_before'])}, after "
        f"{_fmt_load(result['load_average_after'])} on {result['host_cores']} cores.",
        "",
        "Peers: "
        + ", ".join(f"{name} {version}" for name, version in result["peers"].items())
        + ".",
        f"Copy bandwidth: **{result['copy_bandwidth']['gbps']:.1f} GB/s** "
        f"({result['copy_bandwidth']['what']}).",
    ]
    for name, reason in result["unavailable"].items():
        lines.append(f"{name}: {reason}.")
    lines += [
        "",
        "#### genmath against the targets (headline sizes)",
        "",
        render.summary_table(result, markdown=True),
        "",
        "#### genmath / jnp at every batch size",
        "",
        render.ratios_by_batch_table(result, markdown=True),
        "",
        "#### genmath / jnp by wall and by CPU time (headline sizes)",
        "",
        _cpu_ratio_table(result),
        "",
    ]

    dtypes = sorted({r["dtype"] for r in result["records"]}, key=lambda d: d != "float32")
    lines += ["#### Every peer at the headline sizes", ""]
    for name, meta in result["workloads"].items():
        for dtype in dtypes:
            lines += [
                f"**{name}** — {meta['title']}; {meta['batch_label']} = "
                f"{meta['headline_batch']}, {dtype}",
                "",
                _peer_table(result, name, meta["headline_batch"], meta["dim"], dtype),
                "",
            ]

    figures = []
    for sweep, title in (("batch", "Time against batch size"), ("dim", "Time against dimension")):
        for mode in ("forward", "value_and_grad"):
            path = results_dir / f"{slug}-{sweep}-{mode}.png"
            if plots.plot_sweep(result, sweep, mode, path):
                figures.append(f"![{title}, {mode}](results/{path.name})")
    if figures:
        lines += ["#### How cost grows", "", *figures, ""]
    return "\n".join(lines)

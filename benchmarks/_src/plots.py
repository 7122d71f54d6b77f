"""Log-log plots of kernel time against batch size and against dimension.

Everything is drawn from a results file, so every figure can be regenerated from
what is committed.
"""

from __future__ import annotations

import math
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks._src.peers import ALL_PEERS

_STYLE = {name: f"C{i}" for i, name in enumerate(ALL_PEERS)}
# Cost of the dominant term, for a reference slope in the dimension plots.
_DIM_ORDER = {
    "mvn_log_prob_shared": 2,
    "mvn_log_prob_batched": 2,
    "mvn_kl": 3,
    "normal_log_prob": 1,
}


def _series(records, workload, mode, dtype, sweep):
    """{peer: [(x, median_s)]} for one workload, sorted by x."""
    key = "batch" if sweep == "batch" else "dim"
    out: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        if (
            r["workload"] == workload
            and r["mode"] == mode
            and r["dtype"] == dtype
            and sweep in r["sweeps"]
            and r.get("status") == "ok"
            and "median_s" in r
        ):
            out.setdefault(r["peer"], []).append((r[key], r["median_s"]))
    return {peer: sorted(points) for peer, points in out.items() if len(points) > 1}


def _grid(count: int) -> tuple[int, int]:
    columns = min(4, count)
    return math.ceil(count / columns), columns


def plot_sweep(
    result: dict, sweep: str, mode: str, path: pathlib.Path, dtype: str = "float32"
) -> bool:
    """One subplot per workload; returns False (and writes nothing) if no data."""
    workloads = [
        name for name in result["workloads"] if _series(result["records"], name, mode, dtype, sweep)
    ]
    if not workloads:
        return False
    rows, columns = _grid(len(workloads))
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, workloads, strict=False):
        meta = result["workloads"][name]
        series = _series(result["records"], name, mode, dtype, sweep)
        for peer in sorted(series, key=ALL_PEERS.index):
            xs, ys = zip(*series[peer], strict=True)
            ax.plot(
                xs,
                ys,
                marker="o",
                markersize=3,
                color=_STYLE[peer],
                label=peer,
                linewidth=2.2 if peer == "genmath" else 1.0,
            )
        if sweep == "dim" and name in _DIM_ORDER and "genmath" in series:
            x_end, y_end = series["genmath"][-1]
            order = _DIM_ORDER[name]
            xs = [x for x, _ in series["genmath"]]
            ax.plot(
                xs,
                [y_end * (x / x_end) ** order for x in xs],
                linestyle=":",
                color="grey",
                label=f"∝ D^{order}",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        if sweep == "batch":
            ax.set_xlabel(
                f"{meta['batch_label']} ({meta['dim_label']} = {meta['dim']})", fontsize=8
            )
        else:
            ax.set_xlabel(
                f"{meta['dim_label']} ({meta['batch_label']} = {meta['dim_sweep_batch']})",
                fontsize=8,
            )
        ax.set_ylabel("median time [s]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(workloads) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"{mode}, {dtype} — {result['backend']}: {result['device']}, "
        f"jax {result['jax']}, {result['date'][:10]}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True

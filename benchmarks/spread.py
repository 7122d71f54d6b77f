"""How much genmath's ratio to the jnp formula moves from one process to the next.

Run ``python -m benchmarks.spread`` (about 15 minutes on one CPU core; ``--quick`` for a
smoke run). The kernel benchmark (``python -m benchmarks.kernels``) measures every ratio in
one long process. On XLA:CPU the same two compiled functions can keep their ratio within
a few per cent across repetitions of that process and still land elsewhere in the next one:
where the runtime places the buffers of each function depends on everything the process
did before, and the speed of a loop over several large arrays depends on where they lie.
So this suite starts ``--processes`` fresh Python processes, one after another. Each times
genmath and the hand-written jnp formula of every workload at its headline size, forward
and with gradients, interleaved as in the kernel benchmark (``benchmarks._src.timing``),
visiting the workloads in its own random order, and reports the ratio genmath / jnp. The
spread of a workload's ratios over the processes is the uncertainty of the single-run
figure. Results go to ``benchmarks/results/spread-<slug>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS_DIR = pathlib.Path(__file__).parent / "results"
SCHEMA_VERSION = 1
CONTENDERS = ("genmath", "jnp")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.spread",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 processes")
    parser.add_argument("--processes", type=int, default=None, help="fresh processes (7)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (15; quick 3)")
    parser.add_argument("--workloads", default=None, help="comma-separated subset (all)")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="results file")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=pathlib.Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _selected(names: str | None):
    from benchmarks._src.workloads import WORKLOADS

    if not names:
        return list(WORKLOADS)
    wanted = names.split(",")
    unknown = set(wanted) - {w.name for w in WORKLOADS}
    if unknown:
        raise SystemExit(f"--workloads: unknown {sorted(unknown)}")
    return [w for w in WORKLOADS if w.name in wanted]


def run_child(index: int, workloads: str | None, quick: bool, reps: int) -> list[dict]:
    """One process's measurements: every workload at its headline size, in a random order."""
    from benchmarks import kernels
    from benchmarks._src import peers

    loaded = [peers.load(name) for name in CONTENDERS]
    selected = _selected(workloads)
    random.Random(index).shuffle(selected)
    rows = []
    for position, workload in enumerate(selected):
        records = kernels.run_case(
            workload,
            workload.headline_batch(quick),
            workload.dim,
            "float32",
            ("batch",),
            loaded,
            sweep_peers=set(CONTENDERS),
            quick=quick,
            reps=reps,
            min_sample_s=0.0005 if quick else 0.002,
            bandwidth_gbps=float("nan"),  # no roofline here
        )
        for mode in ("forward", "value_and_grad"):
            times = {
                r["peer"]: r["median_s"]
                for r in records
                if r["mode"] == mode and r.get("status") == "ok"
            }
            correct = all(r.get("correct") is not False for r in records if r["mode"] == mode)
            if set(times) == set(CONTENDERS):
                rows.append(
                    {
                        "process": index,
                        "position": position,
                        "workload": workload.name,
                        "mode": mode,
                        "genmath_s": times["genmath"],
                        "jnp_s": times["jnp"],
                        "ratio": times["genmath"] / times["jnp"],
                        "correct": correct,
                    }
                )
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per workload and mode, in the kernel benchmark's order: the ratios over the
    processes, their median and range."""
    from benchmarks._src.workloads import WORKLOADS

    order = {w.name: i for i, w in enumerate(WORKLOADS)}
    groups: dict[tuple[str, str], list[float]] = {}
    for row in sorted(rows, key=lambda r: (order[r["workload"]], r["mode"], r["process"])):
        groups.setdefault((row["workload"], row["mode"]), []).append(row["ratio"])
    return [
        {
            "workload": workload,
            "mode": mode,
            "ratios": ratios,
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
        }
        for (workload, mode), ratios in groups.items()
    ]


def main(argv=None) -> dict:
    args = parse_args(argv)
    reps = args.reps or (3 if args.quick else 15)
    if args.child is not None:
        rows = run_child(args.child, args.workloads, args.quick, reps)
        args.child_out.write_text(json.dumps(rows))
        return {"rows": rows}

    from benchmarks._src import device

    processes = args.processes or (2 if args.quick else 7)
    info = device.describe()
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="genmath-spread-") as scratch:
        for index in range(processes):
            child_out = pathlib.Path(scratch) / f"process-{index}.json"
            command = [sys.executable, "-m", "benchmarks.spread", "--child", str(index)]
            command += ["--child-out", str(child_out), "--reps", str(reps)]
            if args.quick:
                command.append("--quick")
            if args.workloads:
                command += ["--workloads", args.workloads]
            subprocess.run(command, check=True, cwd=pathlib.Path(__file__).parent.parent)
            rows += json.loads(child_out.read_text())
            print(f"process {index + 1}/{processes} done", flush=True)
    result = {
        "suite": "spread",
        "schema": SCHEMA_VERSION,
        **info,
        "quick": args.quick,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "processes": processes,
        "reps": reps,
        "wall_s": time.perf_counter() - started,
        "load_average": device.load_average(),
        "rows": rows,
        "summary": summarise(rows),
    }
    out = args.out
    if out is None:
        out = (
            pathlib.Path(tempfile.mkdtemp(prefix="genmath-spread-")) / "spread.json"
            if args.quick
            else RESULTS_DIR / f"spread-{info['slug']}.json"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for entry in result["summary"]:
        print(
            f"{entry['workload']:40s} {entry['mode']:15s} median {entry['median']:.2f} "
            f"range {entry['min']:.2f}-{entry['max']:.2f}"
        )
    print(f"Results written to {out} ({result['wall_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()

"""Kernel benchmark: genmath against hand-written jnp and library peers.

Run ``python -m benchmarks.kernels`` (about ten minutes on a 2-core CPU) or
``python -m benchmarks.kernels --quick`` (under a minute). For every workload,
batch size and dtype it measures, side by side in one process on the same inputs,
the compile time and the steady-state median time of ``forward`` and of
``value_and_grad``, checks every forward result against a float64 reference, and
relates memory-bound kernels to a copy-bandwidth roofline measured in the same run.
Results go to ``<out>/<backend>-<device>.json`` (with ``--tag T``, to
``<backend>-<device>-T.json``, beside the full run's file); ``python -m benchmarks.report``
turns every results file into ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os

# torch's OpenMP threads spin for a while after each call by default, stealing the
# cores from whatever runs next; make them sleep (must be set before torch loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# distrax/TFP import TensorFlow, whose start-up log lines would clutter the table.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib
import sys
import tempfile
import time
import zlib

import jax.numpy as jnp
import numpy as np

from benchmarks._src import checks, device, peers, render, roofline, runners, timing
from benchmarks._src.workloads import WORKLOADS, Workload

RESULTS_DIR = pathlib.Path(__file__).parent / "results"
SCHEMA_VERSION = 1


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.kernels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny batches, few repetitions, a subset of peers (CI smoke run)",
    )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help=f"results directory (default {RESULTS_DIR}; --quick: a temp dir)",
    )
    parser.add_argument(
        "--peers",
        default=None,
        help=f"comma-separated peers, from {','.join(peers.ALL_PEERS)} "
        "(genmath is always included)",
    )
    parser.add_argument(
        "--sweep-peers",
        default=",".join(peers.SWEEP_PEERS),
        help="peers also timed away from the headline sizes (default %(default)s)",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help="interleaved repetitions per measurement (default 30, quick 5)",
    )
    parser.add_argument(
        "--workloads", default=None, help="comma-separated subset of workloads (default: all)"
    )
    parser.add_argument(
        "--dtypes",
        default=None,
        help="comma-separated input dtypes (default float32, plus bfloat16 on accelerators)",
    )
    parser.add_argument(
        "--no-dim-sweep",
        action="store_true",
        help="time the batch-size sweep only, not the cost-against-dimension sweep",
    )
    parser.add_argument(
        "--headline-only",
        action="store_true",
        help="time each workload at its headline size only (no sweeps): a short device window",
    )
    parser.add_argument(
        "--tag",
        default=None,
        help="results file <device>-<tag>.json instead of <device>.json, so that a run of "
        "some workloads sits beside the full run rather than replacing it",
    )
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="do not regenerate benchmarks/README.md after a full run",
    )
    return parser.parse_args(argv)


def _case_seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


def _cases(
    workload: Workload,
    quick: bool,
    accelerator: bool,
    dim_sweep: bool = True,
    headline_only: bool = False,
) -> list[tuple[int, int, tuple[str, ...]]]:
    """(batch, dim, sweeps) to measure; a point in both sweeps is measured once."""
    if headline_only:
        return [(workload.headline_batch(quick), workload.dim, ("batch",))]
    batches = workload.quick_batches if quick else workload.batches
    if accelerator and not quick:
        batches = batches + workload.accelerator_batches
    dims = () if quick or not dim_sweep else workload.dims
    cases: dict[tuple[int, int], list[str]] = {}
    for batch in batches:
        cases.setdefault((batch, workload.dim), []).append("batch")
    for dim in dims:
        cases.setdefault((workload.dim_sweep_batch, dim), []).append("dim")
    return [(b, d, tuple(s)) for (b, d), s in cases.items()]


def _cast(inputs: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    """Floating inputs in ``dtype``; integer ones (class labels) stay integers."""
    return {
        k: v if np.issubdtype(v.dtype, np.integer) else np.asarray(v, dtype=jnp.dtype(dtype))
        for k, v in inputs.items()
    }


def _float64(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        k: v if np.issubdtype(v.dtype, np.integer) else v.astype(np.float64)
        for k, v in inputs.items()
    }


def run_case(
    workload: Workload,
    batch: int,
    dim: int,
    dtype: str,
    sweeps,
    loaded,
    *,
    sweep_peers,
    quick,
    reps,
    min_sample_s,
    bandwidth_gbps,
) -> list[dict]:
    """Measures every peer at one size; away from the headline size only ``sweep_peers``."""
    rng = np.random.default_rng(_case_seed(workload.name, batch, dim))
    inputs = _cast(workload.make_inputs(rng, batch, dim), dtype)
    reference = workload.reference(**_float64(inputs))
    rows = reference.size
    params = {n: jnp.asarray(inputs[n]) for n in workload.params}
    data = {n: jnp.asarray(inputs[n]) for n in workload.data}
    base = {
        "workload": workload.name,
        "batch": batch,
        "dim": dim,
        "dtype": dtype,
        "sweeps": list(sweeps),
    }

    headline = batch == workload.headline_batch(quick) and dim == workload.dim
    records, to_time = [], []
    for peer in loaded:
        if not headline and peer.name not in sweep_peers:
            continue
        fn = peer.impls.get(workload.name)
        if fn is None:
            continue
        for mode in runners.MODES:
            record = {**base, "peer": peer.name, "framework": peer.framework, "mode": mode}
            records.append(record)
            if peer.framework == "torch" and dtype != "float32":
                record["status"] = "skipped: torch runs on CPU in float32 only"
                continue
            prepare = runners.prepare_torch if peer.framework == "torch" else runners.prepare_jax
            p_in, d_in = (
                ({n: inputs[n] for n in workload.params}, {n: inputs[n] for n in workload.data})
                if peer.framework == "torch"
                else (params, data)
            )
            try:
                prepared = prepare(fn, p_in, d_in, mode)
            except Exception as error:  # a peer lacking a feature must not stop the run
                record["status"] = (
                    "failed: " + f"{type(error).__name__}: {error}".splitlines()[0][:200]
                )
                continue
            record.update(
                status="ok",
                compile_s=prepared.compile_s,
                first_call_s=prepared.first_call_s,
                finite=prepared.finite,
            )
            if prepared.output is not None:
                error = checks.max_relative_error(prepared.output, reference)
                record["max_rel_err"] = error
                record["correct"] = checks.is_correct(error, dtype) and prepared.finite
            nbytes = roofline.min_bytes(inputs, workload.params, rows, mode)
            record["min_bytes"] = nbytes
            to_time.append((record, timing.Runner(key=(peer.name, mode), call=prepared.call)))
        del fn

    timing.run_interleaved([r for _, r in to_time], reps=reps, min_sample_s=min_sample_s)
    for record, runner in to_time:
        summary = timing.summarise(runner)
        record.update(
            median_s=summary.median_s,
            min_s=summary.min_s,
            cpu_median_s=summary.cpu_median_s,
            p25_s=summary.p25_s,
            p75_s=summary.p75_s,
            samples=summary.samples,
            calls_per_sample=summary.calls_per_sample,
        )
        if workload.memory_bound:
            floor_s = record["min_bytes"] / (bandwidth_gbps * 1e9)
            record.update(
                floor_s=floor_s,
                vs_floor=summary.median_s / floor_s,
                gbps=record["min_bytes"] / summary.median_s / 1e9,
            )
    # value_and_grad is judged by its forward's accuracy.
    correct = {r["peer"]: r.get("correct") for r in records if r["mode"] == "forward"}
    for record in records:
        if record["mode"] == "value_and_grad" and record.get("status") == "ok":
            record["correct"] = correct.get(record["peer"])
    return records


def _load_peers(names) -> tuple[list[peers.Peer], dict[str, str]]:
    loaded, unavailable = [], {}
    for name in names:
        try:
            loaded.append(peers.load(name))
        except peers.PeerUnavailable as error:
            unavailable[name] = f"not available: {error}"
            print(f"[{name}] not available: {error}", flush=True)
    return loaded, unavailable


def main(argv=None) -> int:
    args = parse_args(argv)
    quick = args.quick
    reps = args.reps or (5 if quick else 30)
    min_sample_s = 0.0005 if quick else 0.002
    if args.peers:
        names = [p.strip() for p in args.peers.split(",") if p.strip()]
    else:
        names = list(peers.QUICK_PEERS if quick else peers.ALL_PEERS)
    names = ["genmath", *(n for n in names if n != "genmath")]
    for name in names:
        if name not in peers.ALL_PEERS:
            raise SystemExit(
                f"--peers: unknown peer {name!r}; choose from {', '.join(peers.ALL_PEERS)}"
            )
    sweep_peers = {"genmath", *args.sweep_peers.split(",")}
    selected = WORKLOADS
    if args.workloads:
        wanted = set(args.workloads.split(","))
        unknown = wanted - {w.name for w in WORKLOADS}
        if unknown:
            raise SystemExit(f"--workloads: unknown {sorted(unknown)}")
        selected = tuple(w for w in WORKLOADS if w.name in wanted)
    info = device.describe()
    if args.dtypes:
        dtypes = args.dtypes.split(",")
    else:
        dtypes = ["float32"] if info["backend"] == "cpu" else ["float32", "bfloat16"]
    out = args.out or (
        pathlib.Path(tempfile.mkdtemp(prefix="genmath-bench-")) if quick else RESULTS_DIR
    )

    print(
        f"Device: {info['backend']} — {info['device']}; jax {info['jax']}; "
        f"{'quick' if quick else 'full'} run, {reps} interleaved repetitions",
        flush=True,
    )
    load_before = device.load_average()
    print(f"Load average before: {load_before}", flush=True)
    loaded, unavailable = _load_peers(names)
    versions = {p.name: p.version for p in loaded}
    notes = {p.name: p.note for p in loaded if p.note}
    print("Peers: " + ", ".join(f"{p.name} {p.version}" for p in loaded), flush=True)

    copy_mib = 16 if quick else 256
    bandwidth = roofline.copy_bandwidth(copy_mib * roofline.MIB, reps=max(reps, 10))
    print(f"Copy bandwidth: {bandwidth['gbps']:.1f} GB/s ({bandwidth['what']})", flush=True)

    started = time.perf_counter()
    result = {
        "suite": "kernels",
        "schema": SCHEMA_VERSION,
        **info,
        "quick": quick,
        "complete": False,
        "reps": reps,
        "min_sample_s": min_sample_s,
        "load_average_before": load_before,
        "load_average_after": None,
        "wall_s": None,
        "peers": versions,
        "sweep_peers": sorted(sweep_peers),
        "peer_notes": notes,
        "unavailable": unavailable,
        "tolerance": checks.TOLERANCE,
        "copy_bandwidth": bandwidth,
        "workloads": {
            w.name: {
                "title": w.title,
                "params": list(w.params),
                "data": list(w.data),
                "dim": w.dim,
                "headline_batch": w.headline_batch(quick),
                "dim_sweep_batch": w.dim_sweep_batch,
                "memory_bound": w.memory_bound,
                "batch_label": w.batch_label,
                "dim_label": w.dim_label,
            }
            for w in selected
        },
        "records": [],
    }
    if args.tag:
        # The slug names the plots too, so a tagged run never overwrites the full run's.
        result.update(slug=f"{info['slug']}-{args.tag}", tag=args.tag)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{result['slug']}.json"

    def save():
        result.update(
            wall_s=time.perf_counter() - started, load_average_after=device.load_average()
        )
        path.write_text(json.dumps(result, indent=1, allow_nan=True) + "\n")

    for workload in selected:
        cases = _cases(
            workload, quick, info["backend"] != "cpu", not args.no_dim_sweep, args.headline_only
        )
        for batch, dim, sweeps in cases:
            for dtype in dtypes:
                case = run_case(
                    workload,
                    batch,
                    dim,
                    dtype,
                    sweeps,
                    loaded,
                    sweep_peers=sweep_peers,
                    quick=quick,
                    reps=reps,
                    min_sample_s=min_sample_s,
                    bandwidth_gbps=bandwidth["gbps"],
                )
                result["records"].extend(case)
                print(
                    render.case_text(workload, batch, dim, dtype, case)
                    + f"\n({time.perf_counter() - started:.0f} s elapsed)",
                    flush=True,
                )
        save()  # a partial file ("complete": false) survives an interrupted run
    result["complete"] = True
    save()
    print()
    print(render.summary_text(result))
    print(f"\nResults written to {path} ({result['wall_s']:.0f} s)")
    if not quick and not args.no_report and out.resolve() == RESULTS_DIR.resolve():
        from benchmarks import report

        report.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())

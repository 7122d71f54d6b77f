"""Scaling benchmark: VAE training throughput against the number of devices on the mesh.

Run ``python -m benchmarks.scaling`` (a few minutes on a 2-core CPU) or with ``--quick``
(a subset of MNIST, about a minute). Every device count runs in its own subprocess, which
trains the Flax-example VAE (``examples.vae.configs.flax()``: 784-500-20, global batch
128, Adam, built by ``examples.vae.train.build``) with ``models.training.Trainer`` on a 1-D
``"data"`` mesh of that many devices, and times whole epochs (one compiled ``lax.scan``
each) after a first, compiling epoch.

On a CPU the devices are forced (``--xla_force_host_platform_device_count``): they share
the same cores, so the figure measures the overhead of partitioning the step and of its
all-reduce, not a speed-up; the mean losses are compared with the 1-device run as a
correctness check. On a backend with several real accelerators (``--backend gpu`` or
``tpu``) the subprocesses take the first N devices and the figure is the real scaling.
Results go to ``benchmarks/results/scaling-<backend>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

RESULTS_DIR = pathlib.Path(__file__).parent / "results"
REPO = pathlib.Path(__file__).resolve().parents[1]
SCHEMA_VERSION = 1


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--devices", default="1,2,4,8", help="comma-separated device counts (default %(default)s)"
    )
    parser.add_argument(
        "--backend",
        default="cpu",
        help="cpu (forced host devices, default) or an accelerator backend",
    )
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per device count")
    parser.add_argument(
        "--train-examples",
        type=int,
        default=None,
        help="train on the first N images (default all 60,000; --quick 6,400)",
    )
    parser.add_argument("--quick", action="store_true", help="6,400 images, 2 timed epochs")
    parser.add_argument(
        "--data-dir", default=None, help="MNIST IDX folder (else $GENMATH_MNIST_DIR)"
    )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help=f"results directory (default {RESULTS_DIR}; --quick: a temp dir)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds allowed to each device count's subprocess",
    )
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.train_examples = args.train_examples or 6_400
        args.epochs = min(args.epochs, 2)
    return args


# ------------------------------------------------------------------------------ worker


def worker(args: argparse.Namespace) -> dict:
    """Times ``args.epochs`` epochs on a mesh of the first ``args.worker`` devices."""
    import jax

    from benchmarks._src import data as bench_data
    from examples.vae import configs
    from examples.vae.train import build
    from models import reporting, sharding

    count = args.worker
    if jax.device_count() < count:
        raise SystemExit(f"asked for {count} devices, JAX sees {jax.device_count()}")
    mesh = sharding.data_mesh(jax.devices()[:count])
    chosen = configs.flax()
    config = chosen.train
    data, _ = bench_data.load(args.data_dir)
    images = data.train_images[: args.train_examples]
    labels = data.train_labels[: args.train_examples]
    # The model, optimiser and loss examples.vae builds for this configuration.
    trainer = build(chosen, images, mesh=mesh)
    images, labels = sharding.place_dataset(images, labels, mesh)
    steps = images.shape[0] // config.batch_size

    tic = time.perf_counter()
    first = trainer.run_epoch(images, labels)  # compiles, then runs
    first_seconds = time.perf_counter() - tic
    seconds, losses = [], [first["loss"]]
    for _ in range(args.epochs):
        tic = time.perf_counter()
        record = trainer.run_epoch(images, labels)  # ends with the host reading the metrics
        seconds.append(time.perf_counter() - tic)
        losses.append(record["loss"])
    median = statistics.median(seconds)
    return {
        # Other work on the host slows every figure; the 1-minute load average tells.
        "host_load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "devices": count,
        "device_kind": jax.devices()[0].device_kind,
        # The worker's own backend (the parent may see another: a GPU host forcing CPUs).
        "device": reporting.device_description(),
        "steps_per_epoch": steps,
        "examples_per_epoch": steps * config.batch_size,
        "epoch_seconds": seconds,
        "epoch_seconds_median": median,
        "examples_per_second": steps * config.batch_size / median,
        "first_epoch_seconds": first_seconds,
        "compile_seconds_estimate": max(first_seconds - median, 0.0),
        "epoch_mean_losses": losses,
    }


# ------------------------------------------------------------------------------ driver


def run_count(args: argparse.Namespace, count: int) -> dict:
    env = dict(os.environ)
    command = [
        sys.executable,
        "-m",
        "benchmarks.scaling",
        "--worker",
        str(count),
        "--epochs",
        str(args.epochs),
    ]
    if args.train_examples:
        command += ["--train-examples", str(args.train_examples)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    if args.backend == "cpu":
        flags = [
            f
            for f in env.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count")
        ]
        flags.append(f"--xla_force_host_platform_device_count={count}")
        env.update(XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu")
    else:
        env["JAX_PLATFORMS"] = args.backend
    result = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        text=True,
        capture_output=True,
        timeout=args.timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{count} devices: worker failed\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args)))
        return None

    import jax

    from models import reporting

    counts = [int(c) for c in args.devices.split(",")]
    runs = []
    for count in counts:
        run = run_count(args, count)
        runs.append(run)
        print(
            f"{count} devices: {run['examples_per_second']:.0f} examples/s "
            f"(epoch {run['epoch_seconds_median']:.2f} s, compile "
            f"~{run['compile_seconds_estimate']:.1f} s)",
            flush=True,
        )
    base = next((r for r in runs if r["devices"] == 1), None)
    for run in runs:
        if base is not None:
            run["throughput_vs_1_device"] = run["examples_per_second"] / base["examples_per_second"]
            diffs = [
                abs(a - b) / abs(b)
                for a, b in zip(run["epoch_mean_losses"], base["epoch_mean_losses"], strict=True)
            ]
            run["max_rel_loss_difference_vs_1_device"] = max(diffs)

    forced = args.backend == "cpu"
    results = {
        "suite": "scaling",
        "schema_version": SCHEMA_VERSION,
        "backend": args.backend,
        # The date from the stamp (UTC); the device from the workers, which ran the figures.
        **reporting.run_stamp(),
        "device": runs[0]["device"],
        "forced_host_devices": forced,
        "note": (
            "Forced CPU devices share the machine's cores: this measures the overhead of the "
            "partitioned step and its all-reduce (a correctness and overhead figure), not a "
            "speed-up. Real accelerators give the real scaling."
            if forced
            else "Each device count uses the first N accelerators of one host."
        ),
        "workload": {
            "model": "VAE 784-500-20 relu (the Flax example preset), Bernoulli decoder",
            "optimizer": "adam(1e-3)",
            "global_batch_size": 128,
            "binarization": "dynamic",
            "train_examples": runs[0]["examples_per_epoch"],
            "timed_epochs_per_count": args.epochs,
            "timing": "median wall time of whole epochs (one compiled lax.scan each, ending "
            "with the host reading the epoch's metrics), after a compiling epoch",
        },
        "jax_version": jax.__version__,
        "command": "python -m benchmarks.scaling " + " ".join(argv or sys.argv[1:]),
        "quick": args.quick,
        "runs": runs,
    }
    out_dir = args.out or (
        pathlib.Path(tempfile.mkdtemp(prefix="genmath-bench-")) if args.quick else RESULTS_DIR
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"scaling-{args.backend}.json"
    reporting.write_json(path, results)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])

"""8-bit MNIST: the factorized categorical's closed form against its optax training, timed.

Run ``python -m benchmarks.eightbit`` (the full 60,000 training and 10,000 test images,
the example's default 5 epochs) or ``python -m benchmarks.eightbit --quick`` (a smoke run
of seconds on a subset).

It runs ``examples.factorized_categorical.train.train_and_evaluate`` once: the closed-form
smoothed MLE (exact level counts) and the same model trained with Adam through the shared
Trainer, both scored on the 8-bit test set in bits/dim (``genmath.dequantize
.bits_per_dim_8bit``). It records their difference against the issue's bar (0.01 bits/dim),
the wall times and the device, and, for the choice of the Dirichlet pseudo-count, the
closed form's bits/dim at several pseudo-counts on a held-out part of the training set
(fitted on the rest; the test set plays no part in it). Results go to
``<out>/eightbit-<backend>.json`` and the sample grid to ``<out>/eightbit-<backend>-samples.png``;
``python -m benchmarks.report`` renders them, with the published flows and the VAE's 8-bit
runs, in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

import numpy as np

RESULTS_DIR = pathlib.Path(__file__).parent / "results"
SCHEMA_VERSION = 1
#: The issue's bar: trained and closed form agree to this many bits/dim.
BAR_BITS_PER_DIM = 0.01
#: Pseudo-counts of the held-out comparison (1/256: one pseudo-image per pixel in all).
SWEEP_PSEUDO_COUNTS = (1 / 256, 0.1, 0.5, 1.0, 2.0)
QUICK = {"epochs": 1, "train_examples": 2000, "test_examples": 500, "validation_examples": 500}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.eightbit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="seconds-long smoke run on a subset")
    add("--epochs", type=int, default=None, help="training epochs (default: the example's 5)")
    add("--batch-size", type=int, default=None, help="default: the example's 128")
    add("--learning-rate", type=float, default=None, help="peak Adam rate (default 0.1)")
    add("--train-examples", type=int, default=None, help="the first N training images")
    add("--test-examples", type=int, default=None, help="the first N test images")
    add(
        "--validation-examples",
        type=int,
        default=None,
        help="training images held out for the pseudo-count comparison (default 10,000)",
    )
    add("--seed", type=int, default=0)
    add("--data-dir", default=None, help="MNIST IDX folder (else $GENMATH_MNIST_DIR)")
    add(
        "--out",
        type=pathlib.Path,
        default=None,
        help=f"results directory (default {RESULTS_DIR}; --quick: a temp dir)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
    if args.validation_examples is None:
        args.validation_examples = 10_000
    for name in ("epochs", "batch_size", "train_examples", "test_examples", "validation_examples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    return args


def build_config(args: argparse.Namespace):
    """The example's default configuration with the flags that were given."""
    import dataclasses

    from examples.factorized_categorical import configs

    base = configs.get_config()
    train = {
        name: getattr(args, name)
        for name in ("epochs", "batch_size", "learning_rate", "seed")
        if getattr(args, name) is not None
    }
    return dataclasses.replace(
        base,
        train=dataclasses.replace(base.train, **train),
        train_examples=args.train_examples,
        test_examples=args.test_examples,
    )


def pseudo_count_sweep(train_images: np.ndarray, validation_examples: int) -> dict:
    """The closed form fitted on all but the last ``validation_examples`` training images,
    in bits/dim on those, for each of :data:`SWEEP_PSEUDO_COUNTS` (float64 numpy)."""
    from models import factorized_categorical as fc

    if not 0 < validation_examples < train_images.shape[0]:
        raise SystemExit(
            f"--validation-examples must lie in [1, {train_images.shape[0] - 1}] (the training "
            f"images used), got {validation_examples}"
        )
    fit, held_out = train_images[:-validation_examples], train_images[-validation_examples:]
    levels = held_out.reshape(len(held_out), -1).astype(np.int64)
    rows = []
    for alpha in SWEEP_PSEUDO_COUNTS:
        log_probs = np.log(fc.closed_form_probs(fit, pseudo_count=alpha))
        nll = float(-np.mean(log_probs[np.arange(fc.NUM_PIXELS), levels].sum(-1)))
        rows.append({"pseudo_count": alpha, "nll_nats": nll, "bits_per_dim": fc.bits_per_dim(nll)})
    return {"fit_examples": len(fit), "held_out_examples": len(held_out), "runs": rows}


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    from benchmarks._src import data as bench_data
    from benchmarks._src import device, eightbit_report
    from examples.factorized_categorical.train import train_and_evaluate

    info = device.describe()
    load_before = device.load_average()
    print(
        f"Device: {info['backend']} — {info['device']}; jax {info['jax']}; "
        f"{'quick' if args.quick else 'full'} run",
        flush=True,
    )
    data, source = bench_data.load(args.data_dir)
    config = build_config(args)
    out = args.out or (
        pathlib.Path(tempfile.mkdtemp(prefix="genmath-bench-")) if args.quick else RESULTS_DIR
    )
    out.mkdir(parents=True, exist_ok=True)
    samples = f"eightbit-{info['backend']}-samples.png"
    with tempfile.TemporaryDirectory(prefix="genmath-eightbit-") as workdir:
        metrics = train_and_evaluate(config, workdir, data=data, resume=False, progress=False)
        shutil.copyfile(pathlib.Path(workdir) / "samples.png", out / samples)
    train_images = data.train_images[: config.train_examples]
    sweep = pseudo_count_sweep(train_images, args.validation_examples)

    difference = metrics["trained_minus_closed_form_bits_per_dim"]
    result = {
        "suite": "eightbit",
        "schema": SCHEMA_VERSION,
        **info,
        "quick": args.quick,
        "data_source": source,
        "command": " ".join(
            ["python -m benchmarks.eightbit", *(argv if argv is not None else sys.argv[1:])]
        ),
        "load_average_before": load_before,
        "load_average_after": device.load_average(),
        "wall_s": time.perf_counter() - started,
        "factorized_categorical": {
            "closed_form": {
                "test_nll_nats": metrics["closed_form_test_nll_nats"],
                "test_bits_per_dim": metrics["closed_form_test_bits_per_dim"],
                "seconds": metrics["closed_form_seconds"],
            },
            "trained": {
                "test_nll_nats": metrics["test_nll_nats"],
                "test_bits_per_dim": metrics["test_bits_per_dim"],
                "train_seconds": metrics["train_seconds"],
                "epochs": metrics["epochs"],
                "batch_size": metrics["batch_size"],
                "learning_rate": metrics["learning_rate"],
                "optimizer": metrics["optimizer"],
                "history": metrics["history"],
            },
            "trained_minus_closed_form_bits_per_dim": difference,
            "max_abs_log_prob_difference": metrics["max_abs_log_prob_difference"],
            "bar_bits_per_dim": BAR_BITS_PER_DIM,
            "bar_met": bool(abs(difference) <= BAR_BITS_PER_DIM),
            "pseudo_count": metrics["pseudo_count"],
            "train_examples": metrics["train_examples"],
            "evaluation_set": metrics["evaluation_set"],
            "example_wall_s": metrics["wall_time_s"],
        },
        "pseudo_count_sweep": sweep,
        "samples_picture": samples,
    }
    path = out / f"eightbit-{info['backend']}.json"
    path.write_text(json.dumps(result, indent=1, allow_nan=True) + "\n")
    print()
    print(eightbit_report.summary_text(result))
    print(f"\nResults written to {path} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())

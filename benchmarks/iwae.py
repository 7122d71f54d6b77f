"""IWAE timing: what Burda et al.'s runs cost here, measured on a few epochs.

Run ``python -m benchmarks.iwae`` (default: the Burda architecture trained on the IWAE
bound with K = 50, then on the ELBO, a few epochs each, and a K = 5000 test-NLL
evaluation) or ``python -m benchmarks.iwae --quick`` (a smoke run of seconds).

For each objective (``--objectives``, e.g. ``iwae:50,elbo:1``) it builds the model,
optimiser and loss that ``examples.vae.train.build`` makes of ``configs.burda()`` with
that objective (200-200-50 tanh, batch 20, Burda's Adam schedule), or of
``configs.burda_2layer()`` with ``--preset burda-2layer`` (the two-stochastic-layer
model; its runs are named ``iwae-k50-2layer`` and its file ``iwae-2layer-*.json``), times
a warm-up epoch (compilation) and ``--epochs`` epochs of ``Trainer.run_epoch``, one
checkpoint save and
the test-ELBO evaluation the example runs every ``eval_every`` epochs. Then it times
``vae.evaluate_log_likelihood`` with ``--eval-samples`` (K = 5000, the papers' K) on
``--eval-examples`` test images: a first call (compilation included) and a second one.

From these it projects the wall time of each full run (``python -m benchmarks.quality``):
Burda's 3280 epochs of 60,000 images, a test ELBO every ``eval_every`` epochs, a
checkpoint per epoch and the final K = 5000 NLL on the 10,000 test images (the per-step
and per-image times scaled linearly from the measured subsets). Results go to
``<out>/iwae-<backend>-<device>.json`` (``iwae-2layer-...`` for ``--preset burda-2layer``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

from benchmarks import quality

RESULTS_DIR = pathlib.Path(__file__).parent / "results"
SCHEMA_VERSION = 1
FULL_TRAIN_EXAMPLES = 60_000
FULL_TEST_EXAMPLES = 10_000
SCHEDULE_EPOCHS = 3280  # Burda et al.'s 3^0 + ... + 3^7 epochs
QUICK = {
    "objectives": "iwae:50",
    "epochs": 1,
    "train_examples": 400,
    "eval_examples": 20,
    "eval_samples": 100,
}


def parse_objectives(spec: str) -> list[tuple[str, int]]:
    """``"iwae:50,elbo:1"`` -> ``[("iwae", 50), ("elbo", 1)]``."""
    parsed = []
    for part in spec.split(","):
        kind, _, k = part.strip().partition(":")
        if kind not in ("iwae", "elbo") or not k.isdigit() or int(k) < 1:
            raise SystemExit(f"--objectives: expected KIND:K with KIND iwae or elbo, got {part!r}")
        parsed.append((kind, int(k)))
    return parsed


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.iwae",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="seconds-long smoke run (tiny subsets, K=100)")
    add("--objectives", default=None, help="KIND:K list (default iwae:50,elbo:1)")
    add(
        "--preset",
        choices=tuple(quality.PRESET_SUFFIXES),
        default="burda",
        help="the model (default: burda)",
    )
    add("--epochs", type=int, default=None, help="timed epochs per objective (default 3)")
    add(
        "--train-examples",
        type=int,
        default=None,
        help="train on the first N images (default all 60,000; a multiple of 20)",
    )
    add("--eval-samples", type=int, default=None, help="K of the timed NLL (default 5000)")
    add(
        "--eval-examples",
        type=int,
        default=None,
        help="test images of the timed NLL (default 10,000 on accelerators, 100 on CPU)",
    )
    add("--skip-nll", action="store_true", help="leave out the NLL evaluation timing")
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
    args.objectives = parse_objectives(args.objectives or "iwae:50,elbo:1")
    args.epochs = args.epochs or 3
    args.eval_samples = args.eval_samples or 5000
    for name in ("epochs", "train_examples", "eval_samples", "eval_examples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    return args


def _timed(fn):
    tic = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - tic


def time_objective(kind: str, k: int, data, args, x_test, y_test, workdir) -> tuple[dict, object]:
    """Epoch, checkpoint and test-ELBO timings of ``args.preset`` with this objective."""
    import jax

    from examples.vae import configs
    from examples.vae.train import build
    from models import sharding, vae

    base = configs.get_config(args.preset)
    config = dataclasses.replace(
        base,
        objective=vae.Objective(kind=kind, num_samples=k),
        train=dataclasses.replace(base.train, seed=args.seed),
    )
    count = args.train_examples or data.train_images.shape[0]
    images, labels = data.train_images[:count], data.train_labels[:count]
    trainer = build(config, images, workdir=workdir)
    images, labels = sharding.place_dataset(images, labels, trainer.mesh)
    steps = count // config.train.batch_size
    name = quality.timing_name(kind, k, args.preset)

    first, first_s = _timed(lambda: trainer.run_epoch(images, labels))
    print(f"  {name}: warm-up epoch {first_s:.2f} s, loss {first['loss']:.2f}", flush=True)
    epoch_s, losses = [], [first["loss"]]
    for i in range(args.epochs):
        record, seconds = _timed(lambda: trainer.run_epoch(images, labels))
        epoch_s.append(seconds)
        losses.append(record["loss"])
        print(
            f"  {name}: epoch {i + 1}/{args.epochs} {seconds:.2f} s, loss {record['loss']:.2f}",
            flush=True,
        )
    _, save_s = _timed(trainer.save)
    key = jax.random.key(args.seed)
    _, elbo_first_s = _timed(lambda: vae.evaluate_elbo(trainer.model, x_test, y_test, key))
    terms, elbo_s = _timed(lambda: vae.evaluate_elbo(trainer.model, x_test, y_test, key))
    median = statistics.median(epoch_s)
    per_step = median / steps
    full_epoch = per_step * (FULL_TRAIN_EXAMPLES // config.train.batch_size)
    evals = SCHEDULE_EPOCHS // config.eval_every if config.eval_every else 0
    entry = {
        "name": name,
        "objective": {"kind": kind, "num_samples": k},
        "config": dataclasses.asdict(config),
        "train_examples": count,
        "steps_per_epoch": steps,
        "first_epoch_s": first_s,
        "epoch_s": epoch_s,
        "median_epoch_s": median,
        "compile_s": max(first_s - median, 0.0),
        "step_s": per_step,
        "losses": losses,
        "checkpoint_save_s": save_s,
        "test_elbo_eval_first_s": elbo_first_s,
        "test_elbo_eval_s": elbo_s,
        "test_elbo_examples": int(x_test.shape[0]),
        "test_neg_elbo_nats": -terms["elbo"],
        "projection": {
            "epochs": SCHEDULE_EPOCHS,
            "epoch_s": full_epoch,
            "train_s": full_epoch * SCHEDULE_EPOCHS,
            "checkpoints_s": save_s * SCHEDULE_EPOCHS,
            "test_elbo_evals": evals,
            "test_elbo_evals_s": evals * elbo_s * FULL_TEST_EXAMPLES / x_test.shape[0],
        },
    }
    return entry, trainer.model


def time_nll(model, x_test, y_test, args) -> dict:
    """Two calls of ``vae.evaluate_log_likelihood`` (the first compiles)."""
    import jax

    from models import vae

    count = args.eval_examples
    x, y = x_test[:count], y_test[:count]
    key = jax.random.key(args.seed + 1)
    run = lambda: vae.evaluate_log_likelihood(model, x, y, key, num_samples=args.eval_samples)
    _, first_s = _timed(run)
    print(f"  NLL K={args.eval_samples} on {count} images: first call {first_s:.2f} s", flush=True)
    nll, second_s = _timed(run)
    print(
        f"  NLL K={args.eval_samples} on {count} images: second call {second_s:.2f} s "
        f"({nll['nll_nats']:.2f} nats)",
        flush=True,
    )
    return {
        "num_samples": args.eval_samples,
        "examples": count,
        "first_call_s": first_s,
        "second_call_s": second_s,
        "per_image_s": second_s / count,
        "full_test_set_s": second_s * FULL_TEST_EXAMPLES / count,
        "extrapolated": count != FULL_TEST_EXAMPLES,
        "nll_nats": nll["nll_nats"],
        "model": "the first objective's model after its timed epochs",
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    import jax.numpy as jnp

    from benchmarks._src import data as bench_data
    from benchmarks._src import device, iwae_report
    from models import mnist

    info = device.describe()
    load_before = device.load_average()
    if args.eval_examples is None:
        args.eval_examples = FULL_TEST_EXAMPLES if info["backend"] != "cpu" else 100
    print(
        f"Device: {info['backend']} — {info['device']}; jax {info['jax']}; "
        f"{'quick' if args.quick else 'full'} run",
        flush=True,
    )
    data, source = bench_data.load(args.data_dir)
    x_test = mnist.evaluation_images(data.test_images, binarization="dynamic", seed=0)
    y_test = jnp.asarray(data.test_labels)

    runs, model = [], None
    with tempfile.TemporaryDirectory(prefix="genmath-iwae-bench-") as tmp:
        for kind, k in args.objectives:
            entry, trained = time_objective(
                kind, k, data, args, x_test, y_test, pathlib.Path(tmp) / f"{kind}-{k}"
            )
            runs.append(entry)
            model = model or trained
    nll = None if args.skip_nll else time_nll(model, x_test, y_test, args)
    for entry in runs:
        projection = entry["projection"]
        projection["final_nll_s"] = nll["full_test_set_s"] if nll else None
        projection["total_s"] = sum(
            projection[key] or 0.0
            for key in ("train_s", "checkpoints_s", "test_elbo_evals_s", "final_nll_s")
        )
    result = {
        "suite": "iwae",
        "schema": SCHEMA_VERSION,
        **info,
        "quick": args.quick,
        "preset": args.preset,
        "data_source": source,
        "command": " ".join(
            ["python -m benchmarks.iwae", *(argv if argv is not None else sys.argv[1:])]
        ),
        "load_average_before": load_before,
        "load_average_after": device.load_average(),
        "wall_s": time.perf_counter() - started,
        "runs": runs,
        "nll": nll,
    }
    out = args.out or (
        pathlib.Path(tempfile.mkdtemp(prefix="genmath-bench-")) if args.quick else RESULTS_DIR
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"iwae{quality.PRESET_SUFFIXES[args.preset]}-{info['slug']}.json"
    path.write_text(json.dumps(result, indent=1, allow_nan=True) + "\n")
    print()
    print(iwae_report.summary_text(result))
    print(f"\nResults written to {path} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())

"""Pretrained VAEs with no training: evaluate one, or export a training run as one.

    python -m examples.pretrained --data-dir ../shared/data/mnist --name vae-burda-fast
    python -m examples.pretrained --data-dir ../shared/data/mnist \\
        --export-from runs/vae-burda-fast --preset burda-fast --name vae-burda-fast
"""

from __future__ import annotations

import argparse
import sys

from examples import _cli
from examples.pretrained import run as pretrained_run
from examples.vae import configs
from models import mnist, pretrained
from models.training import ConfigError


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m examples.pretrained",
        usage="%(prog)s [flags] (--help lists them)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--data-dir", help="folder with the four MNIST IDX .gz files (else $GENMATH_MNIST_DIR)")
    add("--workdir", help="where metrics and pictures go (default runs/pretrained)")
    add("--name", default="vae-burda-fast", help=f"one of {pretrained.available()}")
    add("--eval-samples", type=int, help="K of the test NLL (default 100; export: 5000)")
    add("--test-examples", type=int, help="evaluate on the first N test images only")
    add("--export-from", help="a training run's workdir: export its latest checkpoint")
    add(
        "--preset",
        choices=tuple(configs.PRESETS),
        help="export: the preset the run was trained with, unchanged by flags (the run's "
        "metrics.json, when its training has ended, is checked against it); a run trained "
        "with other settings is exported from Python, examples.pretrained.run.export",
    )
    args = parser.parse_args(argv)
    for flag in ("eval_samples", "test_examples"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"argument --{flag.replace('_', '-')}: must be a positive integer")
    if args.export_from:
        if args.preset is None:
            parser.error("argument --preset: --export-from needs the run's --preset")
        # Export measures the whole test set and writes into the package, nowhere else.
        for flag in ("test_examples", "workdir"):
            if getattr(args, flag) is not None:
                name = "--" + flag.replace("_", "-")
                parser.error(f"argument {name}: has no effect with --export-from")
        try:
            record = pretrained_run.export(
                args.export_from,
                configs.get_config(args.preset),
                args.name,
                eval_samples=args.eval_samples or 5000,
                data_dir=args.data_dir,
            )
        except ConfigError as error:  # the run's checkpoints do not fit the preset
            parser.error(f"argument --export-from: {error}")
        print(f"exported {args.name}: {record['epochs']} epochs, test {record['test']}")
        return record
    if args.name not in pretrained.available():
        parser.error(f"argument --name: must be one of {pretrained.available()}")
    if args.preset is not None:
        parser.error("argument --preset: has no effect without --export-from")
    test_size = mnist.SPLIT_SIZES["test"]
    if args.test_examples is not None and args.test_examples > test_size:
        parser.error(f"argument --test-examples: must be at most {test_size}")
    workdir = args.workdir or "runs/pretrained"
    metrics = pretrained_run.evaluate(
        args.name,
        workdir,
        eval_samples=args.eval_samples or 100,
        test_examples=args.test_examples,
        data_dir=args.data_dir,
    )
    print(
        f"{args.name}: test NLL (K={metrics['eval_samples']}) {metrics['test_nll_nats']:.2f} "
        f"± {metrics['test_nll_stderr_nats']:.2f} nats, -ELBO {metrics['test_neg_elbo_nats']:.2f},"
        f" {metrics['active_units']} active units; outputs in {workdir}"
    )
    return metrics


def run() -> None:
    _cli.run_or_exit(main, sys.argv[1:])

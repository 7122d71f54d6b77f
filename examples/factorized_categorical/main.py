"""Trains the factorized categorical model of 8-bit MNIST (256 logits per pixel) with optax.

    python -m examples.factorized_categorical --data-dir ../shared/data/mnist \\
        --workdir runs/factorized_categorical

Flags -> :class:`~examples.factorized_categorical.configs.Config` -> train_and_evaluate;
every flag given overrides the default configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from examples import _cli
from examples.factorized_categorical import configs
from examples.factorized_categorical.train import summary, train_and_evaluate
from models import factorized_categorical


def parse_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    defaults = configs.get_config()
    parser = argparse.ArgumentParser(
        prog="python -m examples.factorized_categorical",
        usage="%(prog)s [flags] (--help lists them)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _cli.add_run_flags(parser, workdir="runs/factorized_categorical")
    _cli.add_train_flags(
        parser,
        defaults.train,
        binarizations=factorized_categorical.BINARIZATIONS,
        learning_rate_help="peak Adam learning rate, cosine-decayed to 0",
    )
    add = parser.add_argument
    add(
        "--pseudo-count",
        type=float,
        help="Dirichlet prior pseudo-count per level and pixel "
        f"(default {defaults.pseudo_count:g}, add-one smoothing)",
    )
    add("--train-examples", type=int, help="train on the first N training images only")
    add("--test-examples", type=int, help="evaluate on the first N test images only")
    add("--num-samples", type=int, help=f"samples in samples.png (default {defaults.num_samples})")
    return parser, parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> configs.Config:
    """The default configuration, overridden by every flag that was given."""
    base = configs.get_config()
    return dataclasses.replace(
        base,
        train=_cli.train_config(args, base.train),
        **_cli.given(args, "pseudo_count", "train_examples", "test_examples", "num_samples"),
    )


def main(argv: list[str] | None = None) -> dict:
    """Runs the example; returns the metrics written to ``workdir/metrics.json``."""
    return _cli.run_example(parse_args, build_config, train_and_evaluate, summary, argv)


def run() -> None:
    _cli.run_or_exit(main, sys.argv[1:])

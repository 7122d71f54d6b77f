"""Trains the factorized Bernoulli model of MNIST (one logit per pixel) with optax.

    python -m examples.factorized_bernoulli --data-dir ../shared/data/mnist \\
        --workdir runs/factorized

Flags -> :class:`~examples.factorized_bernoulli.configs.Config` -> train_and_evaluate;
every flag given overrides the default configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from examples import _cli
from examples.factorized_bernoulli import configs
from examples.factorized_bernoulli.train import summary, train_and_evaluate
from models import factorized


def parse_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    defaults = configs.get_config()
    parser = argparse.ArgumentParser(
        prog="python -m examples.factorized_bernoulli",
        usage="%(prog)s [flags] (--help lists them)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _cli.add_run_flags(parser, workdir="runs/factorized")
    _cli.add_train_flags(
        parser,
        defaults.train,
        binarizations=factorized.BINARIZATIONS,
        learning_rate_help="peak Adam learning rate, cosine-decayed to 0",
    )
    add = parser.add_argument
    add(
        "--pseudo-count",
        type=float,
        help="Beta prior pseudo-count per pixel outcome "
        f"(default {defaults.pseudo_count:g}, Laplace smoothing)",
    )
    add(
        "--eval-seed",
        type=int,
        help=f"seed of the fixed test binarisation (default {defaults.eval_seed})",
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
        **_cli.given(
            args, "pseudo_count", "eval_seed", "train_examples", "test_examples", "num_samples"
        ),
    )


def main(argv: list[str] | None = None) -> dict:
    """Runs the example; returns the metrics written to ``workdir/metrics.json``."""
    return _cli.run_example(parse_args, build_config, train_and_evaluate, summary, argv)


def run() -> None:
    _cli.run_or_exit(main, sys.argv[1:])

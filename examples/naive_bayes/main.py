"""Trains the class-conditional factorized Bernoulli (naive Bayes) model of MNIST.

    python -m examples.naive_bayes --data-dir ../shared/data/mnist --workdir runs/naive_bayes

Flags -> :class:`~examples.naive_bayes.configs.Config` -> train_and_evaluate; every flag
given overrides the default configuration. A logistic-regression baseline is trained too
(``--logreg-epochs 0`` skips it).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from examples import _cli
from examples.naive_bayes import configs
from examples.naive_bayes.train import summary, train_and_evaluate
from models import factorized


def parse_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    defaults = configs.get_config()
    parser = argparse.ArgumentParser(
        prog="python -m examples.naive_bayes",
        usage="%(prog)s [flags] (--help lists them)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _cli.add_run_flags(parser, workdir="runs/naive_bayes")
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
        "--class-pseudo-count",
        type=float,
        help=f"Dirichlet pseudo-count per class on p(y) (default {defaults.class_pseudo_count:g})",
    )
    add(
        "--logreg-epochs",
        type=int,
        help="epochs of the logistic-regression baseline; 0 skips it "
        f"(default {defaults.logreg_epochs})",
    )
    add(
        "--logreg-learning-rate",
        type=float,
        help=f"peak Adam learning rate of the baseline (default {defaults.logreg_learning_rate:g})",
    )
    add(
        "--eval-seed",
        type=int,
        help=f"seed of the fixed test binarisation (default {defaults.eval_seed})",
    )
    add("--train-examples", type=int, help="train on the first N training images only")
    add("--test-examples", type=int, help="evaluate on the first N test images only")
    return parser, parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> configs.Config:
    """The default configuration, overridden by every flag that was given."""
    base = configs.get_config()
    return dataclasses.replace(
        base,
        train=_cli.train_config(args, base.train),
        **_cli.given(
            args,
            "pseudo_count",
            "class_pseudo_count",
            "logreg_epochs",
            "logreg_learning_rate",
            "eval_seed",
            "train_examples",
            "test_examples",
        ),
    )


def main(argv: list[str] | None = None) -> dict:
    """Runs the example; returns the metrics written to ``workdir/metrics.json``."""
    return _cli.run_example(parse_args, build_config, train_and_evaluate, summary, argv)


def run() -> None:
    _cli.run_or_exit(main, sys.argv[1:])

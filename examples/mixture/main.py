"""Trains a mixture of K factorized Bernoullis on MNIST and reports its exact test NLL.

    python -m examples.mixture --data-dir ../shared/data/mnist --workdir runs/mixture \\
        --num-components 100 [--algorithm em]

Flags -> :class:`~examples.mixture.configs.Config` -> train_and_evaluate; every flag given
overrides the default configuration. ``--algorithm em`` runs ``--epochs`` full-data EM
iterations instead of Adam.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from examples import _cli
from examples.mixture import configs
from examples.mixture.train import summary, train_and_evaluate
from models import factorized


def parse_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    defaults = configs.get_config()
    parser = argparse.ArgumentParser(
        prog="python -m examples.mixture",
        usage="%(prog)s [flags] (--help lists them)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _cli.add_run_flags(parser, workdir="runs/mixture")
    _cli.add_train_flags(
        parser,
        defaults.train,
        binarizations=factorized.BINARIZATIONS,
        learning_rate_help="peak Adam learning rate, cosine-decayed to 0",
    )
    add = parser.add_argument
    add("--num-components", type=int, help=f"K (default {defaults.num_components})")
    add(
        "--algorithm",
        choices=configs.ALGORITHMS,
        help="adam: optax on the exact likelihood (default); em: --epochs EM iterations",
    )
    add(
        "--pseudo-count",
        type=float,
        help="Beta prior pseudo-count per pixel outcome "
        f"(default {defaults.pseudo_count:g}, Laplace smoothing)",
    )
    add(
        "--weight-pseudo-count",
        type=float,
        help="Dirichlet pseudo-count per component on the mixture weights "
        f"(default {defaults.weight_pseudo_count:g})",
    )
    add(
        "--init-smoothing",
        type=float,
        help="initial templates: (1 - s) * random image + s * mean image "
        f"(default {defaults.init_smoothing:g})",
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
    em = (args.algorithm or base.algorithm) == "em"
    why = "EM updates on every training image at once, without minibatches or an optimizer"
    for name in ("batch_size", "learning_rate"):
        _cli.refuse_unused(args, name, not em, why)
    return dataclasses.replace(
        base,
        train=_cli.train_config(args, base.train),
        **_cli.given(
            args,
            "num_components",
            "algorithm",
            "pseudo_count",
            "weight_pseudo_count",
            "init_smoothing",
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

"""Trains a VAE on MNIST: flags -> :class:`~examples.vae.configs.Config` -> train_and_evaluate.

    python -m examples.vae --data-dir ../shared/data/mnist --workdir runs/vae --epochs 10

``--preset`` picks the base configuration (``flax``, the default; ``burda``; ``burda-fast``);
every flag given overrides it (:mod:`examples.vae.flags`).
"""

from __future__ import annotations

import argparse
import sys

from examples import _cli
from examples.vae import flags
from examples.vae.train import summary, train_and_evaluate


def parse_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m examples.vae",
        usage="%(prog)s [flags] (--help lists them)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _cli.add_run_flags(parser, workdir="runs/vae")
    flags.add_flags(parser)
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Runs the example; returns the metrics written to ``workdir/metrics.json``."""
    return _cli.run_example(
        parse_args, flags.build_config, train_and_evaluate, summary, argv, flags.FLAGS
    )


def run() -> None:
    _cli.run_or_exit(main, sys.argv[1:])

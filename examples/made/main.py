"""Trains a MADE (exact-likelihood autoregressive model) on binarised MNIST.

    python -m examples.made --data-dir ../shared/data/mnist --workdir runs/made

``--preset`` picks the base configuration (``small``, the default, minutes on a CPU;
``germain``, the paper's 8000 hidden units and 32 masks; ``ordered``, 8000 units and one
raster ordering); every flag given overrides it.
``--conditional`` trains ``p(y) p(x | y)`` and reports its Bayes-rule classifier.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from examples import _cli
from examples.made import configs
from examples.made.train import summary, train_and_evaluate
from models import made, networks, training

# Configuration fields whose flag is not simply --field-name.
FLAGS = {
    "order_agnostic": "--natural-order",
    "direct": "--no-direct",
    "output_bias_init": "--no-output-bias-init",
}


def parse_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    defaults = configs.get_config()
    parser = argparse.ArgumentParser(
        prog="python -m examples.made",
        usage="%(prog)s [flags] (--help lists them)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _cli.add_run_flags(parser, workdir="runs/made")
    add = parser.add_argument
    add("--preset", choices=tuple(configs.PRESETS), default="small", help="default: small")
    # Model.
    add("--hidden", type=int, nargs="+", help="hidden widths (small: 500; germain, ordered: 8000)")
    add("--num-masks", type=int, help="orderings/connectivities trained on (small: 8)")
    add(
        "--natural-order",
        action="store_true",
        default=None,
        help="every mask keeps the raster ordering (only the connectivity changes)",
    )
    add("--no-direct", action="store_true", default=None, help="no input-to-output connections")
    add(
        "--condition-on-mask",
        action="store_true",
        default=None,
        help="the paper's connectivity conditioning, 1ᵀ(U ⊙ M)",
    )
    add("--activation", choices=tuple(networks.ACTIVATIONS), help="default: relu")
    add("--conditional", action="store_true", default=None, help="p(y) p(x | y): a classifier")
    add("--mask-seed", type=int, help="seed of the fixed set of masks (default 0)")
    add(
        "--no-output-bias-init",
        action="store_true",
        default=None,
        help="leave the output bias at zero instead of the data's pixel logits",
    )
    # Training.
    _cli.add_train_flags(parser, defaults.train, binarizations=made.BINARIZATIONS)
    add("--schedule", choices=training.SCHEDULES, help="learning-rate schedule (default cosine)")
    # Evaluation.
    add("--eval-masks", type=int, help="masks in the test ensemble (default: all of them)")
    add("--eval-seed", type=int, help=f"seed of the fixed test binarisation ({defaults.eval_seed})")
    add("--eval-every", type=int, help="epochs between mask-0 test NLLs (0: none)")
    add("--eval-batch-size", type=int, help="test images per evaluation batch")
    add("--train-examples", type=int, help="train on the first N training images only")
    add("--test-examples", type=int, help="evaluate on the first N test images only")
    return parser, parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> configs.Config:
    """The preset, overridden by every flag that was given."""
    base = configs.get_config(args.preset)
    model_fields = _cli.given(
        args, "hidden", "num_masks", "condition_on_mask", "activation", "conditional", "mask_seed"
    )
    for flag, field in (
        ("natural_order", "order_agnostic"),
        ("no_direct", "direct"),
        ("no_output_bias_init", "output_bias_init"),
    ):
        if getattr(args, flag):
            model_fields[field] = False
    num_masks = model_fields.get("num_masks", base.model.num_masks)
    if args.natural_order and not base.model.order_agnostic:
        raise training.ConfigError("natural_order", f"has no effect: {args.preset!r} is ordered")
    if args.natural_order and num_masks == 1:
        # Mask 0 is the natural order whatever order_agnostic says (models.made).
        raise training.ConfigError(
            "natural_order", "has no effect with one mask (mask 0 is in the natural order)"
        )
    return dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, **model_fields),
        train=_cli.train_config(args, base.train),
        optimizer=dataclasses.replace(base.optimizer, **_cli.given(args, "schedule")),
        **_cli.given(
            args,
            "eval_masks",
            "eval_seed",
            "eval_every",
            "eval_batch_size",
            "train_examples",
            "test_examples",
        ),
    )


def main(argv: list[str] | None = None) -> dict:
    """Runs the example; returns the metrics written to ``workdir/metrics.json``."""
    return _cli.run_example(parse_args, build_config, train_and_evaluate, summary, argv, FLAGS)


def run() -> None:
    _cli.run_or_exit(main, sys.argv[1:])

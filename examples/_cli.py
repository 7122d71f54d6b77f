"""Command-line plumbing shared by the examples: common flags and one-line errors.

Each example's ``main`` parses its flags into its configuration dataclass and calls its
``train_and_evaluate``. Flags default to ``None`` ("not given"), so an explicit value is
never mistaken for "unset"; a :class:`models.training.ConfigError` raised while building
the configuration becomes an argparse error naming the flag (one line, exit status 2).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Iterator

from models.training import ConfigError, NonFiniteLossError, TrainConfig

TRAIN_FIELDS = ("seed", "epochs", "batch_size", "learning_rate", "binarization")


def add_run_flags(parser: argparse.ArgumentParser, *, workdir: str) -> None:
    """``--data-dir``, ``--workdir``, ``--no-resume``, ``--no-progress``."""
    add = parser.add_argument
    add("--data-dir", help="folder with the four MNIST IDX .gz files (else $GENMATH_MNIST_DIR)")
    add("--workdir", default=workdir, help=f"where outputs go (default {workdir})")
    add(
        "--no-resume",
        action="store_true",
        help="start afresh, deleting the checkpoints already in --workdir",
    )
    add("--no-progress", action="store_true", help="no progress bar")


def add_train_flags(
    parser: argparse.ArgumentParser,
    defaults: TrainConfig,
    *,
    binarizations: tuple[str, ...],
    learning_rate_help: str = "learning rate",
) -> None:
    """``--seed``, ``--epochs``, ``--batch-size``, ``--learning-rate``, ``--binarization``.

    They default to ``None`` (not given); the help shows ``defaults``' values, which apply
    when a flag is left out (see :func:`train_config`).
    """
    add = parser.add_argument
    add("--seed", type=int, help=f"every key of the run derives from it (default {defaults.seed})")
    add("--epochs", type=int, help=f"default {defaults.epochs}")
    add("--batch-size", type=int, help=f"default {defaults.batch_size}")
    add(
        "--learning-rate",
        type=float,
        help=f"{learning_rate_help} (default {defaults.learning_rate:g})",
    )
    add(
        "--binarization",
        choices=binarizations,
        help="training binarisation; the test set is a fixed draw of it "
        f"(default {defaults.binarization})",
    )


def train_config(args: argparse.Namespace, base: TrainConfig) -> TrainConfig:
    """``base`` with the :func:`add_train_flags` flags that were given."""
    return dataclasses.replace(base, **given(args, *TRAIN_FIELDS))


def given(args: argparse.Namespace, *names: str) -> dict:
    """The flags among ``names`` that were given (not ``None``), as config fields."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def flag_name(field: str, flags: dict[str, str] | None = None) -> str:
    """The flag that sets configuration field ``field``."""
    return (flags or {}).get(field, "--" + field.replace("_", "-"))


@contextlib.contextmanager
def config_errors_as_usage(
    parser: argparse.ArgumentParser, flags: dict[str, str] | None = None
) -> Iterator[None]:
    """Turns a ``ConfigError`` into ``parser.error`` naming the flag of its field."""
    try:
        yield
    except ConfigError as error:
        message = str(error).split("` ", 1)[-1].rstrip(".")
        parser.error(f"argument {flag_name(error.field, flags)}: {message}")


def refuse_unused(args: argparse.Namespace, name: str, applies: bool, why: str) -> None:
    """Raises :class:`ConfigError` for a flag that was given but would change nothing."""
    if getattr(args, name, None) is not None and not applies:
        raise ConfigError(name, f"has no effect here: {why}")


def check_eval_seed(args: argparse.Namespace, config) -> None:
    """``--eval-seed`` seeds the test set's fixed binarisation, which only the dynamic
    binarisation has: refused where the test set does not depend on it."""
    binarization = config.train.binarization
    why = f"the {binarization!r} test set is deterministic (only 'dynamic' draws one)"
    refuse_unused(args, "eval_seed", binarization == "dynamic", why)


def run_example(parse_args, build_config, train_and_evaluate, summary, argv, flags=None):
    """An example's ``main``: flags -> config -> ``train_and_evaluate`` -> one summary line.

    A :class:`ConfigError` from the configuration or from checks against the data becomes
    a usage error naming the flag. Returns the metrics.
    """
    parser, args = parse_args(argv)
    with config_errors_as_usage(parser, flags):
        config = build_config(args)
        if hasattr(args, "eval_seed"):
            check_eval_seed(args, config)
        metrics = train_and_evaluate(
            config,
            args.workdir,
            data_dir=args.data_dir,
            resume=not args.no_resume,
            progress=not args.no_progress,
        )
    print(f"{summary(metrics)}; outputs in {args.workdir}")
    return metrics


def run_or_exit(fn, *args, **kwargs):
    """Calls ``fn``; a missing data folder, or training that diverged, becomes a one-line
    error instead of a traceback."""
    try:
        return fn(*args, **kwargs)
    except FileNotFoundError as error:
        sys.exit(f"error: {error}")
    except NonFiniteLossError as error:
        sys.exit(f"error: {error} A lower learning rate usually helps.")

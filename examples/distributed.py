"""Trains the VAE data-parallel over several processes (hosts) with JAX's distributed runtime.

Start one process per host (or several on one machine), all with the same flags but
``--process-id``::

    python -m examples.distributed --coordinator-address HOST0:1234 --num-processes N \\
        --process-id I --data-dir ../shared/data/mnist --workdir runs/vae-distributed

Without the three coordinator flags, ``jax.distributed.initialize()`` detects them itself
on the clusters it knows (Slurm, Open MPI, Cloud TPU, ...). Every other flag is one of
``python -m examples.vae``'s, e.g. ``--epochs`` or ``--batch-size`` (the GLOBAL batch,
split evenly over all devices of all processes).

Each process reads only its contiguous share of the training set
(:func:`models.mnist.load_mnist_shard`); the trainer's mesh spans every process's devices
and draws each batch from one global permutation, so the run computes what a
single-device run computes, up to float rounding. ``--workdir`` must be one folder all
processes see (a shared file system across hosts): orbax checkpoints there cooperatively,
and process 0 writes the logs and ``metrics.json``. The run itself is
:func:`examples.vae.train.train_and_evaluate` with the sharded data and the global mesh.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import jax
import numpy as np
from flax import nnx

from examples import _cli
from examples.vae import flags
from examples.vae.train import build, summary, train_and_evaluate
from models import mnist, reporting, sharding
from models.training import ConfigError


def parse_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m examples.distributed",
        usage="%(prog)s [flags] (--help lists them)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--coordinator-address", help="HOST:PORT of process 0 (default: detected)")
    add("--num-processes", type=int, help="number of processes in the job (default: detected)")
    add("--process-id", type=int, help="this process's index in [0, num-processes)")
    add(
        "--save-params",
        action="store_true",
        help="write this process's copy of the trained parameters to "
        "workdir/params-process<I>.npz (to check that the replicas agree)",
    )
    _cli.add_run_flags(parser, workdir="runs/vae-distributed")
    flags.add_flags(parser)
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Runs this process's part of the job; process 0 returns the metrics it wrote."""
    parser, args = parse_args(argv)
    with _cli.config_errors_as_usage(parser, flags.FLAGS):
        config = flags.build_config(args)
        _cli.check_eval_seed(args, config)
        check_split_counts(config)
    check_job_flags(parser, args)
    # JAX's own runtime connects the processes; it must run before any other JAX call.
    jax.distributed.initialize(
        coordinator_address=args.coordinator_address,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )
    mesh = sharding.data_mesh()  # every device of every process
    if config.train_examples is not None and config.train_examples < jax.device_count():
        parser.error(
            f"argument --train-examples: is {config.train_examples}, fewer than the "
            f"{jax.device_count()} devices (each takes an equal slice)"
        )
    shard = mnist.load_mnist_shard(args.data_dir, mesh=mesh, num_examples=config.train_examples)
    test_images, test_labels = mnist.read_mnist_rows(
        "test", slice(0, config.test_examples), data_dir=args.data_dir
    )
    data = mnist.Mnist(shard.images, shard.labels, test_images, test_labels)
    # The shard holds exactly the examples to train on: no further subset.
    config = dataclasses.replace(config, train_examples=None)
    # A checkpoint trained otherwise is a usage error naming the flag, in every process.
    with _cli.config_errors_as_usage(parser, flags.FLAGS):
        metrics = train_and_evaluate(
            config,
            args.workdir,
            data=data,
            mesh=mesh,
            resume=not args.no_resume,
            progress=not args.no_progress,
        )
        if args.save_params:
            save_params(args.workdir, config, data, mesh)
    if jax.process_index() == 0:
        metrics["rows_of_process_0"] = [shard.rows.start, shard.rows.stop]
        reporting.write_json(os.path.join(args.workdir, "metrics.json"), metrics)
        print(f"{jax.process_count()} processes, {jax.device_count()} devices: {summary(metrics)}")
    return metrics


def check_split_counts(config) -> None:
    """``--train-examples`` and ``--test-examples`` within MNIST's splits, before any
    process reads a row of them."""
    for name, split in (("train_examples", "train"), ("test_examples", "test")):
        count, size = getattr(config, name), mnist.SPLIT_SIZES[split]
        if count is not None and count > size:
            raise ConfigError(name, f"must be at most {size}, got {count}")


def check_job_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The coordinator flags that can be checked before the runtime starts."""
    if args.num_processes is not None and args.num_processes < 1:
        parser.error(f"argument --num-processes: must be at least 1, got {args.num_processes}")
    if args.process_id is not None:
        if args.process_id < 0:
            parser.error(f"argument --process-id: must be at least 0, got {args.process_id}")
        if args.num_processes is not None and args.process_id >= args.num_processes:
            parser.error(
                f"argument --process-id: must lie in [0, {args.num_processes}) "
                f"(--num-processes), got {args.process_id}"
            )


def save_params(workdir, config, data, mesh) -> None:
    """This process's local copy of the trained parameters, from the latest checkpoint."""
    trainer = build(config, data.train_images, mesh=mesh, workdir=workdir)
    trainer.restore_latest()
    model = nnx.merge(trainer.graphdef, sharding.to_local(trainer.state))[0]
    params = [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))]
    np.savez(os.path.join(workdir, f"params-process{jax.process_index()}.npz"), *params)


if __name__ == "__main__":
    _cli.run_or_exit(main, sys.argv[1:])

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
(:func:`models.sharding.load_mnist_shard`); the trainer's mesh spans every process's
devices and draws each batch from one global permutation, so the run computes what a
single-device run computes, up to float rounding. ``--workdir`` must be one folder all
processes see (a shared file system across hosts): orbax checkpoints there cooperatively,
and process 0 writes the logs and ``metrics.json`` (test ELBO and importance-sampled NLL).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np
from flax import nnx

from examples import vae as vae_example
from genmath import latent
from models import reporting, sharding, vae
from models.training import Trainer


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, argparse.Namespace]:
    """This script's own flags, and ``examples.vae``'s flags (all the others)."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.distributed",
        description=__doc__.split("\n")[0],
        epilog="All other flags are those of python -m examples.vae.",
    )
    add = parser.add_argument
    add("--coordinator-address", help="HOST:PORT of process 0 (default: detected)")
    add("--num-processes", type=int, help="number of processes in the job (default: detected)")
    add("--process-id", type=int, help="this process's index in [0, num-processes)")
    add("--save-params", action="store_true",
        help="write this process's copy of the trained parameters to "
        "workdir/params-process<I>.npz (to check that the replicas agree)")
    own, rest = parser.parse_known_args(argv)
    return own, vae_example.parse_args(rest)


def build_trainer(args: argparse.Namespace, *, mesh, num_examples: int, workdir) -> Trainer:
    """The VAE and its trainer from ``examples.vae``'s flags, on ``mesh``.

    Every process builds the same initial parameters from ``--seed``; the trainer
    replicates them over the mesh.
    """
    model_config, train_config, chosen = vae_example.build_configs(args)
    init_key = jax.random.split(jax.random.key(args.seed))[0]
    model = vae.VAE(model_config, rngs=nnx.Rngs(params=init_key))
    tx = chosen.optimizer(num_examples // train_config.batch_size)
    return Trainer(model, tx, vae.loss_fn, train_config, workdir=workdir, mesh=mesh)


def main(argv: list[str] | None = None) -> dict | None:
    """Runs this process's part of the job; process 0 returns the metrics it wrote."""
    start = time.perf_counter()
    own, args = parse_args(argv)
    # JAX's own runtime connects the processes; it must run before any other JAX call.
    jax.distributed.initialize(
        coordinator_address=own.coordinator_address,
        num_processes=own.num_processes,
        process_id=own.process_id,
    )
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)

    mesh = sharding.data_mesh()  # every device of every process
    shard = sharding.load_mnist_shard(args.data_dir, mesh=mesh, num_examples=args.train_examples)
    num_examples = shard.images.shape[0]
    trainer = build_trainer(args, mesh=mesh, num_examples=num_examples, workdir=workdir)
    train_config = trainer.config
    eval_key = jax.random.split(jax.random.key(args.seed))[1]

    fit_start = time.perf_counter()
    history = trainer.fit(
        shard.images, shard.labels, resume=not args.no_resume,
        progress=not args.no_progress and jax.process_index() == 0,
    )
    fit_seconds = time.perf_counter() - fit_start

    # Each process evaluates its own local copy of the (replicated) parameters.
    model = nnx.merge(trainer.graphdef, sharding.to_local(trainer.state))[0]
    if own.save_params:
        params = [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))]
        np.savez(os.path.join(workdir, f"params-process{jax.process_index()}.npz"), *params)
    if jax.process_index() != 0:
        return None

    test_images, y_test = sharding.read_mnist_rows(
        "test", slice(0, args.test_examples), data_dir=args.data_dir
    )
    x_test = vae_example.evaluation_images(
        test_images, binarization=train_config.binarization, seed=args.eval_seed
    )
    terms = vae.evaluate_elbo(model, x_test, y_test, eval_key)
    eval_samples = args.eval_samples or (
        vae_example.ACCELERATOR_EVAL_SAMPLES
        if jax.default_backend() != "cpu"
        else vae_example.CPU_EVAL_SAMPLES
    )
    nll = vae.evaluate_log_likelihood(
        model, x_test, y_test, jax.random.fold_in(eval_key, 1), num_samples=eval_samples
    )
    neg_elbo = -terms["elbo"]
    metrics = {
        "model": "vae",
        "test_nll_nats": nll["nll_nats"],
        "test_bits_per_dim": nll["bits_per_dim"],
        "eval_samples": eval_samples,
        "test_neg_elbo_nats": neg_elbo,
        "test_neg_elbo_bits_per_dim": float(latent.bits_per_dim(neg_elbo, vae.NUM_PIXELS)),
        "binarization": train_config.binarization,
        "evaluation_set": f"first {x_test.shape[0]} test images"
        + (f", fixed_binarization(seed={args.eval_seed})"
           if train_config.binarization == "dynamic" else ""),
        "seed": args.seed,
        "device": reporting.device_description(),
        "num_processes": jax.process_count(),
        "num_devices": jax.device_count(),
        "global_batch_size": train_config.batch_size,
        "train_examples": int(num_examples),
        "rows_of_process_0": [shard.rows.start, shard.rows.stop],
        "epochs": train_config.epochs,
        "fit_seconds": fit_seconds,
        "wall_time_s": time.perf_counter() - start,
        "history": history,
    }
    reporting.write_json(os.path.join(workdir, "metrics.json"), metrics)
    print(
        f"{jax.process_count()} processes, {jax.device_count()} devices: test -ELBO "
        f"{neg_elbo:.2f} nats; test NLL (K={eval_samples}) {nll['nll_nats']:.2f} nats; "
        f"{fit_seconds:.1f} s training; outputs in {workdir}"
    )
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])

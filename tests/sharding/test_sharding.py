"""Data-parallel training over a mesh: helpers on one device, then 8 forced CPU devices and a
two-process ``jax.distributed`` job, each in subprocesses with a hard timeout."""

from __future__ import annotations

import json
import re
import socket
import subprocess

import jax
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import Mesh

from examples import distributed
from examples.vae import flags as vae_flags
from examples.vae.train import build
from models import mnist as mnist_data
from models import sharding, vae
from models.training import TrainConfig, Trainer

# ------------------------------------------------------------------ one device, in process


def tiny_vae() -> vae.VAE:
    config = vae.VAEConfig(latent_dim=2, hidden=(8,))
    return vae.make_vae(config, rngs=nnx.Rngs(params=jax.random.key(0)))


LOSS = vae.make_loss_fn(vae.Objective())


def test_default_mesh_is_all_devices_on_the_data_axis():
    mesh = sharding.data_mesh()
    assert mesh.axis_names == ("data",)
    assert list(mesh.devices.flat) == jax.devices()


def test_data_mesh_needs_devices():
    with pytest.raises(ValueError, match="devices must hold at least one device"):
        sharding.data_mesh([])


def test_mesh_without_a_data_axis_is_refused():
    mesh = Mesh(np.asarray(jax.devices()), ("batch",))
    with pytest.raises(ValueError, match=r"axis named 'data'.*\('batch',\)"):
        Trainer(tiny_vae(), optax.adam(1e-3), LOSS, TrainConfig(batch_size=8), mesh=mesh)
    with pytest.raises(TypeError, match=r"mesh must be a jax\.sharding\.Mesh"):
        sharding.check_batch_size(8, jax.devices())


@pytest.mark.parametrize("batch_size", [1, 7, 128])
def test_any_batch_size_splits_over_one_device(batch_size):
    sharding.check_batch_size(batch_size, sharding.data_mesh(jax.devices()[:1]))


def test_place_dataset_replicates_host_arrays_and_keeps_placed_ones():
    mesh = sharding.data_mesh()
    images = np.arange(4 * 28 * 28, dtype=np.uint8).reshape(4, 28, 28)
    labels = np.arange(4, dtype=np.int32)
    placed_images, placed_labels = sharding.place_dataset(images, labels, mesh)
    assert placed_images.sharding.is_equivalent_to(sharding.replicated(mesh), 3)
    np.testing.assert_array_equal(placed_images, images)
    np.testing.assert_array_equal(placed_labels, labels)
    again, _ = sharding.place_dataset(placed_images, placed_labels, mesh)
    assert again is placed_images


def test_process_rows_and_assemble_on_one_process():
    mesh = sharding.data_mesh()
    assert sharding.process_rows(12, mesh) == slice(0, 12)
    rows = np.arange(12, dtype=np.int32)
    assembled = sharding.assemble(rows, 12, mesh)
    assert assembled.sharding.is_equivalent_to(sharding.batch_sharded(mesh), 1)
    np.testing.assert_array_equal(assembled, rows)
    with pytest.raises(ValueError, match=r"should hold rows 0:12 \(12 rows\), got 5"):
        sharding.assemble(rows[:5], 12, mesh)


@pytest.mark.parametrize("num_examples", [0, 60_001])
def test_load_mnist_shard_checks_num_examples(num_examples):
    message = rf"num_examples must be in \[1, 60000\], got {num_examples}"
    with pytest.raises(ValueError, match=message):
        mnist_data.load_mnist_shard(num_examples=num_examples)


@pytest.mark.parametrize(
    ("split", "rows", "message"),
    [
        ("valid", slice(0, 4), r"split must be one of \('train', 'test'\)"),
        ("test", slice(0, 20_000), "non-empty contiguous slice of the 10000 test examples"),
        ("train", slice(9, 9), "non-empty contiguous slice of the 60000 train examples"),
        ("train", slice(0, 8, 2), "non-empty contiguous slice"),
    ],
)
def test_read_mnist_rows_checks_its_arguments(split, rows, message):
    with pytest.raises(ValueError, match=message):
        mnist_data.read_mnist_rows(split, rows)


def test_replicate_and_to_local_round_trip():
    mesh = sharding.data_mesh()
    tree = {"w": np.ones((2, 3), np.float32), "key": jax.random.key(3)}
    placed = sharding.replicate(tree, mesh)
    assert placed["w"].sharding.is_fully_replicated
    local = sharding.to_local(placed)
    np.testing.assert_array_equal(local["w"], tree["w"])
    assert jax.random.key_data(local["key"]).tolist() == jax.random.key_data(tree["key"]).tolist()


# ---------------------------------------------------------------- 8 devices, subprocess


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--train-examples", "70000"], "--train-examples"),
        (["--test-examples", "20000"], "--test-examples"),
        (["--num-processes", "0"], "--num-processes"),
        (["--process-id", "-1"], "--process-id"),
        (["--num-processes", "2", "--process-id", "2"], "--process-id"),
    ],
)
def test_distributed_flags_are_checked_before_the_runtime_starts(argv, flag, capsys):
    # A usage line, before jax.distributed.initialize could wait for other processes.
    with pytest.raises(SystemExit) as exit_info:
        distributed.main(["--coordinator-address", "localhost:1", "--workdir", "unused", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}: " in err and "Traceback" not in err, err


def test_checks_on_eight_forced_cpu_devices(subprocess_env):
    """Runs ``on_8_devices.py`` (kernels, VAE and mixture training, HLO) on 8 CPU devices."""
    result = subprocess_env(
        [
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=-ra",
            "tests/sharding/on_8_devices.py",
        ],
        devices=8,
        timeout=420,
    )
    tail = result.stdout[-6000:]
    assert result.returncode == 0, tail
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\b\d+ passed\b", summary), tail
    assert not re.search(r"\b(failed|errors?|skipped)\b", summary), tail


# ------------------------------------------------------- two processes, jax.distributed

# A tiny VAE on the first 512 training images: 2 epochs of 16 steps, global batch 32.
DISTRIBUTED_FLAGS = [
    "--train-examples",
    "512",
    "--test-examples",
    "200",
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--hidden",
    "16",
    "--latent-dim",
    "2",
    "--eval-samples",
    "4",
    "--seed",
    "0",
    "--no-progress",
    "--no-resume",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_with_jax_distributed_train_like_one_device(subprocess_env, mnist, tmp_path):
    workdir = tmp_path / "run"
    flags = [
        *DISTRIBUTED_FLAGS,
        "--workdir",
        str(workdir),
        "--save-params",
        "--coordinator-address",
        f"localhost:{free_port()}",
        "--num-processes",
        "2",
    ]
    processes = [
        subprocess_env(
            ["-m", "examples.distributed", *flags, "--process-id", str(i)],
            devices=2,
            timeout=None,
            wait=False,
        )
        for i in range(2)
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300)[0])
    except subprocess.TimeoutExpired:
        pytest.fail("the two-process run did not finish within 300 s")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for i, (process, output) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == 0, f"process {i}:\n{output[-4000:]}"

    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["num_processes"] == 2 and metrics["num_devices"] == 4
    assert metrics["rows_of_process_0"] == [0, 256]  # process 0 read only its half
    history = [r["loss"] for r in metrics["history"]]
    assert len(history) == 2 and np.all(np.isfinite(history)) and history[1] < history[0]
    assert np.isfinite(metrics["test_nll_nats"])

    # Both processes end with the same parameters ...
    copies = [np.load(workdir / f"params-process{i}.npz") for i in range(2)]
    params = [
        [c[name] for name in sorted(c.files, key=lambda n: int(n.split("_")[1]))] for c in copies
    ]
    for a, b in zip(*params, strict=True):
        np.testing.assert_array_equal(a, b)
    # ... and they are those of the same run on one device, up to float rounding.
    _, args = distributed.parse_args(DISTRIBUTED_FLAGS)
    config = vae_flags.build_config(args)
    trainer = build(config, mnist.train_images[:512], mesh=sharding.data_mesh(jax.devices()[:1]))
    trainer.fit(mnist.train_images[:512], mnist.train_labels[:512], progress=False)
    reference = [np.asarray(x) for x in jax.tree.leaves(nnx.state(trainer.model, nnx.Param))]
    for a, ref in zip(params[0], reference, strict=True):
        # Float rounding of the 4-way batch reductions: a few ulps (see on_8_devices.py).
        rtol = 1e-5 if ref.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(a, ref, rtol=rtol, atol=rtol)

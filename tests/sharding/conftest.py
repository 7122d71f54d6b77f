"""Fixtures for the sharding tests: subprocesses with forced CPU devices.

The MNIST fixtures (``mnist``, ``mnist_dir``, ``tfds_dir``) come from ``tests/conftest.py``.

XLA fixes its device count when JAX initialises, so runs that need 8 CPU devices (or two
``jax.distributed`` processes) go into subprocesses with their own ``XLA_FLAGS`` and a hard
timeout, and the rest of the suite keeps its single device.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.mnist import MNIST_DIR_ENV

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def subprocess_env(mnist, mnist_dir, tfds_dir):
    """Runs a Python command line in a subprocess that sees ``devices`` CPU devices.

    Returns ``run(args, *, devices, timeout, wait=True)``: a ``CompletedProcess`` (stdout
    and stderr merged) or, with ``wait=False``, the started ``Popen``.
    """

    def env_for(devices: int) -> dict[str, str]:
        env = dict(os.environ)
        flags = env.get("XLA_FLAGS", "").split()
        flags = [f for f in flags if not f.startswith("--xla_force_host_platform_device_count")]
        env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
        env.update(
            JAX_PLATFORMS="cpu",
            TFDS_DATA_DIR=os.fspath(tfds_dir),
            **{MNIST_DIR_ENV: os.fspath(mnist_dir)},
            TF_CPP_MIN_LOG_LEVEL="2",
            PYTHONPATH=os.pathsep.join(filter(None, [os.fspath(REPO), env.get("PYTHONPATH")])),
        )
        return env

    def run(args: list[str], *, devices: int, timeout: float, wait: bool = True):
        command = [sys.executable, *args]
        if not wait:
            return subprocess.Popen(
                command,
                cwd=REPO,
                env=env_for(devices),
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        return subprocess.run(
            command,
            cwd=REPO,
            env=env_for(devices),
            text=True,
            timeout=timeout,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )

    return run

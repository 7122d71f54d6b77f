"""MNIST for the benchmarks: ``models.mnist.load_mnist``, or the IDX files read with numpy.

The benchmarks load MNIST the way every model does (tensorflow-datasets, see
``models.mnist``). A machine without tensorflow-datasets (an accelerator host that has
JAX but cannot install more) can still run them from the four original IDX files: they
are then decoded here with numpy. The images are the same; their order is the files'
rather than tfds's, which changes which images a ``--train-examples`` subset holds, not
what an epoch costs. The results file records which source was used.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pathlib

import numpy as np

from models import mnist

_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def _read_idx(path: pathlib.Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:  # unsigned bytes
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {magic:#x}).")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def read_idx_folder(data_dir: str | os.PathLike) -> mnist.Mnist:
    """The four IDX files of ``data_dir`` as :class:`models.mnist.Mnist` (file order)."""
    folder = pathlib.Path(data_dir).expanduser()
    missing = [name for name in _FILES.values() if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks the MNIST IDX files {missing}.")
    arrays = {field: _read_idx(folder / name) for field, name in _FILES.items()}
    return mnist.Mnist(
        train_images=np.ascontiguousarray(arrays["train_images"]),
        train_labels=arrays["train_labels"].astype(np.int32),
        test_images=np.ascontiguousarray(arrays["test_images"]),
        test_labels=arrays["test_labels"].astype(np.int32),
    )


def load(data_dir: str | os.PathLike | None = None) -> tuple[mnist.Mnist, str]:
    """MNIST and where it came from: through tfds when installed, else the IDX files."""
    if importlib.util.find_spec("tensorflow_datasets") is not None:
        return mnist.load_mnist(data_dir), "tensorflow-datasets (models.mnist.load_mnist)"
    folder = data_dir or os.environ.get(mnist.MNIST_DIR_ENV)
    if not folder:
        raise SystemExit(
            "tensorflow-datasets is not installed: pass --data-dir (or set "
            f"{mnist.MNIST_DIR_ENV}) to a folder of the four MNIST IDX .gz files."
        )
    return read_idx_folder(folder), f"IDX files read with numpy (no tensorflow-datasets): {folder}"

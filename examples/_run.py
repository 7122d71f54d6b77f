"""The set-up every example's ``train_and_evaluate`` starts with: its workdir and its data."""

from __future__ import annotations

import os
import shutil

from models import mnist
from models.training import ConfigError


def prepare_workdir(workdir: str | os.PathLike, *, resume: bool, subdirs=("",)) -> str:
    """Creates ``workdir`` and returns its absolute path.

    With ``resume=False`` the ``checkpoints`` folders of ``workdir`` (and of each of
    ``subdirs`` inside it) are deleted, because the old checkpoints would otherwise shadow
    the new run's (same step numbers).
    """
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    if not resume:
        for sub in subdirs:
            shutil.rmtree(os.path.join(workdir, sub, "checkpoints"), ignore_errors=True)
    return workdir


def select_data(
    config, data: mnist.Mnist | None, data_dir, *, minibatches: bool = True
) -> mnist.Mnist:
    """MNIST cut to ``config.train_examples`` and ``config.test_examples`` (``None``: all).

    Args:
      config: an example configuration with ``train_examples`` and ``test_examples``.
      data: the arrays; by default :func:`models.mnist.load_mnist` of ``data_dir``.
      data_dir: the folder of the four MNIST IDX files.
      minibatches: whether training draws minibatches of ``config.train.batch_size``
        (``False`` for full-data training, where the batch size is not used).

    Raises:
      ConfigError: a count above the split's size, or a training batch larger than the
        training examples kept (no complete batch), naming the option.
    """
    data = mnist.load_mnist(data_dir) if data is None else data
    for name, images in (
        ("train_examples", data.train_images),
        ("test_examples", data.test_images),
    ):
        count = getattr(config, name)
        if count is not None and count > images.shape[0]:
            raise ConfigError(name, f"must be at most {images.shape[0]}, got {count}")
    train = mnist.subset(
        data.train_images, data.train_labels, config.train_examples, name="train_examples"
    )
    test = mnist.subset(
        data.test_images, data.test_labels, config.test_examples, name="test_examples"
    )
    batch_size = config.train.batch_size
    if minibatches and batch_size > train[0].shape[0]:
        raise ConfigError(
            "batch_size",
            f"must not exceed the {train[0].shape[0]} training examples, got {batch_size}",
        )
    return mnist.Mnist(*train, *test)

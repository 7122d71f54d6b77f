"""The benchmarks' MNIST: tfds when installed, else the IDX files read with numpy."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks._src import data


def test_idx_files_hold_the_same_images_as_tfds(mnist_dir, mnist):
    idx = data.read_idx_folder(mnist_dir)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        ours, theirs = getattr(idx, field), getattr(mnist, field)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, field
    # The same examples in another order: equal label counts and pixel sums.
    np.testing.assert_array_equal(
        np.bincount(idx.train_labels, minlength=10), np.bincount(mnist.train_labels, minlength=10)
    )
    assert idx.test_images.sum(dtype=np.int64) == mnist.test_images.sum(dtype=np.int64)


def test_without_tfds_the_idx_files_are_read(monkeypatch, mnist_dir):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    arrays, source = data.load(mnist_dir)
    assert "numpy" in source and str(mnist_dir) in source
    assert arrays.train_images.shape == (60_000, 28, 28)


def test_without_tfds_or_a_folder_the_error_says_what_to_pass(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    monkeypatch.delenv("GENMATH_MNIST_DIR", raising=False)
    with pytest.raises(SystemExit, match="--data-dir"):
        data.load(None)


def test_a_folder_without_the_files_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks the MNIST IDX files"):
        data.read_idx_folder(tmp_path)

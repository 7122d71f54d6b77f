"""MNIST loading (through tfds, from the original IDX files), binarisations, epoch batches."""

from __future__ import annotations

import gzip
import shutil
import socket
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import mnist as mnist_module
from models.mnist import BINARIZATIONS, binarize, epoch_batches, fixed_binarization, load_mnist

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path) -> np.ndarray:
    """Parses an IDX file: zero bytes, a dtype code, the rank, big-endian int32 sizes, data."""
    raw = gzip.decompress(path.read_bytes())
    assert raw[:3] == b"\x00\x00\x08"  # unsigned bytes
    rank = raw[3]
    shape = tuple(np.frombuffer(raw, ">i4", count=rank, offset=4))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(shape)


def split_arrays(data, split):
    return (
        (data.train_images, data.train_labels)
        if split == "train"
        else (data.test_images, data.test_labels)
    )


def sorted_examples(images, labels) -> np.ndarray:
    """Examples as rows of pixel bytes plus label, sorted: equal iff equal as multisets."""
    rows = np.concatenate([images.reshape(len(images), -1), labels[:, None].astype(np.uint8)], 1)
    rows = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1])))[:, 0]
    return np.sort(rows)


# --------------------------------------------------------------------------------------------
# Loading.


def test_shapes_dtypes_and_labels(mnist):
    expected = {
        "train_images": (60_000, 28, 28),
        "train_labels": (60_000,),
        "test_images": (10_000, 28, 28),
        "test_labels": (10_000,),
    }
    for name, array in mnist._asdict().items():
        assert isinstance(array, np.ndarray), name
        assert array.shape == expected[name], name
        assert array.dtype == (np.uint8 if "images" in name else np.int32), name
    for labels in (mnist.train_labels, mnist.test_labels):
        np.testing.assert_array_equal(np.unique(labels), np.arange(10))


@pytest.mark.parametrize("split", ["train", "test"])
def test_arrays_are_those_of_the_idx_files(mnist, mnist_dir, split):
    images, labels = split_arrays(mnist, split)
    image_file, label_file = IDX_FILES[split]
    idx_images, idx_labels = read_idx(mnist_dir / image_file), read_idx(mnist_dir / label_file)
    # The pixel means agree exactly (integer sums), and so do the examples as a multiset:
    # tfds stores them in its own (deterministic) shuffled order.
    assert images.sum(dtype=np.int64) == idx_images.sum(dtype=np.int64)
    np.testing.assert_array_equal(
        np.bincount(labels, minlength=10), np.bincount(idx_labels, minlength=10)
    )
    np.testing.assert_array_equal(
        sorted_examples(images, labels), sorted_examples(idx_images, idx_labels)
    )


def test_cached_arrays_equal_the_prepared_tfds_records(mnist, tfds_dir):
    records = mnist_module._read_prepared(mnist_module._mnist_builder(tfds_dir))
    for name, array in mnist._asdict().items():
        np.testing.assert_array_equal(getattr(records, name), array, err_msg=name)


def test_second_load_is_fast(mnist, mnist_dir, tfds_dir):
    # The issue asks for a second load under 2 s on the development machine.
    start = time.perf_counter()
    again = load_mnist(mnist_dir, tfds_dir=tfds_dir)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"second load took {elapsed:.2f} s"
    for name, array in mnist._asdict().items():
        np.testing.assert_array_equal(getattr(again, name), array, err_msg=name)


def test_environment_variables_are_defaults(mnist, mnist_dir, tfds_dir, monkeypatch):
    monkeypatch.setenv("GENMATH_MNIST_DIR", str(mnist_dir))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    again = load_mnist()
    np.testing.assert_array_equal(again.test_images, mnist.test_images)


@pytest.fixture
def partial_copy(mnist_dir, tmp_path):
    """A folder linking to the real files; tests then remove or corrupt one."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for names in IDX_FILES.values():
        for name in names:
            (folder / name).symlink_to(mnist_dir / name)
    return folder


def test_missing_folder_is_reported(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError, match=f"{missing}.*t10k-images-idx3-ubyte.gz"):
        load_mnist(missing, tfds_dir=tmp_path / "tfds")


def test_missing_file_is_reported(partial_copy, tmp_path):
    (partial_copy / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=f"{partial_copy} lacks train-labels-idx1"):
        load_mnist(partial_copy, tfds_dir=tmp_path / "tfds")


@pytest.mark.parametrize("name", ["t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz"])
def test_wrong_checksum_is_reported(partial_copy, mnist_dir, tmp_path, name):
    target = partial_copy / name
    target.unlink()
    shutil.copyfile(mnist_dir / name, target)
    with open(target, "r+b") as file:  # flip one byte in the middle
        file.seek(target.stat().st_size // 2)
        byte = file.read(1)
        file.seek(-1, 1)
        file.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ValueError, match=f"{target} is not the original MNIST file.*sha256"):
        load_mnist(partial_copy, tfds_dir=tmp_path / "tfds")


def test_environment_folder_is_checked(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("GENMATH_MNIST_DIR", str(missing))
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_mnist(tfds_dir=tmp_path / "tfds")


def closed_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_offline_without_folder_fails_fast(tmp_path, monkeypatch):
    monkeypatch.delenv("GENMATH_MNIST_DIR", raising=False)
    port = closed_local_port()
    monkeypatch.setattr(mnist_module, "_download_address", lambda url_infos: ("127.0.0.1", port))
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"--data-dir.*GENMATH_MNIST_DIR"):
        load_mnist(tfds_dir=tmp_path / "fresh-tfds")
    assert time.perf_counter() - start < 10.0


def test_probe_gives_up_on_a_hanging_connection(monkeypatch):
    # Name resolution can hang regardless of socket timeouts; the probe must not.
    release = threading.Event()

    def hang(*args, **kwargs):
        release.wait(30.0)
        raise OSError("simulated hang")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    try:
        assert not mnist_module._can_connect("example.invalid", 443, timeout=0.5)
        assert time.perf_counter() - start < 5.0
    finally:
        release.set()  # lets the abandoned probe thread end cleanly


def test_probe_connects_to_a_listening_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert mnist_module._can_connect("127.0.0.1", server.getsockname()[1], timeout=3.0)
    assert not mnist_module._can_connect("127.0.0.1", closed_local_port(), timeout=3.0)


@pytest.mark.parametrize("proxy", [None, "http://127.0.0.1:3128"])
def test_probe_address_follows_the_proxy(tmp_path, monkeypatch, proxy):
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    if proxy:
        monkeypatch.setenv("https_proxy", proxy)
    url_infos = mnist_module._mnist_builder(tmp_path).url_infos
    host, port = mnist_module._download_address(url_infos)
    if proxy:
        assert (host, port) == ("127.0.0.1", 3128)
    else:
        assert all(host in url for url in url_infos)
        assert port == 443


# --------------------------------------------------------------------------------------------
# Binarisation.


@pytest.fixture(scope="module")
def test_images(mnist):
    return jnp.asarray(mnist.test_images)


@pytest.mark.parametrize("mode", BINARIZATIONS)
def test_binarize_values_and_means(mnist, test_images, mode):
    images = mnist.test_images
    result = binarize(test_images, mode=mode, key=jax.random.key(0))
    assert result.shape == images.shape and result.dtype == jnp.float32
    result = np.asarray(result)
    grey = images.astype(np.float32) * np.float32(1.0 / 255.0)
    if mode == "8bit":
        np.testing.assert_array_equal(result, images.astype(np.float64))
        return
    if mode == "grey":
        np.testing.assert_array_equal(result, grey)
        # Within one float32 rounding of the exact quotient.
        np.testing.assert_allclose(result, images / 255.0, rtol=np.finfo(np.float32).eps, atol=0)
        return
    assert set(np.unique(result)) <= {0.0, 1.0}
    if mode == "threshold":
        np.testing.assert_array_equal(result, (images > 127).astype(np.float32))
    else:
        # Mean of 7.84 million independent Bernoulli draws: standard error <= 0.5 / sqrt(n).
        std_error = 0.5 / np.sqrt(images.size)
        assert abs(result.mean(dtype=np.float64) - grey.mean(dtype=np.float64)) < 6 * std_error
        # Pixels at 0 and 255 are deterministic.
        np.testing.assert_array_equal(result[images == 0], 0.0)
        np.testing.assert_array_equal(result[images == 255], 1.0)


@pytest.mark.parametrize("mode", BINARIZATIONS)
def test_binarize_jit_matches_eager_for_numpy_and_device_input(mnist, mode):
    images = mnist.train_images[:256]
    key = jax.random.key(3)
    eager = binarize(images, mode=mode, key=key)
    jitted = jax.jit(binarize, static_argnames="mode")(jnp.asarray(images), mode=mode, key=key)
    np.testing.assert_array_equal(np.asarray(jitted), np.asarray(eager))


def test_dynamic_binarization_is_determined_by_the_key(mnist):
    images = mnist.train_images[:512]
    first = binarize(images, mode="dynamic", key=jax.random.key(1))
    np.testing.assert_array_equal(first, binarize(images, mode="dynamic", key=jax.random.key(1)))
    assert np.any(first != binarize(images, mode="dynamic", key=jax.random.key(2)))


def test_fixed_binarization_is_the_seeded_bernoulli_draw(mnist):
    images = mnist.test_images[:512]
    fixed = fixed_binarization(images, seed=7)
    assert fixed.dtype == jnp.float32
    np.testing.assert_array_equal(fixed, fixed_binarization(images, seed=7))
    # jax.random.bernoulli of the grey levels, as in every earlier release: evaluation sets
    # (and so the published figures) stay the same when the training draw gets cheaper.
    grey = binarize(images, mode="grey")
    expected = jax.random.bernoulli(jax.random.key(7), grey).astype(jnp.float32)
    np.testing.assert_array_equal(fixed, expected)
    assert np.any(fixed != fixed_binarization(images, seed=8))


def test_binarize_rejects_bad_arguments():
    pixels = np.zeros((2, 28, 28), np.uint8)
    with pytest.raises(ValueError, match="mode must be one of"):
        binarize(pixels, mode="bernoulli", key=jax.random.key(0))
    with pytest.raises(ValueError, match="needs key"):
        binarize(pixels, mode="dynamic")
    with pytest.raises(TypeError, match="uint8"):
        binarize(pixels.astype(np.float32), mode="grey")
    with pytest.raises(TypeError, match="seed must be a Python int"):
        fixed_binarization(pixels, seed=1.5)


# --------------------------------------------------------------------------------------------
# Epoch batches.


@pytest.mark.parametrize(("num_examples", "batch_size"), [(10, 3), (12, 4), (5, 5), (60_000, 128)])
def test_epoch_batches_is_a_permutation(num_examples, batch_size):
    batches = jax.jit(epoch_batches, static_argnums=(1, 2))(
        jax.random.key(0), num_examples, batch_size
    )
    num_batches = num_examples // batch_size
    assert batches.shape == (num_batches, batch_size) and batches.dtype == jnp.int32
    indices = np.asarray(batches).ravel()
    assert len(np.unique(indices)) == indices.size
    assert indices.min() >= 0 and indices.max() < num_examples
    if num_examples % batch_size == 0:
        np.testing.assert_array_equal(np.sort(indices), np.arange(num_examples))
    np.testing.assert_array_equal(
        batches, epoch_batches(jax.random.key(0), num_examples, batch_size)
    )


def test_epoch_batches_shuffle_differs_between_keys():
    first = epoch_batches(jax.random.key(0), 1000, 100)
    assert np.any(first != epoch_batches(jax.random.key(1), 1000, 100))
    assert np.any(np.asarray(first).ravel() != np.arange(1000))


def test_epoch_batches_rejects_bad_sizes():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="batch_size=11 exceeds num_examples=10"):
        epoch_batches(key, 10, 11)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        epoch_batches(key, 10, 0)
    with pytest.raises(TypeError, match="num_examples must be a static Python int"):
        epoch_batches(key, 10.0, 2)
    with pytest.raises(TypeError, match="num_examples must be a static Python int"):
        jax.jit(epoch_batches)(key, 10, 2)

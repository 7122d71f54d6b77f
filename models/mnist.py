"""MNIST: the one data module. Loading through tensorflow-datasets, constants, binarisations.

The first :func:`load_mnist` prepares the tfds ``mnist`` dataset, either from a local folder
holding the four original IDX ``.gz`` files (no network needed) or by downloading them. The
decoded splits are then cached as an ``.npz`` inside tfds's versioned dataset folder, so later
calls read that one file and never import TensorFlow. In a multi-process job,
:func:`load_mnist_shard` reads only this process's rows, through the same tfds builder.

The data path of every model: uint8 images (on the device) -> :func:`binarize` (fresh
Bernoulli draws per step for ``"dynamic"``) -> :func:`flatten_images` -> the model. Every
model is evaluated on :func:`evaluation_images`, one fixed, seeded binarisation of the test
set, so their likelihoods are comparable.
"""

from __future__ import annotations

import contextlib
import hashlib
import operator
import os
import socket
import threading
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from models import sharding

try:  # Cross-process lock around preparation; Windows has no fcntl and goes without.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

#: Height and width of an MNIST image, its pixel count and its number of classes.
IMAGE_SHAPE = (28, 28)
NUM_PIXELS = 784
NUM_CLASSES = 10

BINARIZATIONS = ("dynamic", "threshold", "grey", "8bit")

#: Environment variable naming a folder with the four original MNIST IDX ``.gz`` files.
MNIST_DIR_ENV = "GENMATH_MNIST_DIR"

#: Examples in each split of MNIST.
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
# Bump the suffix whenever the cached layout changes, so stale caches are never read.
_CACHE_NAME = "genmath-arrays-v1.npz"
_PROBE_TIMEOUT_S = 3.0


class Mnist(NamedTuple):
    """Both MNIST splits as numpy arrays, in tfds's (deterministic) example order."""

    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) int32
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) int32


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    tfds_dir: str | os.PathLike | None = None,
) -> Mnist:
    """Loads MNIST through tensorflow-datasets, preparing it on first use.

    Args:
        data_dir: a folder holding the four original IDX files (``train-images-idx3-ubyte.gz``,
            ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
            ``t10k-labels-idx1-ubyte.gz``). Defaults to the environment variable
            ``GENMATH_MNIST_DIR``; when neither is set, tfds downloads the files. When given,
            the folder is always checked (all four files, sha256 as registered in tfds), and
            tfds prepares the dataset from it without touching the network.
        tfds_dir: tfds's data directory. Defaults to ``TFDS_DATA_DIR``, else tfds's default
            ``~/tensorflow_datasets``.

    Returns:
        The train and test splits as uint8 images of shape (N, 28, 28) and int32 labels.

    Raises:
        FileNotFoundError: ``data_dir`` is not a folder or lacks one of the four files.
        ValueError: a file in ``data_dir`` does not have the checksum tfds expects.
        ConnectionError: the dataset is not prepared, no ``data_dir`` is given and the
            download host cannot be reached (raised within seconds, before tfds retries).
    """
    data_dir = _resolve_data_dir(data_dir)
    tfds_root = _resolve_tfds_dir(tfds_dir)
    builder = _mnist_builder(tfds_root)
    if data_dir is not None:
        _check_data_dir(data_dir, builder.url_infos)

    cache_path = Path(builder.data_dir) / _CACHE_NAME
    arrays = _read_cache(cache_path)
    if arrays is not None:
        return arrays
    with _exclusive_lock(tfds_root / ".genmath-mnist.lock"):
        # Another process may have prepared the dataset while this one waited for the lock.
        arrays = _read_cache(cache_path)
        if arrays is None:
            builder = _mnist_builder(tfds_root)  # sees splits another process may have written
            if not builder.is_prepared():
                _prepare(builder, data_dir, tfds_root)
            arrays = _read_prepared(builder)
            _write_cache(cache_path, arrays)
    return arrays


class MnistShard(NamedTuple):
    """A training split spread over the processes of a job."""

    images: jax.Array  # global (num_examples, 28, 28) uint8, sharded P("data")
    labels: jax.Array  # global (num_examples,) int32, sharded P("data")
    rows: slice  # the rows this process read


def load_mnist_shard(
    data_dir: str | os.PathLike | None = None,
    *,
    mesh: Mesh | None = None,
    tfds_dir: str | os.PathLike | None = None,
    num_examples: int | None = None,
) -> MnistShard:
    """Loads MNIST's training split with each process reading only its own rows.

    The split (its first ``num_examples`` examples, default all 60,000, trimmed to a
    multiple of the device count) is cut into contiguous slices, one per process in mesh
    order; each process reads its slice (:func:`read_mnist_rows`) and the slices are
    assembled into one global array sharded along ``"data"``. The example order is
    tfds's, the same as :func:`load_mnist`, so the trainer's global permutation draws
    exactly the batches a single-host run draws.

    Args:
        data_dir: folder with the four original IDX files, as for :func:`load_mnist` (only
            read when the dataset still has to be prepared; every host prepares its own copy).
        mesh: the trainer's mesh (default :func:`models.sharding.data_mesh`).
        tfds_dir: tfds's data directory, as for :func:`load_mnist`.
        num_examples: use only the first ``num_examples`` training examples, rounded down
            to a multiple of the devices on the mesh's data axis (every device takes an
            equal slice; the training metrics record the count actually used).
    """
    mesh = sharding.data_mesh() if mesh is None else mesh
    devices = sharding.data_axis_size(mesh)
    total = SPLIT_SIZES["train"] if num_examples is None else operator.index(num_examples)
    if not 0 < total <= SPLIT_SIZES["train"]:
        raise ValueError(f"num_examples must be in [1, 60000], got {num_examples}.")
    total -= total % devices
    if total == 0:
        raise ValueError(f"num_examples={num_examples} is fewer than the {devices} devices.")
    rows = sharding.process_rows(total, mesh)
    images, labels = read_mnist_rows("train", rows, data_dir=data_dir, tfds_dir=tfds_dir)
    return MnistShard(
        sharding.assemble(images, total, mesh), sharding.assemble(labels, total, mesh), rows
    )


def read_mnist_rows(
    split: str,
    rows: slice,
    *,
    data_dir: str | os.PathLike | None = None,
    tfds_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reads rows ``rows.start:rows.stop`` of an MNIST split, and nothing else, into host memory.

    Goes through a tfds split slice (``"train[a:b]"``) of the prepared dataset, so only
    those records are decoded; on a host where MNIST is not prepared yet,
    :func:`load_mnist` prepares it first (under its cross-process lock).

    Returns:
        uint8 images ``(b - a, 28, 28)`` and int32 labels ``(b - a,)``, in tfds's order.
    """
    if split not in SPLIT_SIZES:
        raise ValueError(
            f"read_mnist_rows: split must be one of {tuple(SPLIT_SIZES)}, got {split!r}."
        )
    size = SPLIT_SIZES[split]
    start, stop, step = rows.indices(size)
    if step != 1 or stop <= start or (rows.stop is not None and rows.stop > size):
        raise ValueError(
            f"read_mnist_rows: rows must be a non-empty contiguous slice of the {size} "
            f"{split} examples, got {rows}."
        )
    builder = _mnist_builder(_resolve_tfds_dir(tfds_dir))
    if not builder.is_prepared():
        load_mnist(data_dir, tfds_dir=tfds_dir)
    _import_tensorflow_quietly()
    import tensorflow_datasets as tfds

    dataset = builder.as_dataset(
        split=f"{split}[{start}:{stop}]", batch_size=-1, as_supervised=True
    )
    images, labels = tfds.as_numpy(dataset)
    return np.ascontiguousarray(images[..., 0], dtype=np.uint8), labels.astype(np.int32)


def binarize(images, *, mode: str, key: jax.Array | None = None) -> jax.Array:
    """Turns uint8 pixels into float32 values in [0, 1], on the device.

    Args:
        images: uint8 pixel intensities in [0, 255], any shape (typically (..., 28, 28)).
        mode: ``"dynamic"``: a fresh Bernoulli(pixel / 255) draw from ``key`` (see
            :func:`bernoulli_pixels` for its precision); ``"threshold"``: 1 where
            pixel / 255 > 0.5, else 0; ``"grey"``: pixel / 255; ``"8bit"``: the pixel
            values themselves, 0, 1, ..., 255 (exact in float32), for the discrete
            likelihoods over 256 levels (:mod:`genmath.discretized_logistic`, a 256-way
            categorical) and for dequantisation.
        key: PRNG key, required by ``"dynamic"`` and ignored otherwise.

    Returns:
        float32 array of the same shape as ``images``: values in [0, 1], or in
        {0, ..., 255} for ``"8bit"``.

    >>> import numpy as np
    >>> pixels = np.array([0, 100, 128, 255], dtype=np.uint8)
    >>> print(binarize(pixels, mode="threshold"))
    [0. 0. 1. 1.]
    >>> print([round(float(v), 3) for v in binarize(pixels, mode="grey")])
    [0.0, 0.392, 0.502, 1.0]
    >>> print(binarize(pixels, mode="8bit"))
    [  0. 100. 128. 255.]
    """
    if mode not in BINARIZATIONS:
        raise ValueError(f"binarize: mode must be one of {BINARIZATIONS}, got {mode!r}.")
    if mode == "dynamic" and key is None:
        raise ValueError("binarize: mode='dynamic' draws random pixels and needs key=<PRNG key>.")
    images = _check_pixels("binarize", images)
    if mode == "threshold":
        return (images > 127).astype(jnp.float32)  # pixel / 255 > 0.5, exactly
    if mode == "dynamic":
        return bernoulli_pixels(key, images)
    if mode == "8bit":
        return images.astype(jnp.float32)
    return _intensity(images)


def _check_pixels(fn: str, images) -> jax.Array:
    images = jnp.asarray(images)
    if images.dtype != jnp.uint8:
        raise TypeError(f"{fn}: images must be uint8 pixels in [0, 255], got {images.dtype}.")
    return images


def _intensity(images: jax.Array) -> jax.Array:
    # A multiplication rather than a division: XLA turns division by a constant into this
    # under jit, so eager and jitted results agree to the bit.
    return images.astype(jnp.float32) * (1.0 / 255.0)


def bernoulli_pixels(key: jax.Array, images) -> jax.Array:
    """A Bernoulli(pixel / 255) draw per pixel, two pixels per 32-bit random word.

    Each pixel is compared with 16 random bits: it is 1 with probability
    ``t / 2**16``, ``t = round(pixel * 2**16 / 255)``, which is within ``2**-17 < 8e-6``
    of ``pixel / 255`` (exactly 0 and 1 at pixels 0 and 255). Splitting each word in two
    halves the random bits (``jax.random.bernoulli`` draws a 32-bit word per pixel). Measured
    on a 2-core AMD EPYC (``python -m benchmarks.training``, 2026-12-01), inside the epoch's
    scan it ran at the same speed as ``jax.random.bernoulli`` (0.37 s per 60,000 images
    each, 11 % of the epoch): there XLA:CPU's threefry is not the bottleneck.

    Args:
        key: a PRNG key.
        images: uint8 pixels; the leading axis (the batch) stays leading, so a
            batch-sharded input keeps its sharding.

    Returns:
        float32 zeros and ones, of the shape of ``images``.

    >>> import numpy as np
    >>> x = bernoulli_pixels(jax.random.key(0), np.array([[0, 255, 0, 255]], np.uint8))
    >>> print(x)
    [[0. 1. 0. 1.]]
    """
    images = _check_pixels("bernoulli_pixels", images)
    shape = images.shape
    lead = shape[:1] if images.ndim >= 2 else ()
    flat = images.reshape(*lead, -1)
    size = flat.shape[-1]
    half = -(-size // 2)
    flat = jnp.pad(flat, [(0, 0)] * len(lead) + [(0, 2 * half - size)])
    pixels = flat.reshape(*lead, 2, half).astype(jnp.uint32)
    words = jax.random.bits(key, (*lead, 1, half), jnp.uint32)
    bits16 = jnp.concatenate([words & 0xFFFF, words >> 16], axis=-2)
    # u < round(p 2^16 / 255)  <=>  (u + 1) 255 <= p 2^16 + 127: integers, no division.
    ones = (bits16 + 1) * 255 <= pixels * 65536 + 127
    return ones.astype(jnp.float32).reshape(*lead, 2 * half)[..., :size].reshape(shape)


def fixed_binarization(images, *, seed: int) -> jax.Array:
    """A Bernoulli(pixel / 255) draw from ``seed``: a fixed binary set for evaluation.

    Evaluating every model on the same binary images makes their likelihoods comparable.
    It is drawn with ``jax.random.bernoulli`` (one 32-bit word per pixel), so the evaluation
    sets of earlier results stay bit for bit the same.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"fixed_binarization: seed must be a Python int, got {seed!r}.")
    intensity = _intensity(_check_pixels("fixed_binarization", images))
    return jax.random.bernoulli(jax.random.key(int(seed)), intensity).astype(jnp.float32)


def evaluation_images(images, *, binarization: str, seed: int = 0) -> jax.Array:
    """The fixed test set for a model trained on ``binarization``.

    ``"dynamic"`` gives :func:`fixed_binarization` of ``seed``; ``"threshold"``, ``"grey"``
    and ``"8bit"`` are deterministic already.
    """
    if binarization == "dynamic":
        return fixed_binarization(images, seed=seed)
    return binarize(images, mode=binarization)


def evaluation_note(num_images: int, binarization: str, seed: int = 0) -> str:
    """What :func:`evaluation_images` drew, in words, for ``metrics.json``."""
    drawn = f"fixed_binarization(seed={seed})" if binarization == "dynamic" else binarization
    return f"first {num_images} test images, {drawn}"


def flatten_images(x, *, fn: str = "flatten_images") -> jax.Array:
    """``(..., 28, 28)`` images or ``(..., 784)`` vectors as ``(..., 784)``; else a clear error.

    ``fn`` names the caller in the error.

    >>> print(flatten_images(jnp.zeros((5, 28, 28))).shape)
    (5, 784)
    """
    x = jnp.asarray(x)
    if x.ndim >= 2 and x.shape[-2:] == IMAGE_SHAPE:
        return x.reshape(*x.shape[:-2], NUM_PIXELS)
    if x.ndim >= 1 and x.shape[-1] == NUM_PIXELS:
        return x
    raise ValueError(f"{fn}: `x` must have shape (..., 28, 28) or (..., 784), got {x.shape}.")


def unflatten_images(x: jax.Array) -> jax.Array:
    """``(..., 784)`` -> ``(..., 28, 28)``."""
    return x.reshape(*x.shape[:-1], *IMAGE_SHAPE)


def subset(images, labels, count: int | None, *, name: str = "count"):
    """The first ``count`` examples (all for ``None``); ``name`` is the option in the error."""
    if count is None:
        return images, labels
    if not 0 < count <= images.shape[0]:
        raise ValueError(f"{name} must lie in [1, {images.shape[0]}], got {count}.")
    return images[:count], labels[:count]


def epoch_batches(key: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """Indices of one shuffled epoch, as an on-device int32 (num_batches, batch_size) array.

    The last ``num_examples % batch_size`` examples of the permutation are dropped, so every
    batch has the same shape. Under ``jax.jit`` both sizes must be static.

    >>> batches = epoch_batches(jax.random.key(0), 10, 3)
    >>> print(batches.shape, batches.dtype)
    (3, 3) int32
    """
    num_examples = _static_positive_int("epoch_batches", "num_examples", num_examples)
    batch_size = _static_positive_int("epoch_batches", "batch_size", batch_size)
    if batch_size > num_examples:
        raise ValueError(
            f"epoch_batches: batch_size={batch_size} exceeds num_examples={num_examples}, "
            "which leaves no complete batch."
        )
    num_batches = num_examples // batch_size
    order = jax.random.permutation(key, num_examples)
    return order[: num_batches * batch_size].reshape(num_batches, batch_size).astype(jnp.int32)


def _static_positive_int(where: str, name: str, value) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{where}: {name} must be a static Python int (mark it static under jax.jit), "
            f"got {value!r}."
        ) from None
    if value <= 0:
        raise ValueError(f"{where}: {name} must be positive, got {value}.")
    return value


# --------------------------------------------------------------------------------------------
# Locating and checking folders.


def _resolve_data_dir(data_dir) -> Path | None:
    if data_dir is None:
        data_dir = os.environ.get(MNIST_DIR_ENV) or None
    return None if data_dir is None else Path(data_dir).expanduser()


def _resolve_tfds_dir(tfds_dir) -> Path:
    # tfds reads TFDS_DATA_DIR once at import; reading it here honours later changes too.
    if tfds_dir is None:
        tfds_dir = os.environ.get("TFDS_DATA_DIR") or Path.home() / "tensorflow_datasets"
    return Path(tfds_dir).expanduser()


def _mnist_builder(tfds_root: Path):
    import tensorflow_datasets as tfds  # heavy: imported on use only

    # tfrecord is what `as_dataset` reads; array_record would need `data_source`.
    return tfds.builder("mnist", data_dir=os.fspath(tfds_root), file_format="tfrecord")


def _expected_filename(url: str, url_info) -> str:
    return url_info.filename or Path(urllib.parse.urlparse(url).path).name


def _check_data_dir(data_dir: Path, url_infos) -> None:
    """Checks that ``data_dir`` holds the original files, so tfds never falls back to the web."""
    names = sorted(_expected_filename(url, info) for url, info in url_infos.items())
    expected = (
        f"it should hold the four original MNIST IDX files ({', '.join(names)}), e.g. as "
        f"downloaded from {sorted(url_infos)[0].rsplit('/', 1)[0]}/"
    )
    if not data_dir.is_dir():
        raise FileNotFoundError(f"MNIST data folder {data_dir} does not exist; {expected}.")
    for url, info in sorted(url_infos.items()):
        path = data_dir / _expected_filename(url, info)
        if not path.is_file():
            raise FileNotFoundError(f"MNIST data folder {data_dir} lacks {path.name}; {expected}.")
        digest = _sha256(path)
        if digest != info.checksum:
            raise ValueError(
                f"{path} is not the original MNIST file: its sha256 is {digest}, but tfds expects "
                f"{info.checksum} (the file from {url}). Replace it with an intact copy."
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Preparing and reading through tfds.


def _prepare(builder, data_dir: Path | None, tfds_root: Path) -> None:
    if data_dir is None:
        _require_download_host(builder.url_infos, tfds_root)
    _import_tensorflow_quietly()
    import tensorflow_datasets as tfds

    # tfds takes files from `manual_dir` by their registered names and hashes them against its
    # registered checksums (files placed in its download cache would be trusted unchecked).
    manual_dir = None if data_dir is None else os.fspath(data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )


def _require_download_host(url_infos, tfds_root: Path) -> None:
    """Fails within seconds when offline, where tfds would retry for minutes."""
    host, port = _download_address(url_infos)
    if not _can_connect(host, port, _PROBE_TIMEOUT_S):
        raise ConnectionError(
            f"MNIST is not prepared in the tfds data directory {tfds_root} and {host}:{port} "
            "cannot be reached to download it. Pass a folder holding the four original MNIST "
            "IDX .gz files (data_dir=..., --data-dir on the command line, or the environment "
            f"variable {MNIST_DIR_ENV}), or point tfds_dir / TFDS_DATA_DIR to a directory "
            "where MNIST is already prepared."
        )


def _read_prepared(builder) -> Mnist:
    _import_tensorflow_quietly()
    import tensorflow_datasets as tfds

    splits = builder.as_dataset(split=["train", "test"], batch_size=-1, as_supervised=True)
    (train_images, train_labels), (test_images, test_labels) = tfds.as_numpy(splits)
    arrays = Mnist(
        train_images=np.ascontiguousarray(train_images[..., 0]),
        train_labels=train_labels.astype(np.int32),
        test_images=np.ascontiguousarray(test_images[..., 0]),
        test_labels=test_labels.astype(np.int32),
    )
    if not _has_mnist_layout(arrays):
        raise ValueError(
            f"tfds returned unexpected MNIST arrays from {builder.data_dir}: "
            f"{[(a.shape, a.dtype) for a in arrays]}"
        )
    return arrays


def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its logs muted and without any GPU, which stays JAX's."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    with contextlib.suppress(RuntimeError):  # raised once TF has initialised its devices
        tf.config.set_visible_devices([], "GPU")


def _download_address(url_infos) -> tuple[str, int]:
    """Host and port a download would connect to first: the proxy when one is configured."""
    url = urllib.parse.urlparse(sorted(url_infos)[0])
    default_port = 443 if url.scheme == "https" else 80
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(url.hostname):
        proxy_url = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
        return proxy_url.hostname, proxy_url.port or 80
    return url.hostname, url.port or default_port


def _can_connect(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection opens within about ``timeout`` seconds.

    Name resolution ignores socket timeouts, so the attempt runs in a daemon thread that is
    abandoned when it overruns.
    """
    outcome = []
    finished = threading.Event()

    def attempt():
        try:
            socket.create_connection((host, port), timeout).close()
            outcome.append(True)
        except OSError:
            pass
        finally:
            finished.set()

    threading.Thread(target=attempt, daemon=True).start()
    finished.wait(timeout)
    return bool(outcome)


# --------------------------------------------------------------------------------------------
# The .npz cache next to the prepared tfds data.


def _has_mnist_layout(arrays: Mnist) -> bool:
    shapes = {
        "train_images": (SPLIT_SIZES["train"], 28, 28),
        "train_labels": (SPLIT_SIZES["train"],),
        "test_images": (SPLIT_SIZES["test"], 28, 28),
        "test_labels": (SPLIT_SIZES["test"],),
    }
    return all(
        array.shape == shapes[name] and array.dtype == (np.uint8 if "images" in name else np.int32)
        for name, array in arrays._asdict().items()
    )


def _read_cache(path: Path) -> Mnist | None:
    try:
        with np.load(path) as stored:
            arrays = Mnist(**{name: stored[name] for name in Mnist._fields})
    except FileNotFoundError:
        return None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # unreadable: rebuilt from the prepared tfds data
    return arrays if _has_mnist_layout(arrays) else None


def _write_cache(path: Path, arrays: Mnist) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            np.savez(file, **arrays._asdict())
        os.replace(temporary, path)  # atomic: readers never see a partial file
    except OSError:
        # A read-only tfds directory still works, only without the fast path.
        with contextlib.suppress(OSError):
            temporary.unlink()


@contextlib.contextmanager
def _exclusive_lock(path: Path):
    """Serialises preparation across processes sharing one tfds directory (POSIX only)."""
    if fcntl is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
    except OSError:  # e.g. a read-only directory that already holds everything
        handle = None
    if handle is None:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

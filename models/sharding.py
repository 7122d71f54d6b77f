"""Data parallelism over a ``jax.sharding.Mesh``, on one host or many.

The trainers shard the batch along the mesh axis ``"data"`` and keep parameters and
optimizer state replicated; GSPMD inserts the collectives (gradient all-reduce, and the
batch gather when the dataset itself is sharded). This module holds device placement only:
building the mesh and placing arrays on it (replicated, or split along ``"data"`` from each
process's rows). Loading a process's rows of MNIST is :func:`models.mnist.load_mnist_shard`.

Multi-host jobs start with JAX's own runtime, ``jax.distributed.initialize()``, before
anything else touches JAX; after it, ``jax.devices()`` lists every process's devices and
:func:`data_mesh` spans all of them.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

#: The mesh axis the batch (and a sharded dataset) is split along.
DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: ``jax.devices()``).

    ``jax.devices()`` is global: after ``jax.distributed.initialize()`` it holds every
    process's devices, ordered by process, so the default mesh spans the whole job.

    >>> mesh = data_mesh()
    >>> print(mesh.axis_names, mesh.shape["data"] == jax.device_count())
    ('data',) True
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("data_mesh: devices must hold at least one device.")
    return Mesh(np.asarray(devices, dtype=object), (DATA_AXIS,))


def data_axis_size(mesh: Mesh) -> int:
    """How many ways the batch is split: the size of the mesh axis ``"data"``."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}.")
    if DATA_AXIS not in mesh.shape:
        raise ValueError(
            f"mesh must have an axis named {DATA_AXIS!r} to shard the batch along; "
            f"its axes are {mesh.axis_names}."
        )
    return mesh.shape[DATA_AXIS]


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Raises ``ValueError`` unless ``batch_size`` splits evenly over the data axis."""
    devices = data_axis_size(mesh)
    batch_size = operator.index(batch_size)
    if batch_size % devices:
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {devices} devices on the mesh axis "
            f"{DATA_AXIS!r}; every device takes an equal slice of the global batch. Choose a "
            f"multiple of {devices} (e.g. {max(devices, batch_size // devices * devices)}) or a "
            "mesh over fewer devices."
        )


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding of an array held whole by every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """The sharding of an array split along its leading (batch) axis over ``"data"``."""
    data_axis_size(mesh)
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicate(tree, mesh: Mesh):
    """Places every array of ``tree`` whole on every device of ``mesh``.

    In a multi-process job every process must pass the same values (e.g. parameters
    initialised from the same seed); JAX checks that they do.
    """
    target = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, target)

    def host_value(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return _Key(np.asarray(jax.random.key_data(x)), jax.random.key_impl(x))
        return np.asarray(x)

    def put(x):
        if isinstance(x, _Key):  # typed PRNG keys travel as their raw key data
            return jax.random.wrap_key_data(put(x.data), impl=x.impl)
        return jax.make_array_from_process_local_data(target, x, x.shape)

    values = jax.tree.map(host_value, tree)
    # One collective for the whole tree, rather than one per array in jax.device_put.
    multihost_utils.assert_equal(
        [v.data if isinstance(v, _Key) else v for v in jax.tree.leaves(values)],
        fail_message="replicate: the processes passed different values",
    )
    return jax.tree.map(put, values)


@dataclasses.dataclass(frozen=True)
class _Key:  # a pytree leaf: not registered with jax.tree
    data: np.ndarray
    impl: object


def place_dataset(images, labels, mesh: Mesh) -> tuple[jax.Array, jax.Array]:
    """Puts a training set on ``mesh``: kept as it is if it already lives there, else replicated.

    A dataset assembled by :func:`load_mnist_shard` (split over processes) or placed by the
    caller with any sharding on ``mesh`` is left alone; host arrays and arrays on other
    devices are copied whole to every device of the mesh, which suits a single host
    (MNIST is 47 MB).
    """
    mesh_devices = set(mesh.devices.flat)

    def place(array):
        if isinstance(array, jax.Array) and set(array.sharding.device_set) == mesh_devices:
            return array
        if isinstance(array, jax.Array) and not array.is_fully_addressable:
            raise ValueError(
                "the training data span devices of other processes that are not on the "
                "trainer's mesh; build both from the same mesh (see models.mnist.load_mnist_shard)."
            )
        return replicate(array, mesh)

    return place(images), place(labels)


def to_local(tree):
    """Copies replicated arrays of a multi-process job into this process's default device.

    Arrays of a global mesh cannot be mixed with process-local ones in an eager
    computation (e.g. evaluating the trained model on a local test set); a replicated
    array's local copy can. Arrays that are already fully addressable are returned as is.
    """

    def local(array):
        if not isinstance(array, jax.Array) or array.is_fully_addressable:
            return array
        if not array.is_fully_replicated:
            raise ValueError(
                "to_local: only replicated arrays have a whole copy on this process; got one "
                f"with sharding {array.sharding}."
            )
        return jax.device_put(array.addressable_data(0), jax.local_devices()[0])

    return jax.tree.map(local, tree)


# --------------------------------------------------------------------------------------------
# Multi-host: each process loads only its rows.


def process_rows(num_examples: int, mesh: Mesh) -> slice:
    """The rows of a ``P("data")``-sharded array of ``num_examples`` rows held by this process.

    Computed from the mesh (not assumed from ``jax.process_index()``), so any device order
    works as long as each process's devices are contiguous on the data axis, as they are in
    :func:`data_mesh`.
    """
    devices = data_axis_size(mesh)
    if num_examples % devices:
        raise ValueError(
            f"num_examples={num_examples} is not divisible by the {devices} devices on the "
            f"mesh axis {DATA_AXIS!r}."
        )
    indices = batch_sharded(mesh).addressable_devices_indices_map((num_examples,))
    starts = sorted(index[0].start or 0 for index in indices.values())
    per_device = num_examples // devices
    if starts != list(range(starts[0], starts[0] + per_device * len(starts), per_device)):
        raise ValueError(
            "this process's devices are not contiguous on the mesh axis 'data', so its rows "
            "are not one slice; order the mesh devices by process (as data_mesh does)."
        )
    return slice(starts[0], starts[0] + per_device * len(starts))


def assemble(local_rows: np.ndarray, num_examples: int, mesh: Mesh) -> jax.Array:
    """A global ``P("data")``-sharded array from this process's rows (see :func:`process_rows`)."""
    rows = process_rows(num_examples, mesh)
    if local_rows.shape[0] != rows.stop - rows.start:
        raise ValueError(
            f"this process should hold rows {rows.start}:{rows.stop} "
            f"({rows.stop - rows.start} rows), got {local_rows.shape[0]}."
        )
    global_shape = (num_examples, *local_rows.shape[1:])
    return jax.make_array_from_process_local_data(batch_sharded(mesh), local_rows, global_shape)

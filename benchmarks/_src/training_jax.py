"""The JAX side of the training benchmark: two contenders and the parts of a scan epoch.

Every object here trains (or binarises for) the same number of steps of the same batch
size on the same images, and has ``run_epoch() -> dict`` that returns only once the
epoch's work is done (it reads one number back). Models, losses and optimisers come from
``models`` (:func:`make_parts`); the one train step is ``models.training.make_train_step``.

Contenders:

* :class:`ScanContender`: ``models.training.Trainer.run_epoch``, an epoch being one
  jit-compiled ``lax.scan`` with on-device shuffling and binarisation.
* :class:`StepLoopContender`: the usual per-step loop: host-side (numpy) shuffling,
  batching and dynamic binarisation, ``jax.jit(make_train_step(...), donate_argnums=0)``
  called once per minibatch from Python; the per-step losses stay on the device until
  the end of the epoch, so the loop pays only for dispatch, transfer and host batching.

Breakdown of a scan epoch (:data:`BREAKDOWN`):

* :class:`StepOnlyScan`: a plain ``lax.scan`` of the same train step over pre-binarised
  batches (one fixed binarisation of the images, cut into batches once): the step's
  compute alone;
* :class:`PlainScan`: a plain ``lax.scan`` of gather + ``mnist.binarize(mode="dynamic")``
  + the train step over the epoch's shuffled batches, the state donated, only the mean
  loss read: the Trainer's epoch without its bookkeeping (finite checks, metric means,
  placement, no donation), so that ``scan - plain-scan`` is the Trainer's overhead;
* :class:`BinarizeScan`: a ``lax.scan`` over the epoch's shuffled batches that gathers
  each batch and binarises it with ``jax.random.bernoulli`` (the old way, one 32-bit word
  per pixel), with ``mnist.bernoulli_pixels`` (two 16-bit thresholds per 32-bit word;
  with threefry keys as the Trainer draws them, and with ``"rbg"`` keys), or only
  converts it to float (the gather alone); each batch is summed so that nothing is
  optimised away.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import mnist, sharding, vae
from models.training import (
    Batch,
    OptimizerConfig,
    TrainConfig,
    Trainer,
    make_optimizer,
    make_train_step,
    run_key,
)

#: Breakdown components: name -> what one of its epochs does.
BREAKDOWN = {
    "step-only": "train step alone: plain lax.scan over pre-binarised batches",
    "plain-scan": "plain lax.scan of gather + bernoulli_pixels + train step (state donated)",
    "binarize-bernoulli": "binarisation, old: gather + jax.random.bernoulli, scanned",
    "binarize-pixels": "binarisation, new: gather + mnist.bernoulli_pixels, scanned",
    "binarize-pixels-rbg": "the same with jax.random.key(seed, impl='rbg') keys, scanned",
    "gather": "gather of the shuffled batches alone (uint8 -> float32), scanned",
}


@dataclasses.dataclass(frozen=True)
class Setup:
    """What every contender trains: the model, the trainer's hyper-parameters."""

    model: vae.VAEConfig
    train: TrainConfig

    @property
    def batch_size(self) -> int:
        return self.train.batch_size


def make_parts(setup: Setup, steps_per_epoch: int):
    """A freshly initialised model (from ``setup.train.seed``), its Adam and its ELBO loss."""
    model = vae.make_vae(setup.model, rngs=nnx.Rngs(params=jax.random.key(setup.train.seed)))
    tx = make_optimizer(OptimizerConfig(), setup.train, steps_per_epoch)
    loss_fn = vae.make_loss_fn(vae.Objective(), steps_per_epoch=steps_per_epoch)
    return model, tx, loss_fn


def _split_state(setup: Setup, steps_per_epoch: int):
    model, tx, loss_fn = make_parts(setup, steps_per_epoch)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    return make_train_step(graphdef, loss_fn), state


class _Epochs:
    """Counts epochs and derives each one's key from the seed."""

    def __init__(self, setup: Setup, num_examples: int, *, impl: str | None = None):
        self.setup = setup
        self.steps = num_examples // setup.batch_size
        self.num_examples = num_examples
        self.base_key = run_key(setup.train.seed, "epochs", impl=impl)
        self.epochs_done = 0

    def next_key(self) -> jax.Array:
        key = jax.random.fold_in(self.base_key, self.epochs_done)
        self.epochs_done += 1
        return key


# ----------------------------------------------------------------------------- contenders


class ScanContender:
    """``Trainer.run_epoch``: one compiled ``lax.scan`` per epoch, one host read."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, setup: Setup):
        steps = images.shape[0] // setup.batch_size
        model, tx, loss_fn = make_parts(setup, steps)
        self.trainer = Trainer(model, tx, loss_fn, setup.train)
        # On the device once, as Trainer.fit does, so epochs time only training.
        self.images, self.labels = sharding.place_dataset(images, labels, self.trainer.mesh)

    def run_epoch(self) -> dict[str, float]:
        record = self.trainer.run_epoch(self.images, self.labels)
        return {"loss": record["loss"]}


class StepLoopContender:
    """A Python loop of the jit-compiled, donated train step over host-made minibatches.

    The per-step keys are drawn once per epoch and handed to the step as raw key data
    (numpy ``uint32[2]``, which ``jax.random`` accepts), so a step costs one dispatch.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, setup: Setup):
        self.epochs = _Epochs(setup, images.shape[0])
        train_step, self.state = _split_state(setup, self.epochs.steps)
        self._step = jax.jit(train_step, donate_argnums=0)
        self.images = np.asarray(images)
        self.labels = np.asarray(labels, np.int32)
        self.batch_size = setup.batch_size
        self.rng = np.random.default_rng(setup.train.seed)

    def _batch(self, idx: np.ndarray) -> Batch:
        intensity = self.images[idx].astype(np.float32) * np.float32(1.0 / 255.0)
        x = (self.rng.random(intensity.shape, dtype=np.float32) < intensity).astype(np.float32)
        return Batch(x, self.labels[idx])

    def run_epoch(self) -> dict[str, float]:
        steps = self.epochs.steps
        keys = np.asarray(jax.random.key_data(jax.random.split(self.epochs.next_key(), steps)))
        order = self.rng.permutation(self.images.shape[0])
        losses, finite, batching = [], [], 0.0
        for i in range(steps):
            tic = time.perf_counter()
            batch = self._batch(order[i * self.batch_size : (i + 1) * self.batch_size])
            batching += time.perf_counter() - tic
            self.state, metrics, ok = self._step(self.state, batch, keys[i])
            losses.append(metrics["loss"])
            finite.append(ok)
        losses, finite = jax.device_get((losses, finite))
        if not all(finite):
            raise FloatingPointError(f"jax-loop: non-finite step {int(np.argmin(finite))}")
        return {"loss": float(np.mean(losses)), "data_loading_s": batching}


# ------------------------------------------------------------------------------ breakdown


class StepOnlyScan:
    """The train step alone: a plain ``lax.scan`` over pre-binarised batches."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, setup: Setup):
        self.epochs = _Epochs(setup, images.shape[0])
        steps, size = self.epochs.steps, setup.batch_size
        train_step, self.state = _split_state(setup, steps)
        x = mnist.fixed_binarization(images[: steps * size], seed=setup.train.seed)
        y = jnp.asarray(labels[: steps * size], jnp.int32)
        self.batches = Batch(x.reshape(steps, size, *x.shape[1:]), y.reshape(steps, size))

        def epoch(state, batches, key):
            def body(state, inputs):
                batch, step_key = inputs
                state, metrics, _ = train_step(state, batch, step_key)
                return state, metrics["loss"]

            keys = jax.random.split(key, steps)
            state, losses = jax.lax.scan(body, state, (batches, keys))
            return state, jnp.mean(losses)

        self._epoch = jax.jit(epoch, donate_argnums=0)

    def run_epoch(self) -> dict[str, float]:
        self.state, loss = self._epoch(self.state, self.batches, self.epochs.next_key())
        return {"loss": float(loss)}


class PlainScan:
    """Gather + dynamic binarisation + the train step in a plain, donated ``lax.scan``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, setup: Setup):
        self.epochs = _Epochs(setup, images.shape[0])
        steps, size, n = self.epochs.steps, setup.batch_size, images.shape[0]
        train_step, self.state = _split_state(setup, steps)
        self.images = jnp.asarray(images)
        self.labels = jnp.asarray(labels, jnp.int32)

        def epoch(state, images, labels, key):
            def body(state, inputs):
                idx, step_key = inputs
                data_key, loss_key = jax.random.split(step_key)
                x = mnist.binarize(images[idx], mode="dynamic", key=data_key)
                state, metrics, _ = train_step(state, Batch(x, labels[idx]), loss_key)
                return state, metrics["loss"]

            perm_key, step_key = jax.random.split(key)
            batches = mnist.epoch_batches(perm_key, n, size)
            keys = jax.random.split(step_key, steps)
            state, losses = jax.lax.scan(body, state, (batches, keys))
            return state, jnp.mean(losses)

        self._epoch = jax.jit(epoch, donate_argnums=0)

    def run_epoch(self) -> dict[str, float]:
        self.state, loss = self._epoch(self.state, self.images, self.labels, self.epochs.next_key())
        return {"loss": float(loss)}


def _bernoulli(key, pixels):
    # The binarisation models.mnist used before bernoulli_pixels: a 32-bit word per pixel.
    return jax.random.bernoulli(key, pixels.astype(jnp.float32) * (1.0 / 255.0)).astype(jnp.float32)


def _gather_only(key, pixels):
    del key
    return pixels.astype(jnp.float32) * (1.0 / 255.0)


BINARIZERS = {
    "binarize-bernoulli": _bernoulli,
    "binarize-pixels": mnist.bernoulli_pixels,
    "binarize-pixels-rbg": mnist.bernoulli_pixels,
    "gather": _gather_only,
}
# Key implementation per binariser (default: jax's default, threefry). XLA's RngBitGenerator
# behind "rbg" keys is much cheaper than threefry on some backends, but its bits depend on
# how a batch is sharded (partitionable threefry's do not).
KEY_IMPLS = {"binarize-pixels-rbg": "rbg"}


class BinarizeScan:
    """A ``lax.scan`` over the epoch's shuffled batches: gather, binarise, sum."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, setup: Setup, *, kind: str):
        del labels
        self.epochs = _Epochs(setup, images.shape[0], impl=KEY_IMPLS.get(kind))
        steps, size, n = self.epochs.steps, setup.batch_size, images.shape[0]
        binarize = BINARIZERS[kind]
        self.images = jnp.asarray(images)

        def epoch(images, key):
            def body(total, inputs):
                idx, step_key = inputs
                data_key, _ = jax.random.split(step_key)
                return total + jnp.sum(binarize(data_key, images[idx])), None

            perm_key, step_key = jax.random.split(key)
            batches = mnist.epoch_batches(perm_key, n, size)
            keys = jax.random.split(step_key, steps)
            total, _ = jax.lax.scan(body, jnp.float32(0.0), (batches, keys))
            return total / (steps * size * mnist.NUM_PIXELS)

        self._epoch = jax.jit(epoch)

    def run_epoch(self) -> dict[str, float]:
        # The mean pixel: about the mean intensity for every kind (a sanity check).
        return {"mean_pixel": float(self._epoch(self.images, self.epochs.next_key()))}


def make_component(name: str, images: np.ndarray, labels: np.ndarray, setup: Setup):
    """The contender or breakdown component called ``name``."""
    if name == "scan":
        return ScanContender(images, labels, setup)
    if name == "jax-loop":
        return StepLoopContender(images, labels, setup)
    if name == "step-only":
        return StepOnlyScan(images, labels, setup)
    if name == "plain-scan":
        return PlainScan(images, labels, setup)
    if name in BINARIZERS:
        return BinarizeScan(images, labels, setup, kind=name)
    raise ValueError(f"unknown training-benchmark component {name!r}")

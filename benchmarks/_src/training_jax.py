"""The two JAX contenders of the training benchmark, on the same model and loss.

* :class:`ScanContender`: ``models.training.Trainer`` as every genmath model trains, an
  epoch being one jit-compiled ``lax.scan`` with on-device shuffling and binarisation.
* :class:`StepLoopContender`: the usual per-step loop, for contrast: host-side (numpy)
  shuffling, batching and dynamic binarisation, one jit-compiled step per minibatch
  called from Python. The step is the Trainer's minus its non-finite guard, takes the
  parameters and optimiser state as one donated pytree, and the losses stay on the device
  until the end of the epoch, so the loop pays only for dispatch and host batching.
"""

from __future__ import annotations

import time

import jax
import numpy as np
import optax
from flax import nnx

from models import sharding, vae
from models.training import TrainConfig, Trainer


def _model(config: vae.VAEConfig, seed: int) -> vae.VAE:
    return vae.VAE(config, rngs=nnx.Rngs(params=jax.random.key(seed)))


class ScanContender:
    """``Trainer.run_epoch``: one compiled ``lax.scan`` per epoch, one host read."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, config: vae.VAEConfig,
                 batch_size: int, learning_rate: float, seed: int):
        train = TrainConfig(batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                            binarization="dynamic")
        self.trainer = Trainer(_model(config, seed), optax.adam(learning_rate), vae.loss_fn,
                               train)
        # On the device once, as Trainer.fit does, so epochs time only training.
        self.images, self.labels = sharding.place_dataset(images, labels, self.trainer.mesh)

    def run_epoch(self) -> dict[str, float]:
        record = self.trainer.run_epoch(self.images, self.labels)
        return {"loss": record["loss"]}


class StepLoopContender:
    """A Python loop of jit-compiled steps over host-made minibatches."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, config: vae.VAEConfig,
                 batch_size: int, learning_rate: float, seed: int):
        model = _model(config, seed)
        optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
        graphdef, self.state = nnx.split((model, optimizer))
        grad_fn = nnx.value_and_grad(vae.loss_fn, has_aux=True)
        base_key = jax.random.key(seed)

        def step(state, x, labels, step_index):
            model, optimizer = nnx.merge(graphdef, state)
            (loss, _), grads = grad_fn(model, x, labels, jax.random.fold_in(base_key, step_index))
            optimizer.update(model, grads)
            return nnx.state((model, optimizer)), loss

        self._step = jax.jit(step, donate_argnums=0)
        self.images = np.asarray(images)
        self.labels = np.asarray(labels, np.int32)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.steps_done = 0

    def _batch(self, idx: np.ndarray) -> np.ndarray:
        intensity = self.images[idx].astype(np.float32) * np.float32(1.0 / 255.0)
        return (self.rng.random(intensity.shape, dtype=np.float32) < intensity).astype(np.float32)

    def run_epoch(self) -> dict[str, float]:
        order = self.rng.permutation(self.images.shape[0])
        steps = self.images.shape[0] // self.batch_size
        losses, batching = [], 0.0
        for i in range(steps):
            tic = time.perf_counter()
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x, y = self._batch(idx), self.labels[idx]
            batching += time.perf_counter() - tic
            self.state, loss = self._step(self.state, x, y, self.steps_done)
            self.steps_done += 1
            losses.append(loss)
        return {"loss": float(np.mean(jax.device_get(losses))), "data_loading_s": batching}

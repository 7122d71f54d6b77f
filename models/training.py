"""An on-device training loop for Flax NNX models on MNIST, and the one train step.

:func:`make_train_step` is the single optimisation step every trainer uses (and the
training benchmark times): ``loss_fn``'s value and gradients, the optax update, a finite
check. :class:`Trainer` runs it inside one jit-compiled ``lax.scan`` per epoch, with
on-device shuffling and binarisation, so the host is involved once per epoch (to read the
epoch's mean metrics). One ``nnx.split`` when the trainer is built.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh
from tqdm.auto import tqdm

from models import mnist, sharding

logger = logging.getLogger(__name__)


class Batch(NamedTuple):
    """A minibatch: binarised float images ``(batch, 28, 28)`` and int labels ``(batch,)``."""

    images: jax.Array
    labels: jax.Array


# loss_fn(model, batch, key, step) -> (scalar loss to minimise, {name: scalar metric});
# ``step`` is the optimizer's step count (for schedules inside the loss, e.g. KL warm-up).
LossFn = Callable[
    [nnx.Module, Batch, jax.Array, jax.Array], tuple[jax.Array, Mapping[str, jax.Array]]
]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters shared by every MNIST trainer.

    Attributes:
      epochs: epochs to train (a resumed run trains up to this many in all).
      batch_size: the global batch.
      learning_rate: the optimiser's (peak) learning rate.
      seed: every key of the run derives from it.
      binarization: one of ``models.mnist.BINARIZATIONS``.
      keep_checkpoints: how many of the latest per-epoch checkpoints to keep.
    """

    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    binarization: str = "dynamic"
    keep_checkpoints: int = 2

    def __post_init__(self):
        for name in ("epochs", "batch_size", "keep_checkpoints"):
            check_positive_int(name, getattr(self, name))
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1e3):
            raise ConfigError(
                "learning_rate",
                f"must be a positive number below 1000, got {self.learning_rate!r}",
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError("seed", f"must be an integer, got {self.seed!r}")
        if self.binarization not in mnist.BINARIZATIONS:
            raise ConfigError(
                "binarization", f"must be one of {mnist.BINARIZATIONS}, got {self.binarization!r}"
            )


class ConfigError(ValueError):
    """A configuration value is invalid; ``field`` names it (the CLIs map it to a flag)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"`{field}` {message}.")
        self.field = field


_ABSENT = object()


def differing_fields(a, b, prefix: str = "") -> list[str]:
    """The dotted names of the leaves where two nested dicts (JSON values) differ; a key
    present on one side only is a difference, even where the other side's value is None."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b)):
            found += differing_fields(a.get(key, _ABSENT), b.get(key, _ABSENT), f"{prefix}{key}.")
        return found
    return [] if a == b else [prefix.rstrip(".")]


def _as_json(value) -> Any:
    """``value`` through JSON: tuples become lists, NumPy scalars Python numbers."""

    def plain(item):
        if isinstance(item, np.generic):
            return item.item()
        raise TypeError(f"cannot record {type(item).__name__} value {item!r} as JSON")

    return json.loads(json.dumps(value, default=plain))


def training_settings(
    config, *, num_train: int, ignore: tuple[str, ...] = (), epochs_shape_schedule: bool
) -> dict[str, Any]:
    """What of an example's ``config`` (a dataclass) shapes the trained model, as JSON.

    Every field but those in ``ignore`` (dotted names of evaluation and reporting options,
    which a resumed run may change) and ``train.keep_checkpoints``; ``train.epochs`` only
    when ``epochs_shape_schedule`` (a schedule that decays over the whole run, so that
    the run cannot be extended without changing its past: raising the epochs of a cosine
    run would send its learning rate back up). The training set is recorded as its size,
    ``num_train`` (the images the trainer gets), in place of a ``train_examples`` field:
    ``None`` and the full count are the same data. A :class:`Trainer` given these refuses
    to resume a checkpoint saved under other settings.
    """
    settings = _as_json(dataclasses.asdict(config))
    settings.pop("train_examples", None)
    settings["num_train"] = int(num_train)
    dropped = (*ignore, "train.keep_checkpoints")
    if not epochs_shape_schedule:
        dropped += ("train.epochs",)
    for name in dropped:
        *parents, leaf = name.split(".")
        node = settings
        for parent in parents:
            node = node[parent]
        if leaf not in node:
            raise KeyError(f"training_settings: the config has no field {name!r}")
        del node[leaf]
    return settings


def check_positive_int(name: str, value) -> None:
    """Raises :class:`ConfigError` unless ``value`` is an int >= 1 (bools are not ints)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(name, f"must be a positive integer, got {value!r}")


def check_choice(name: str, value, choices: tuple) -> None:
    """Raises :class:`ConfigError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(name, f"must be one of {choices}, got {value!r}")


# What a run's randomness is for. Each purpose has its own stream, so no two uses share
# draws: with JAX's partitionable threefry, split(key, n)[i] is fold_in(key, i), so keys
# derived by index from the seed alone would give the test-set estimate epoch 1's noise.
KEY_PURPOSES = ("epochs", "init", "evaluation", "pictures")


def run_key(seed: int, purpose: str, *, impl: str | None = None) -> jax.Array:
    """The root key of one of a run's random streams (a purpose of :data:`KEY_PURPOSES`).

    The trainer's epoch ``e`` draws from ``fold_in(run_key(seed, "epochs"), e)``; parameter
    initialisation, test-set evaluation and pictures each start from their own root.

    >>> init, epochs = (jax.random.key_data(run_key(0, p)) for p in ("init", "epochs"))
    >>> bool(jnp.any(init != epochs))
    True
    """
    if purpose not in KEY_PURPOSES:
        raise ValueError(f"run_key: `purpose` must be one of {KEY_PURPOSES}, got {purpose!r}.")
    return jax.random.fold_in(jax.random.key(seed, impl=impl), KEY_PURPOSES.index(purpose))


SCHEDULES = ("constant", "cosine", "burda")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam and its learning-rate schedule.

    Attributes:
      schedule: ``"constant"``; ``"cosine"`` (decay to 0 over the run); ``"burda"`` (Burda
        et al. 2015: ``lr * 10**(-i/7)`` for ``3**i`` epochs, i = 0..7).
      eps: Adam's epsilon (Burda et al. used 1e-4).
      b2: Adam's second-moment decay.
    """

    schedule: str = "constant"
    eps: float = 1e-8
    b2: float = 0.999

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ConfigError("schedule", f"must be one of {SCHEDULES}, got {self.schedule!r}")


def make_optimizer(
    config: OptimizerConfig, train: TrainConfig, steps_per_epoch: int
) -> optax.GradientTransformation:
    """Adam with ``config``'s schedule, counted in steps of ``steps_per_epoch``."""
    rate = train.learning_rate
    if config.schedule == "cosine":
        schedule = optax.cosine_decay_schedule(rate, max(1, train.epochs * steps_per_epoch))
    elif config.schedule == "burda":
        schedule = burda_learning_rate(steps_per_epoch, rate)
    else:
        schedule = rate
    return optax.adam(schedule, b2=config.b2, eps=config.eps)


def burda_learning_rate(steps_per_epoch: int, base: float = 1e-3) -> optax.Schedule:
    """Burda et al. (2015)'s schedule: ``base * 10**(-i/7)`` for ``3**i`` epochs, i = 0..7.

    After the 3280 epochs of the eight stages the last rate is kept.
    """
    boundaries, rates, epochs = [], [base], 0
    for i in range(8):
        epochs += 3**i
        boundaries.append(epochs * steps_per_epoch)
        rates.append(base * 10.0 ** (-min(i + 1, 7) / 7.0))
    schedules = [optax.constant_schedule(r) for r in rates[:-1]]
    return optax.join_schedules(schedules, boundaries[:-1])


class NonFiniteLossError(FloatingPointError):
    """Raised when a training step produced a non-finite loss or gradient."""


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def make_train_step(graphdef, loss_fn: LossFn):
    """The one optimisation step: ``train_step(state, batch, key) -> (state, metrics, finite)``.

    ``state`` is the ``nnx.State`` of ``(model, optimizer)`` (``nnx.Optimizer``) and
    ``graphdef`` its graph definition; ``batch`` a :class:`Batch`. ``loss_fn`` gets the
    optimizer's step count, so schedules inside the loss (KL warm-up) follow the run.
    ``metrics`` holds ``loss`` and ``loss_fn``'s metrics; ``finite`` is whether the loss and
    every gradient were finite (the update is applied either way; the caller decides).
    Pure, so it can be jit-compiled alone (as the training benchmark's per-step loop does)
    or scanned over (as :class:`Trainer` does).
    """
    grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)

    def train_step(state, batch: Batch, key: jax.Array):
        model, optimizer = nnx.merge(graphdef, state)
        (loss, metrics), grads = grad_fn(model, batch, key, optimizer.step[...])
        optimizer.update(model, grads)
        finite = jnp.isfinite(loss) & _all_finite(grads)
        return nnx.state((model, optimizer)), {"loss": loss, **metrics}, finite

    return train_step


def make_epoch_fn(
    graphdef, loss_fn: LossFn, *, batch_size: int, binarization: str, mesh: Mesh | None = None
):
    """Builds a pure ``epoch(state, images, labels, key) -> (state, metrics)`` function.

    One ``lax.scan`` of :func:`make_train_step` over the epoch's minibatches, each gathered
    from the on-device dataset and binarised on the device. The returned metrics hold the
    per-step losses/metrics (arrays of length ``steps``) and ``first_bad_step``, the index of
    the first step whose loss or gradients were not finite (-1 if none). The check is one
    reduction per step; the caller discards the epoch's state when it is not -1 (selecting
    between old and new parameters every step would cost a full extra pass over the
    parameters and optimizer state).

    With a ``mesh``, each minibatch is constrained to be split along its axis ``"data"``;
    GSPMD then partitions the step and inserts the gradient all-reduce. The batches are
    drawn from one global permutation, so they do not depend on the device count.
    """
    train_step = make_train_step(graphdef, loss_fn)
    if mesh is None:
        split_batch = lambda x: x
    else:
        batch_sharding = sharding.batch_sharded(mesh)
        split_batch = lambda x: jax.lax.with_sharding_constraint(x, batch_sharding)

    def epoch(state, images, labels, key):
        def step(carry, inputs):
            state, first_bad = carry
            index, idx, key = inputs
            data_key, loss_key = jax.random.split(key)
            idx = split_batch(idx)
            # Partitionable threefry draws the same bits whatever the batch's sharding.
            x = split_batch(mnist.binarize(images[idx], mode=binarization, key=data_key))
            batch = Batch(x, split_batch(labels[idx]))
            state, metrics, finite = train_step(state, batch, loss_key)
            first_bad = jnp.where((first_bad < 0) & ~finite, index, first_bad)
            return (state, first_bad), metrics

        perm_key, step_key = jax.random.split(key)
        batches = mnist.epoch_batches(perm_key, images.shape[0], batch_size)
        steps = batches.shape[0]
        inputs = (jnp.arange(steps), batches, jax.random.split(step_key, steps))
        (state, first_bad), metrics = jax.lax.scan(step, (state, jnp.array(-1)), inputs)
        return state, {**metrics, "first_bad_step": first_bad}

    return epoch


class Trainer:
    """Trains an NNX model with optax, one compiled ``lax.scan`` per epoch.

    Args:
      model: the ``nnx.Module`` to train (updated in place; see :attr:`model`).
      tx: the optax transformation.
      loss_fn: ``loss_fn(model, batch, key, step) -> (loss, metrics)``; ``batch`` is a
        :class:`Batch` of binarised float32 images ``(batch, 28, 28)`` and labels.
      config: hyper-parameters.
      workdir: where checkpoints and ``train_log.csv`` go; ``None`` for neither.
      mesh: the devices to train on, data-parallel: each minibatch is split along the
        mesh axis ``"data"``, parameters and optimizer state are replicated, and the global
        batch is ``config.batch_size`` whatever the device count. Default:
        ``models.sharding.data_mesh()``, all of ``jax.devices()`` (every process's, after
        ``jax.distributed.initialize()``).
      settings: what shapes the trained model (JSON, e.g. :func:`training_settings`), saved
        with every checkpoint; :meth:`restore_latest` refuses a checkpoint saved under
        other settings (a :class:`ConfigError` naming the fields), so that a run is never
        continued, or reported, as if it had been trained as configured now. Checkpoints
        saved without settings are restored unchecked.
    """

    def __init__(
        self,
        model: nnx.Module,
        tx: optax.GradientTransformation,
        loss_fn: LossFn,
        config: TrainConfig,
        *,
        workdir: str | os.PathLike | None = None,
        mesh: Mesh | None = None,
        settings: Mapping[str, Any] | None = None,
    ):
        self.config = config
        self.settings = None if settings is None else _as_json(settings)
        self.mesh = sharding.data_mesh() if mesh is None else mesh
        devices = sharding.data_axis_size(self.mesh)
        if config.batch_size % devices:  # a usage error naming the option, for the CLIs
            raise ConfigError(
                "batch_size",
                f"is {config.batch_size}, which the {devices} devices cannot split evenly (each "
                f"takes an equal slice of the global batch); choose a multiple of {devices}",
            )
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        self.graphdef, state = nnx.split((model, optimizer))
        self.state = sharding.replicate(state, self.mesh)
        epoch = make_epoch_fn(
            self.graphdef,
            loss_fn,
            batch_size=config.batch_size,
            binarization=config.binarization,
            mesh=self.mesh,
        )
        # Everything the epoch returns (state, metrics) stays replicated over the mesh.
        # No buffer donation: the state an epoch starts from must survive it, so that an
        # epoch with a non-finite step can be discarded.
        self._epoch = jax.jit(epoch, out_shardings=sharding.replicated(self.mesh))
        self.epochs_done = 0
        self.history: list[dict[str, Any]] = []
        self.step_metrics: dict[str, jax.Array] = {}
        self.workdir = None if workdir is None else os.path.abspath(workdir)
        self._checkpoints = None
        if self.workdir is not None:
            options = ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, create=True)
            self._checkpoints = ocp.CheckpointManager(
                os.path.join(self.workdir, "checkpoints"), options=options
            )

    @property
    def model(self) -> nnx.Module:
        """A model holding the current parameters (a fresh merge of the state).

        Its arrays are replicated over :attr:`mesh`; in a multi-process job they span every
        process; ``nnx.merge(trainer.graphdef, models.sharding.to_local(trainer.state))[0]``
        is a copy to evaluate on process-local data.
        """
        model, _ = nnx.merge(self.graphdef, self.state)
        return model

    def epoch_key(self, epoch: int) -> jax.Array:
        # Keys derive from (seed, epoch) alone, so a resumed run draws the same batches.
        return jax.random.fold_in(run_key(self.config.seed, "epochs"), epoch)

    def save(self) -> None:
        if self._checkpoints is None:
            return
        meta = {"epochs_done": self.epochs_done, "history": self.history}
        if self.settings is not None:
            meta["settings"] = self.settings
        self._checkpoints.save(
            self.epochs_done,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(self.state), meta=ocp.args.JsonSave(meta)
            ),
        )
        self._checkpoints.wait_until_finished()

    def restore_latest(self) -> bool:
        """Restores the latest checkpoint in ``workdir``; returns whether there was one.

        Raises :class:`ConfigError`: field ``workdir`` when the checkpoint was saved under
        other ``settings`` than this trainer's, ``epochs`` when it has trained more epochs
        than ``config.epochs`` (the run would be reported as shorter than it was).
        """
        if self._checkpoints is None or self._checkpoints.latest_step() is None:
            return False
        step = self._checkpoints.latest_step()
        meta = self._checkpoints.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
        )["meta"]
        if int(meta["epochs_done"]) > self.config.epochs:
            raise ConfigError(
                "epochs",
                f"is {self.config.epochs}, but the checkpoint in the workdir has trained "
                f"{int(meta['epochs_done'])}: ask for at least as many, or use another workdir",
            )
        saved = meta.get("settings")
        if self.settings is not None and saved is None:
            # Saved before settings were recorded: nothing to compare, and the next save
            # records this run's settings for it.
            logger.warning(
                "restoring %s/checkpoints without a settings check: its checkpoints record "
                "none; it is continued as configured now",
                self.workdir,
            )
        if self.settings is not None and saved is not None and saved != self.settings:
            fields = ", ".join(differing_fields(saved, self.settings))
            raise ConfigError(
                "workdir",
                f"holds the checkpoints of a run trained with other settings (differing: "
                f"{fields}); continue it with its own settings, or use another workdir",
            )
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, self.state)
        restored = self._checkpoints.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
        self.state = restored["state"]
        self.epochs_done = int(restored["meta"]["epochs_done"])
        self.history = list(restored["meta"]["history"])
        return True

    def run_epoch(self, images: jax.Array, labels: jax.Array) -> dict[str, float]:
        """Runs one epoch; returns its mean metrics. Raises ``NonFiniteLossError``.

        The per-step metrics (device arrays of length ``steps``) are kept in
        :attr:`step_metrics` until the next epoch.
        """
        epoch = self.epochs_done
        images, labels = sharding.place_dataset(images, labels, self.mesh)
        key = sharding.replicate(self.epoch_key(epoch), self.mesh)
        new_state, metrics = self._epoch(self.state, images, labels, key)
        first_bad = metrics.pop("first_bad_step")
        means = {k: jnp.mean(v) for k, v in metrics.items()}
        # The epoch's single host round trip.
        first_bad, means = jax.device_get((first_bad, means))
        steps = images.shape[0] // self.config.batch_size
        if first_bad >= 0:
            # self.state stays the state after the last good epoch (= the last checkpoint).
            if epoch == 0:
                kept = "No epoch had completed: the state is the initial one, nothing saved."
            else:
                kept = f"The state of the last good epoch ({epoch}) is kept" + (
                    f", as is its checkpoint in {self.workdir}/checkpoints."
                    if self.workdir
                    else "."
                )
            raise NonFiniteLossError(
                f"non-finite loss or gradient at step {epoch * steps + int(first_bad)} "
                f"(epoch {epoch + 1}, step {int(first_bad)} of {steps}); training stopped. {kept}"
            )
        self.state, self.step_metrics = new_state, metrics
        self.epochs_done += 1
        record = {"epoch": self.epochs_done, **{k: float(v) for k, v in means.items()}}
        self.history.append(record)
        return record

    def fit(
        self,
        images: jax.Array,
        labels: jax.Array,
        *,
        resume: bool = True,
        on_epoch_end: Callable[[Trainer, dict[str, float]], dict[str, float] | None] | None = None,
        progress: bool = True,
    ) -> list[dict[str, Any]]:
        """Trains up to ``config.epochs`` epochs, checkpointing after each.

        Args:
          images: uint8 ``(N, 28, 28)`` training images, ideally already on the device.
          labels: int ``(N,)`` labels (passed to ``loss_fn``).
          resume: continue from the latest checkpoint in ``workdir`` if there is one.
          on_epoch_end: optional ``callback(trainer, record)``; extra metrics it returns
            (e.g. a validation ELBO) are added to the epoch's record.
          progress: show a progress bar.

        Returns:
          The per-epoch history (also in ``workdir/train_log.csv``).
        """
        if resume:
            self.restore_latest()
        images, labels = sharding.place_dataset(images, labels, self.mesh)
        bar = tqdm(
            total=self.config.epochs, initial=self.epochs_done, disable=not progress, unit="epoch"
        )
        with bar:
            while self.epochs_done < self.config.epochs:
                record = self.run_epoch(images, labels)
                if on_epoch_end is not None:
                    record.update(on_epoch_end(self, record) or {})
                self.save()
                self._write_log()
                bar.set_postfix(loss=f"{record['loss']:.3f}")
                bar.update(1)
        return self.history

    def _write_log(self) -> None:
        # In a multi-process job every process holds the same history; one writes it.
        if self.workdir is None or not self.history or jax.process_index() != 0:
            return
        fields = list(dict.fromkeys(k for record in self.history for k in record))
        with open(os.path.join(self.workdir, "train_log.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.history)
        with open(os.path.join(self.workdir, "history.json"), "w") as f:
            json.dump(self.history, f, indent=2)

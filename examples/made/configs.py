"""Configurations of the MADE example: one dataclass, a small default and the paper's size.

A :class:`Config` holds everything a run depends on: the model
(:class:`models.made.MADEConfig`), the trainer (:class:`TrainConfig`), the optimiser
(:class:`OptimizerConfig`) and the evaluation. Presets are functions returning a
:class:`Config`; change a field with ``dataclasses.replace``. Every field is checked when
the :class:`Config` is built, and a bad value raises :class:`models.training.ConfigError`
naming it.
"""

from __future__ import annotations

import dataclasses

from models import made
from models.made import MADEConfig
from models.mnist import NUM_PIXELS
from models.training import (
    ConfigError,
    OptimizerConfig,
    TrainConfig,
    check_choice,
    check_positive_int,
)


def _small_model() -> MADEConfig:
    return MADEConfig(hidden=(500,), num_masks=8)


def _small_train() -> TrainConfig:
    return TrainConfig(epochs=10, batch_size=100, learning_rate=1e-3)


def _cosine() -> OptimizerConfig:
    return OptimizerConfig(schedule="cosine")


@dataclasses.dataclass(frozen=True)
class Config:
    """A MADE run.

    Attributes:
      model, train, optimizer: see their classes (binarisation: ``"dynamic"`` or
        ``"threshold"``, a binary model).
      eval_masks: masks in the test ensemble, the first ``eval_masks`` of the model's
        set; ``None``: all ``model.num_masks``.
      eval_seed: seed of the fixed test binarisation.
      eval_every: epochs between single-mask (mask 0) test NLLs during training, for the
        learning curve (0: none).
      eval_batch_size: test images per batch of the evaluation.
      train_examples, test_examples: use only the first N images (``None``: all).
      preset: the name of the preset this configuration started from (for the record).
    """

    model: MADEConfig = dataclasses.field(default_factory=_small_model)
    train: TrainConfig = dataclasses.field(default_factory=_small_train)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=_cosine)
    eval_masks: int | None = None
    eval_seed: int = 0
    eval_every: int = 1
    eval_batch_size: int = 500
    train_examples: int | None = None
    test_examples: int | None = None
    preset: str = "small"

    def __post_init__(self):
        check_choice("binarization", self.train.binarization, made.BINARIZATIONS)
        if self.model.num_dims != NUM_PIXELS:
            raise ConfigError(
                "num_dims", f"must be {NUM_PIXELS} for MNIST, got {self.model.num_dims}"
            )
        for name in ("eval_masks", "train_examples", "test_examples"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        if self.eval_masks is not None and self.eval_masks > self.model.num_masks:
            raise ConfigError(
                "eval_masks",
                f"must be at most num_masks={self.model.num_masks}, got {self.eval_masks}",
            )
        check_positive_int("eval_batch_size", self.eval_batch_size)
        value = self.eval_every
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError("eval_every", f"must be an integer >= 0, got {value!r}")
        if isinstance(self.eval_seed, bool) or not isinstance(self.eval_seed, int):
            raise ConfigError("eval_seed", f"must be an integer, got {self.eval_seed!r}")

    @property
    def ensemble_size(self) -> int:
        """The number of masks the test NLL averages over."""
        return self.model.num_masks if self.eval_masks is None else self.eval_masks


# Options that change what is measured or drawn, not the trained model: a resumed run may
# change them (``models.training.training_settings``).
EVALUATION_FIELDS = (
    "eval_masks",
    "eval_seed",
    "eval_every",
    "eval_batch_size",
    "test_examples",
    "preset",
)


def small() -> Config:
    """The default, minutes on a 2-core CPU: 784-500-784, relu, direct input-to-output
    connections, 8 masks (orderings and connectivities) trained order-agnostically and
    averaged at test time; Adam 1e-3 with a cosine decay, batch 100, 10 epochs, dynamic
    binarisation."""
    return Config()


def germain() -> Config:
    """The size of Germain et al. (2015)'s best MNIST MADE: one hidden layer of 8000 relu
    units, direct input-to-output connections, 32 masks trained order-agnostically and all
    32 averaged at test time (their 86.64 nats, on the fixed binarisation). Batch 100;
    Adam 1e-3 with a cosine decay over 85 epochs (the public reproduction the issue cites,
    84.87 nats on dynamic binarisation, trained 85) instead of their Adagrad with early
    stopping. An epoch is minutes on a CPU: resume a long run from its workdir.
    """
    return Config(
        model=MADEConfig(hidden=(8000,), num_masks=32),
        train=TrainConfig(epochs=85, batch_size=100, learning_rate=1e-3),
        optimizer=_cosine(),
        eval_every=0,
        eval_batch_size=250,
        preset="germain",
    )


def ordered() -> Config:
    """Germain et al.'s width with one fixed ordering: 784-8000-784, relu, direct
    connections, the raster ordering and a single connectivity (their 1-mask setting, which
    trains far faster per epoch than 32 order-agnostic masks: 104 nats against 145 after one
    epoch on MNIST). Adam 1e-3 with a cosine decay over 60 epochs, batch 100, dynamic
    binarisation; the single-mask test NLL every 5 epochs for the curve.
    """
    return Config(
        model=MADEConfig(hidden=(8000,), num_masks=1, order_agnostic=False),
        train=TrainConfig(epochs=60, batch_size=100, learning_rate=1e-3),
        optimizer=_cosine(),
        eval_every=5,
        eval_batch_size=250,
        preset="ordered",
    )


PRESETS = {"small": small, "germain": germain, "ordered": ordered}


def get_config(name: str = "small") -> Config:
    """The preset ``name`` (one of :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ConfigError("preset", f"must be one of {tuple(PRESETS)}, got {name!r}")
    return PRESETS[name]()

"""Configuration of the factorized categorical example: one frozen dataclass.

Change a field with ``dataclasses.replace(get_config(), ...)``; every field is checked when
the :class:`Config` is built, and a bad value raises :class:`models.training.ConfigError`
naming it.
"""

from __future__ import annotations

import dataclasses
import math

from models import factorized_categorical
from models.training import ConfigError, TrainConfig, check_choice, check_positive_int


def _train_defaults() -> TrainConfig:
    return TrainConfig(epochs=5, batch_size=128, learning_rate=0.1, binarization="8bit")


@dataclasses.dataclass(frozen=True)
class Config:
    """A factorized categorical run on 8-bit MNIST.

    Attributes:
      train: the trainer (epochs, batch, peak learning rate of Adam with a cosine decay to
        0, seed); the binarisation is ``"8bit"``, the pixel values themselves.
      pseudo_count: the Dirichlet prior's pseudo-count per level and pixel (1: add-one).
      train_examples, test_examples: use only the first N images (``None``: all).
      num_samples: samples in ``samples.png``.
    """

    train: TrainConfig = dataclasses.field(default_factory=_train_defaults)
    pseudo_count: float = factorized_categorical.PSEUDO_COUNT
    train_examples: int | None = None
    test_examples: int | None = None
    num_samples: int = 64

    def __post_init__(self):
        check_choice("binarization", self.train.binarization, factorized_categorical.BINARIZATIONS)
        value = self.pseudo_count
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (math.isfinite(value) and value > 0)
        ):
            raise ConfigError("pseudo_count", f"must be a positive number, got {value!r}")
        for name in ("train_examples", "test_examples"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        check_positive_int("num_samples", self.num_samples)


# Options that change what is measured or drawn, not the trained model: a resumed run may
# change them (``models.training.training_settings``).
EVALUATION_FIELDS = (
    "test_examples",
    "num_samples",
)


def get_config() -> Config:
    """The default run: 5 epochs of Adam (peak 0.1, b2 0.95, cosine decay), batch 128, the
    8-bit pixel values, Dirichlet prior with one pseudo-count per level (add-one)."""
    return Config()

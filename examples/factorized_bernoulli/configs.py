"""Configuration of the factorized Bernoulli example: one frozen dataclass.

Change a field with ``dataclasses.replace(get_config(), ...)``; every field is checked when
the :class:`Config` is built, and a bad value raises :class:`models.training.ConfigError`
naming it.
"""

from __future__ import annotations

import dataclasses
import math

from models import factorized
from models.training import ConfigError, TrainConfig, check_choice, check_positive_int


def _train_defaults() -> TrainConfig:
    return TrainConfig(epochs=5, batch_size=128, learning_rate=0.1)


@dataclasses.dataclass(frozen=True)
class Config:
    """A factorized Bernoulli run.

    Attributes:
      train: the trainer (epochs, batch, peak learning rate of Adam with a cosine decay to
        0, seed, binarisation: ``"dynamic"`` or ``"threshold"``).
      pseudo_count: the Beta prior's pseudo-count per pixel outcome (1: Laplace smoothing).
      eval_seed: seed of the fixed test binarisation.
      train_examples, test_examples: use only the first N images (``None``: all).
      num_samples: samples in ``samples.png``.
    """

    train: TrainConfig = dataclasses.field(default_factory=_train_defaults)
    pseudo_count: float = factorized.PSEUDO_COUNT
    eval_seed: int = 0
    train_examples: int | None = None
    test_examples: int | None = None
    num_samples: int = 64

    def __post_init__(self):
        check_choice("binarization", self.train.binarization, factorized.BINARIZATIONS)
        if not _positive_number(self.pseudo_count):
            raise ConfigError(
                "pseudo_count", f"must be a positive number, got {self.pseudo_count!r}"
            )
        if isinstance(self.eval_seed, bool) or not isinstance(self.eval_seed, int):
            raise ConfigError("eval_seed", f"must be an integer, got {self.eval_seed!r}")
        for name in ("train_examples", "test_examples"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        check_positive_int("num_samples", self.num_samples)


# Options that change what is measured or drawn, not the trained model: a resumed run may
# change them (``models.training.training_settings``).
EVALUATION_FIELDS = (
    "eval_seed",
    "test_examples",
    "num_samples",
)


def _positive_number(value) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )


def get_config() -> Config:
    """The default run: 5 epochs of Adam (peak 0.1, b2 0.95, cosine decay), batch 128,
    dynamic binarisation, Beta(2, 2) prior (pseudo-count 1)."""
    return Config()

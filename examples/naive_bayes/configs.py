"""Configuration of the naive Bayes example: one frozen dataclass.

Change a field with ``dataclasses.replace(get_config(), ...)``; every field is checked when
the :class:`Config` is built, and a bad value raises :class:`models.training.ConfigError`
naming it.
"""

from __future__ import annotations

import dataclasses
import math

from models import class_conditional, factorized
from models.training import ConfigError, TrainConfig, check_choice, check_positive_int


def _train_defaults() -> TrainConfig:
    return TrainConfig(epochs=5, batch_size=128, learning_rate=0.1)


@dataclasses.dataclass(frozen=True)
class Config:
    """A naive Bayes run, with its discriminative baseline.

    Attributes:
      train: the trainer (epochs, batch, peak learning rate of Adam with a cosine decay to
        0, seed, binarisation: ``"dynamic"`` or ``"threshold"``); the baseline shares its
        batch, seed and binarisation.
      pseudo_count: the Beta prior's pseudo-count per pixel outcome.
      class_pseudo_count: the Dirichlet prior's pseudo-count per class on ``p(y)``.
      logreg_epochs: epochs of the logistic-regression baseline; 0 skips it.
      logreg_learning_rate: the baseline's peak Adam learning rate.
      eval_seed: seed of the fixed test binarisation.
      train_examples, test_examples: use only the first N images (``None``: all).
    """

    train: TrainConfig = dataclasses.field(default_factory=_train_defaults)
    pseudo_count: float = factorized.PSEUDO_COUNT
    class_pseudo_count: float = class_conditional.CLASS_PSEUDO_COUNT
    logreg_epochs: int = 5
    logreg_learning_rate: float = 1e-2
    eval_seed: int = 0
    train_examples: int | None = None
    test_examples: int | None = None

    def __post_init__(self):
        check_choice("binarization", self.train.binarization, factorized.BINARIZATIONS)
        for name in ("pseudo_count", "class_pseudo_count", "logreg_learning_rate"):
            if not _positive_number(getattr(self, name)):
                raise ConfigError(name, f"must be a positive number, got {getattr(self, name)!r}")
        epochs = self.logreg_epochs
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ConfigError("logreg_epochs", f"must be an integer >= 0, got {epochs!r}")
        if isinstance(self.eval_seed, bool) or not isinstance(self.eval_seed, int):
            raise ConfigError("eval_seed", f"must be an integer, got {self.eval_seed!r}")
        for name in ("train_examples", "test_examples"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))


# Options that change what is measured or drawn, not the trained model: a resumed run may
# change them (``models.training.training_settings``). The logistic-regression baseline's
# options do not shape the class-conditional model; its own checkpoint (workdir
# ``logistic_regression/``) records them, so a resume that changes them is refused there.
EVALUATION_FIELDS = (
    "eval_seed",
    "test_examples",
    "logreg_epochs",
    "logreg_learning_rate",
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
    dynamic binarisation, Beta(2, 2) and Dirichlet(2) priors; 5 epochs of the baseline."""
    return Config()

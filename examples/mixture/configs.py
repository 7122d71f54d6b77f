"""Configuration of the mixture-of-Bernoullis example: one frozen dataclass.

Change a field with ``dataclasses.replace(get_config(), ...)``; every field is checked when
the :class:`Config` is built, and a bad value raises :class:`models.training.ConfigError`
naming it.
"""

from __future__ import annotations

import dataclasses
import math

from models import factorized, mixture
from models.training import ConfigError, TrainConfig, check_choice, check_positive_int

#: ``adam``: optax on the exact log-likelihood; ``em``: full-data expectation-maximisation.
ALGORITHMS = ("adam", "em")


def _train_defaults() -> TrainConfig:
    return TrainConfig(epochs=10, batch_size=128, learning_rate=0.03)


@dataclasses.dataclass(frozen=True)
class Config:
    """A mixture run.

    Attributes:
      train: the trainer (epochs, batch, peak learning rate of Adam with a cosine decay to
        0, seed, binarisation: ``"dynamic"`` or ``"threshold"``); with ``algorithm="em"``
        ``epochs`` is the number of EM iterations and batch and learning rate are unused.
      num_components: K.
      algorithm: one of :data:`ALGORITHMS`.
      pseudo_count: the Beta prior's pseudo-count per template pixel outcome.
      weight_pseudo_count: the Dirichlet prior's pseudo-count per mixture weight.
      init_smoothing: initial templates are ``(1 - s) * random image + s * mean image``,
        ``s`` in (0, 1].
      eval_seed: seed of the fixed test binarisation.
      train_examples, test_examples: use only the first N images (``None``: all).
    """

    train: TrainConfig = dataclasses.field(default_factory=_train_defaults)
    num_components: int = 100
    algorithm: str = "adam"
    pseudo_count: float = factorized.PSEUDO_COUNT
    weight_pseudo_count: float = mixture.WEIGHT_PSEUDO_COUNT
    init_smoothing: float = 0.5
    eval_seed: int = 0
    train_examples: int | None = None
    test_examples: int | None = None

    def __post_init__(self):
        check_choice("binarization", self.train.binarization, factorized.BINARIZATIONS)
        check_positive_int("num_components", self.num_components)
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        for name in ("pseudo_count", "weight_pseudo_count"):
            if not _positive_number(getattr(self, name)):
                raise ConfigError(name, f"must be a positive number, got {getattr(self, name)!r}")
        if not (_positive_number(self.init_smoothing) and self.init_smoothing <= 1):
            raise ConfigError("init_smoothing", f"must lie in (0, 1], got {self.init_smoothing!r}")
        if isinstance(self.eval_seed, bool) or not isinstance(self.eval_seed, int):
            raise ConfigError("eval_seed", f"must be an integer, got {self.eval_seed!r}")
        for name in ("train_examples", "test_examples"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))


# Options that change what is measured or drawn, not the trained model: a resumed run may
# change them (``models.training.training_settings``).
EVALUATION_FIELDS = (
    "eval_seed",
    "test_examples",
)


def _positive_number(value) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )


def get_config() -> Config:
    """The default run: K = 100 components, 10 epochs of Adam (peak 0.03, b2 0.95, cosine
    decay), batch 128, dynamic binarisation, Beta(2, 2) and Dirichlet(2) priors."""
    return Config()

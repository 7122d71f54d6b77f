"""Configurations of the VAE example: one dataclass, and the published presets.

A :class:`Config` holds everything a run depends on: the model (:class:`VAEConfig`), its
training objective (:class:`Objective`), the trainer (:class:`TrainConfig`), the optimiser
(:class:`OptimizerConfig`) and the evaluation. Presets are functions returning a
:class:`Config`; change one field with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses

from models import likelihoods
from models.training import ConfigError, OptimizerConfig, TrainConfig, check_positive_int
from models.vae import Objective, VAEConfig


@dataclasses.dataclass(frozen=True)
class Config:
    """A VAE run.

    Attributes:
      model, objective, train, optimizer: see their classes.
      eval_samples: K of the importance-sampled test NLL; ``None``: 5000 on an
        accelerator, 100 on a CPU (5000 takes minutes there; pass it for the papers' K).
      eval_seed: seed of the fixed test binarisation.
      eval_every: epochs between test-ELBO evaluations during training (0: none).
      nll_every: epochs between importance-sampled test NLLs (K = ``curve_samples``) during
        training, for the test-NLL curve (0: none).
      curve_samples: K of those NLLs.
      train_examples, test_examples: use only the first N images (``None``: all).
      probe_steps: Adam steps of the linear probe on the encoder means.
      preset: the name of the preset this configuration started from (for the record).
    """

    model: VAEConfig = dataclasses.field(default_factory=VAEConfig)
    objective: Objective = dataclasses.field(default_factory=Objective)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    eval_samples: int | None = None
    eval_seed: int = 0
    eval_every: int = 1
    nll_every: int = 0
    curve_samples: int = 100
    train_examples: int | None = None
    test_examples: int | None = None
    probe_steps: int = 500
    preset: str = "flax"

    def __post_init__(self):
        for name in ("eval_samples", "train_examples", "test_examples"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        check_positive_int("probe_steps", self.probe_steps)
        check_positive_int("curve_samples", self.curve_samples)
        for name in ("eval_every", "nll_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(name, f"must be an integer >= 0, got {value!r}")
        if isinstance(self.eval_seed, bool) or not isinstance(self.eval_seed, int):
            raise ConfigError("eval_seed", f"must be an integer, got {self.eval_seed!r}")
        if self.test_examples is not None and self.test_examples < 64:
            raise ConfigError("test_examples", "must be at least 64 (the reconstruction grid)")
        if self.objective.free_bits and self.model.top_latent_dim:
            raise ConfigError(
                "free_bits",
                "counts the KL to N(0, I) per latent dimension, which a model with a second "
                "stochastic layer (top_latent_dim) does not have",
            )
        accepted = likelihoods.LIKELIHOODS[self.model.likelihood].binarizations
        if self.train.binarization not in accepted:
            raise ConfigError(
                "binarization",
                f"{self.train.binarization!r} does not suit the {self.model.likelihood!r} "
                f"likelihood, which models {accepted} data",
            )


# Options that change what is measured or drawn, not the trained model: a resumed run may
# change them (``models.training.training_settings``).
EVALUATION_FIELDS = (
    "eval_samples",
    "eval_seed",
    "eval_every",
    "nll_every",
    "curve_samples",
    "test_examples",
    "probe_steps",
    "preset",
)


def flax() -> Config:
    """The Flax VAE example: 784-500-20, relu, Adam 1e-3, batch 128, dynamic binarisation."""
    return Config(
        model=VAEConfig(latent_dim=20, hidden=(500,), activation="relu"),
        train=TrainConfig(epochs=30, batch_size=128, learning_rate=1e-3),
        preset="flax",
    )


def burda() -> Config:
    """Burda, Grosse & Salakhutdinov (2015), one stochastic layer, as published.

    Two deterministic layers of 200 tanh units in encoder and decoder, 50-d latent,
    dynamically binarised MNIST, Adam (eps 1e-4), batch 20, lr 1e-3 * 10^(-i/7) for 3^i
    epochs (3280 epochs in all), decoder output bias from the data's pixel means.
    """
    return Config(
        model=VAEConfig(latent_dim=50, hidden=(200, 200), activation="tanh"),
        train=TrainConfig(epochs=3280, batch_size=20, learning_rate=1e-3),
        optimizer=OptimizerConfig(schedule="burda", eps=1e-4),
        eval_every=10,
        preset="burda",
    )


def burda_2layer() -> Config:
    """Burda et al.'s two-stochastic-layer model, with their schedule (see :func:`burda`).

    ``x -> 200 -> 200 -> z1 (100) -> 100 -> 100 -> z2 (50)`` for ``q``, mirrored for
    ``p``: ``z2 ~ N(0, I) -> 100 -> 100 -> z1 -> 200 -> 200 -> x``, tanh, every stochastic
    layer a diagonal Gaussian. Trained on the ELBO by default; their 82.90 nats is this
    model trained on the IWAE bound with K = 50 (``python -m benchmarks.quality
    burda-iwae-k50-2layer``).
    """
    base = burda()
    model = dataclasses.replace(
        base.model, latent_dim=100, top_latent_dim=50, top_hidden=(100, 100)
    )
    return dataclasses.replace(base, model=model, preset="burda-2layer")


def burda_fast() -> Config:
    """Burda et al.'s architecture with a schedule that suits a CPU: batch 1000, Adam 1e-3.

    Large batches run an epoch about twice as fast on a 2-core CPU as batch 20; a public
    reproduction reached Burda's likelihood with this batch and a constant rate in 300k
    steps (5000 epochs). The decoder output bias starts at the data's pixel logits.
    """
    return Config(
        model=VAEConfig(latent_dim=50, hidden=(200, 200), activation="tanh"),
        train=TrainConfig(epochs=5000, batch_size=1000, learning_rate=1e-3),
        eval_every=10,
        nll_every=100,
        preset="burda-fast",
    )


def mnist_8bit_logistic() -> Config:
    """8-bit MNIST (256 grey levels) with a discretised logistic mixture decoder.

    The likelihood is a probability of the 8-bit image, so the test bounds are in
    bits/dim comparable with any discrete model's (the factorized 256-level histogram's,
    PixelCNN's). A 784-256-256-32 relu encoder (the decoder mirrors it), 3 components per
    pixel, Adam 1e-3, batch 128: sized for a CPU, where the decoder's 784 x 9 outputs per
    image are most of a step's cost.
    """
    return Config(
        model=VAEConfig(
            latent_dim=32,
            hidden=(256, 256),
            activation="relu",
            likelihood="logistic-mixture",
            likelihood_options={"components": 3},
        ),
        train=TrainConfig(epochs=30, batch_size=128, learning_rate=1e-3, binarization="8bit"),
        preset="mnist-8bit-logistic",
    )


def mnist_8bit_dequantized_gaussian() -> Config:
    """8-bit MNIST with a Gaussian decoder on uniformly dequantised pixels.

    Trained on ``(x + u) / 256`` with fresh ``u ~ U[0, 1)`` per pixel and step; the test
    bounds subtract 784 log 256 from the density (the change of variables to the
    integers), so they lower-bound log P(x) of the 8-bit images and their bits/dim
    compare with the discrete models'. The network and training of ``mnist-8bit-logistic``.
    """
    base = mnist_8bit_logistic()
    model = dataclasses.replace(
        base.model, likelihood="dequantized-gaussian", likelihood_options={}
    )
    return dataclasses.replace(base, model=model, preset="mnist-8bit-dequantized-gaussian")


PRESETS = {
    "flax": flax,
    "burda": burda,
    "burda-2layer": burda_2layer,
    "burda-fast": burda_fast,
    "mnist-8bit-logistic": mnist_8bit_logistic,
    "mnist-8bit-dequantized-gaussian": mnist_8bit_dequantized_gaussian,
}


def get_config(name: str = "flax") -> Config:
    """The preset ``name`` (one of :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ConfigError("preset", f"must be one of {tuple(PRESETS)}, got {name!r}")
    return PRESETS[name]()

"""A variational autoencoder for MNIST in Flax NNX, its bounds and their evaluation.

The model is a latent-Gaussian model: prior ``p(z) = N(0, I)``, an encoder
``q(z|x) = N(loc, diag sigma^2)`` and a decoder ``p(x|z)`` that is a product of
Bernoulli distributions (binarised pixels) or of Gaussians (grey levels, with a fixed
variance or a learned per-pixel / global log-scale). Every log-density and the KL term
come from :mod:`genmath`; this module only wires networks to them.

Objectives (per example, in nats; higher is better):

* the ELBO ``E_q[log p(x|z)] - KL(q(z|x) || p(z))`` with the analytic KL and ``K``
  reparameterised samples for the reconstruction term;
* the importance-weighted bound ``log (1/K) sum_k p(x, z_k) / q(z_k|x)``
  (``genmath.latent.iwae_bound``), which equals the ELBO's Monte Carlo estimate at
  ``K = 1`` and tightens towards ``log p(x)`` as ``K`` grows.

A conditional VAE feeds the one-hot label to encoder and decoder, so the decoder can be
asked for a chosen digit.

Encoder and decoder are MLPs (``architecture="mlp"``, the default) or small convolutional
networks (``architecture="conv"``): stride-2 3x3 convolutions down to 14x14 or 7x7 and a
dense layer to ``q``'s parameters; a dense layer and stride-2 transposed convolutions back
up to 28x28. Either way the decoder's output is a flat ``(..., 784)`` vector.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from genmath import bernoulli, latent, normal
from models.training import TrainConfig

IMAGE_SHAPE = (28, 28)
NUM_PIXELS = 784

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
}
ARCHITECTURES = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")
OBJECTIVES = ("elbo", "iwae")
SCALES = ("pixel", "global")


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Architecture and objective of a :class:`VAE`.

    Attributes:
      latent_dim: size of ``z``.
      architecture: ``"mlp"`` (dense encoder and decoder) or ``"conv"`` (convolutional).
      hidden: ``"mlp"`` only: widths of the encoder's hidden layers (their number is the
        depth); the decoder mirrors them.
      conv_channels: ``"conv"`` only: channels of the encoder's stride-2 3x3 convolutions
        (each halves the 28x28 image, rounding up); the decoder's transposed convolutions
        mirror them. One or two entries (14x14 or 7x7 features): with more, doubling back
        up would miss 28x28 (7 -> 4 -> 8 -> 16 -> 32).
      activation: a key of :data:`ACTIVATIONS`.
      likelihood: ``"bernoulli"`` (binarised pixels) or ``"gaussian"`` (grey levels).
      fixed_variance: Gaussian decoder only: a fixed pixel variance (the loss is then a
        scaled squared error), or ``None`` for a learned log-scale.
      scale: Gaussian decoder with learned scale: one log-scale per ``"pixel"`` or one
        ``"global"`` log-scale.
      min_scale: lower bound of a learned Gaussian scale. Pixels that are constant in the
        training set would otherwise drive their scale (and the density) to infinity.
      conditional: feed the one-hot label to encoder and decoder.
      num_classes: number of labels of a conditional model.
      objective: ``"elbo"`` or ``"iwae"`` (the bound that training maximises).
      num_samples: samples of ``z`` per example in the training objective (``K``).
    """

    latent_dim: int = 20
    hidden: tuple[int, ...] = (500,)
    activation: str = "relu"
    likelihood: str = "bernoulli"
    fixed_variance: float | None = None
    scale: str = "pixel"
    min_scale: float = 1e-2
    conditional: bool = False
    num_classes: int = 10
    objective: str = "elbo"
    num_samples: int = 1
    # Last, so that positional use of the fields above is unchanged.
    architecture: str = "mlp"
    conv_channels: tuple[int, ...] = (32, 64)

    def __post_init__(self):
        # Normalise lists to tuples so configs stay hashable (e.g. from argparse).
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))
        _check_positive_int("latent_dim", self.latent_dim)
        _check_positive_int("num_samples", self.num_samples)
        _check_positive_int("num_classes", self.num_classes)
        for width in self.hidden:
            _check_positive_int("hidden", width)
        for channels in self.conv_channels:
            _check_positive_int("conv_channels", channels)
        if len(self.conv_channels) not in (1, 2):
            raise ValueError(
                "VAEConfig: `conv_channels` must have 1 or 2 entries (stride-2 layers from "
                f"28x28 to 14x14 or 7x7 and back), got {self.conv_channels}."
            )
        _check_choice("architecture", self.architecture, ARCHITECTURES)
        _check_choice("activation", self.activation, tuple(ACTIVATIONS))
        _check_choice("likelihood", self.likelihood, LIKELIHOODS)
        _check_choice("objective", self.objective, OBJECTIVES)
        _check_choice("scale", self.scale, SCALES)
        if self.fixed_variance is not None:
            if self.likelihood != "gaussian":
                raise ValueError("VAEConfig: `fixed_variance` needs likelihood='gaussian'.")
            if not self.fixed_variance > 0.0:
                raise ValueError(
                    f"VAEConfig: `fixed_variance` must be positive, got {self.fixed_variance}."
                )
        if not self.min_scale > 0.0:
            raise ValueError(f"VAEConfig: `min_scale` must be positive, got {self.min_scale}.")


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"VAEConfig: `{name}` must be a positive integer, got {value!r}.")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"VAEConfig: `{name}` must be one of {choices}, got {value!r}.")


# ----------------------------------------------------------------------------- presets


@dataclasses.dataclass(frozen=True)
class Preset:
    """A published configuration: model, training hyper-parameters and optimiser."""

    name: str
    model: VAEConfig
    train: TrainConfig
    description: str

    def optimizer(self, steps_per_epoch: int) -> optax.GradientTransformation:
        """The preset's optax optimiser (its schedule is counted in epochs)."""
        if self.name == "burda":
            return optax.adam(
                burda_learning_rate(steps_per_epoch, self.train.learning_rate), eps=1e-4
            )
        return optax.adam(self.train.learning_rate)


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


PRESETS: dict[str, Preset] = {
    "burda": Preset(
        name="burda",
        model=VAEConfig(latent_dim=50, hidden=(200, 200), activation="tanh"),
        # Their full schedule runs 3280 epochs; callers choose how many to afford.
        train=TrainConfig(epochs=3280, batch_size=20, learning_rate=1e-3, binarization="dynamic"),
        description=(
            "Burda, Grosse & Salakhutdinov (2015), one stochastic layer: two deterministic "
            "layers of 200 tanh units in encoder and decoder, 50-d latent, dynamically "
            "binarised MNIST, Adam (eps 1e-4), batch 20, lr 1e-3 * 10^(-i/7) for 3^i epochs."
        ),
    ),
    "flax": Preset(
        name="flax",
        model=VAEConfig(latent_dim=20, hidden=(500,), activation="relu"),
        train=TrainConfig(epochs=30, batch_size=128, learning_rate=1e-3, binarization="dynamic"),
        description=(
            "The Flax VAE example: 784-500-20 with relu, Adam lr 1e-3, batch 128, 30 epochs."
        ),
    ),
}


def preset(name: str) -> Preset:
    """The :class:`Preset` called ``name`` (``"burda"`` or ``"flax"``)."""
    if name not in PRESETS:
        raise ValueError(f"preset: `name` must be one of {tuple(PRESETS)}, got {name!r}.")
    return PRESETS[name]


# ------------------------------------------------------------------------------- model


class MLP(nnx.Module):
    """Dense layers with an activation between them (none after the last)."""

    def __init__(self, sizes: tuple[int, ...], activation: str, *, rngs: nnx.Rngs):
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)]
        )
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)


def conv_output_size(num_layers: int) -> int:
    """Side of the 28x28 image after ``num_layers`` stride-2 "SAME" convolutions."""
    size = IMAGE_SHAPE[0]
    for _ in range(num_layers):
        size = -(-size // 2)  # "SAME" padding rounds up
    return size


class ConvEncoder(nnx.Module):
    """Stride-2 3x3 convolutions, then a dense layer on the flat features.

    Takes flat images ``(..., 784)`` and optional extra features ``(..., k)`` (the one-hot
    label), which join the convolutional features before the dense layer.
    """

    def __init__(
        self, channels: tuple[int, ...], extra: int, out_features: int, activation: str,
        *, rngs: nnx.Rngs,
    ):
        self.convs = nnx.List([
            nnx.Conv(a, b, kernel_size=(3, 3), strides=(2, 2), padding="SAME", rngs=rngs)
            for a, b in itertools.pairwise((1, *channels))
        ])
        size = conv_output_size(len(channels))
        self.head = nnx.Linear(size * size * channels[-1] + extra, out_features, rngs=rngs)
        self.activation = activation

    def __call__(self, x: jax.Array, extra: jax.Array | None = None) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        batch_shape = x.shape[:-1]
        h = x.reshape(-1, *IMAGE_SHAPE, 1)  # NHWC, leading dimensions as one batch
        for conv in self.convs:
            h = act(conv(h))
        h = h.reshape(*batch_shape, math.prod(h.shape[1:]))
        if extra is not None:
            h = jnp.concatenate([h, extra], axis=-1)
        return self.head(h)


class ConvDecoder(nnx.Module):
    """A dense layer to a small feature map, then stride-2 3x3 transposed convolutions.

    Mirrors :class:`ConvEncoder`: ``(..., in_features)`` -> flat images ``(..., 784)``,
    with an activation after every layer but the last.
    """

    def __init__(
        self, in_features: int, channels: tuple[int, ...], activation: str, *, rngs: nnx.Rngs
    ):
        self.size = conv_output_size(len(channels))
        if self.size * 2 ** len(channels) != IMAGE_SHAPE[0]:
            raise ValueError(
                f"ConvDecoder: {len(channels)} stride-2 layers do not map back to 28x28."
            )
        self.channels = channels[-1]
        self.dense = nnx.Linear(in_features, self.size * self.size * channels[-1], rngs=rngs)
        self.deconvs = nnx.List([
            nnx.ConvTranspose(a, b, kernel_size=(3, 3), strides=(2, 2), padding="SAME",
                              rngs=rngs)
            for a, b in itertools.pairwise((*reversed(channels), 1))
        ])
        self.activation = activation

    def __call__(self, h: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        batch_shape = h.shape[:-1]
        h = act(self.dense(h)).reshape(-1, self.size, self.size, self.channels)
        for deconv in self.deconvs[:-1]:
            h = act(deconv(h))
        h = self.deconvs[-1](h)  # (N, 28, 28, 1)
        return h.reshape(*batch_shape, NUM_PIXELS)


def _softplus_inverse(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class VAE(nnx.Module):
    """A VAE with MLP or convolutional encoder and decoder; see :class:`VAEConfig`.

    Images enter as ``(..., 28, 28)`` or ``(..., 784)`` floats; labels as integers of the
    batch shape (used only when ``config.conditional``).
    """

    def __init__(self, config: VAEConfig, *, rngs: nnx.Rngs):
        self.config = config
        extra = config.num_classes if config.conditional else 0
        if config.architecture == "conv":
            self.encoder = ConvEncoder(
                config.conv_channels, extra, 2 * config.latent_dim, config.activation,
                rngs=rngs,
            )
            self.decoder = ConvDecoder(
                config.latent_dim + extra, config.conv_channels, config.activation, rngs=rngs
            )
        else:
            self.encoder = MLP(
                (NUM_PIXELS + extra, *config.hidden, 2 * config.latent_dim), config.activation,
                rngs=rngs,
            )
            self.decoder = MLP(
                (config.latent_dim + extra, *reversed(config.hidden), NUM_PIXELS),
                config.activation, rngs=rngs,
            )
        if config.likelihood == "gaussian" and config.fixed_variance is None:
            shape = (NUM_PIXELS,) if config.scale == "pixel" else ()
            # Start at unit scale: log_scale = log(min_scale) + softplus(raw) = 0.
            raw = _softplus_inverse(-math.log(config.min_scale))
            self.raw_log_scale = nnx.Param(jnp.full(shape, raw, jnp.float32))

    # -- networks --------------------------------------------------------------------

    def _one_hot(self, h: jax.Array, labels: jax.Array | None) -> jax.Array | None:
        """The one-hot labels broadcast to ``(*h.shape[:-1], num_classes)``, or ``None``
        for an unconditional model."""
        if not self.config.conditional:
            return None
        if labels is None:
            raise ValueError("VAE: a conditional model needs `labels`.")
        labels = jnp.asarray(labels)
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise TypeError(f"VAE: `labels` must be integers, got dtype {labels.dtype}.")
        one_hot = jax.nn.one_hot(labels, self.config.num_classes, dtype=h.dtype)
        return jnp.broadcast_to(one_hot, (*h.shape[:-1], self.config.num_classes))

    def _with_label(self, h: jax.Array, labels: jax.Array | None) -> jax.Array:
        one_hot = self._one_hot(h, labels)
        return h if one_hot is None else jnp.concatenate([h, one_hot], axis=-1)

    def encode(
        self, x: jax.Array, labels: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """The encoder's ``(loc, log_scale)`` of ``q(z|x)``, each ``(..., latent_dim)``."""
        x = flatten_images(x)
        if self.config.architecture == "conv":
            # The label joins the features after the convolutions, not the pixels.
            out = self.encoder(x, self._one_hot(x, labels))
        else:
            out = self.encoder(self._with_label(x, labels))
        loc, log_scale = jnp.split(out, 2, axis=-1)
        return loc, log_scale

    def decode(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """The decoder's output ``(..., 784)``: Bernoulli logits or Gaussian means."""
        out = self.decoder(self._with_label(z, labels))
        if self.config.likelihood == "gaussian":
            # Grey levels lie in [0, 1]; a sigmoid keeps the mean there.
            out = jax.nn.sigmoid(out)
        return out

    def decoder_log_scale(self) -> jax.Array | float:
        """The Gaussian decoder's log standard deviation (per pixel, global, or fixed).

        A fixed variance gives a Python float, which takes the data's dtype.
        """
        if self.config.likelihood != "gaussian":
            raise ValueError("VAE.decoder_log_scale: the decoder is not Gaussian.")
        if self.config.fixed_variance is not None:
            return 0.5 * math.log(self.config.fixed_variance)
        return math.log(self.config.min_scale) + jax.nn.softplus(self.raw_log_scale[...])

    def log_likelihood(self, x: jax.Array, out: jax.Array) -> jax.Array:
        """``log p(x|z)`` summed over the pixels, for decoder output ``out``."""
        x = flatten_images(x)
        if self.config.likelihood == "bernoulli":
            return bernoulli.log_prob(x, logits=out, axis=-1)
        return normal.log_prob(x, loc=out, log_scale=self.decoder_log_scale(), axis=-1)

    def mean(self, out: jax.Array) -> jax.Array:
        """The decoder's mean image ``E[x|z]`` for output ``out``: ``(..., 28, 28)``."""
        if self.config.likelihood == "bernoulli":
            out = jax.nn.sigmoid(out)
        return out.reshape(*out.shape[:-1], *IMAGE_SHAPE)

    # -- generation ------------------------------------------------------------------

    def generate(
        self, key: jax.Array, num: int, labels: jax.Array | None = None
    ) -> jax.Array:
        """Decoder means of ``num`` prior samples: ``(num, 28, 28)`` in ``[0, 1]``.

        A conditional model needs ``labels`` of shape ``(num,)`` (the digits to draw).
        """
        zeros = jnp.zeros((num, self.config.latent_dim), jnp.float32)
        z = normal.sample(key, loc=zeros, log_scale=zeros)
        return self.mean(self.decode(z, labels))

    def reconstruct(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """Decoder means at the encoder means: ``(batch, 28, 28)``."""
        loc, _ = self.encode(x, labels)
        return self.mean(self.decode(loc, labels))


def flatten_images(x: jax.Array) -> jax.Array:
    """``(..., 28, 28)`` or ``(..., 784)`` -> ``(..., 784)``, with a clear error otherwise."""
    x = jnp.asarray(x)
    if x.shape[-2:] == IMAGE_SHAPE:
        return x.reshape(*x.shape[:-2], NUM_PIXELS)
    if x.ndim >= 1 and x.shape[-1] == NUM_PIXELS:
        return x
    raise ValueError(f"VAE: `x` must end in (28, 28) or (784,), got shape {x.shape}.")


# ------------------------------------------------------------------------------ bounds


class ElboTerms(NamedTuple):
    """Per-example ELBO and its two terms, in nats."""

    elbo: jax.Array
    reconstruction: jax.Array  # E_q[log p(x|z)], Monte Carlo
    kl: jax.Array  # KL(q(z|x) || N(0, I)), analytic


def _sample_and_decode(model: VAE, x, labels, key, num_samples: int):
    loc, log_scale = model.encode(x, labels)
    z = normal.sample(key, loc=loc, log_scale=log_scale, shape=(num_samples,))
    log_lik = model.log_likelihood(x, model.decode(z, labels))  # (K, batch)
    return loc, log_scale, z, log_lik


def _elbo_from(loc, log_scale, log_lik) -> ElboTerms:
    reconstruction = jnp.mean(log_lik, axis=0)
    kl = normal.kl_standard(loc=loc, log_scale=log_scale, axis=-1)
    return ElboTerms(latent.elbo(reconstruction, kl), reconstruction, kl)


def _log_weights_from(loc, log_scale, z, log_lik) -> jax.Array:
    log_prior = normal.log_prob(z, loc=0.0, log_scale=0.0, axis=-1)
    log_posterior = normal.log_prob(z, loc=loc, log_scale=log_scale, axis=-1)
    return log_lik + log_prior - log_posterior


def elbo(
    model: VAE, x: jax.Array, labels: jax.Array | None, key: jax.Array, num_samples: int = 1
) -> ElboTerms:
    """The ELBO per example (analytic KL, ``num_samples`` reconstruction samples)."""
    loc, log_scale, _, log_lik = _sample_and_decode(model, x, labels, key, num_samples)
    return _elbo_from(loc, log_scale, log_lik)


def log_weights(
    model: VAE, x: jax.Array, labels: jax.Array | None, key: jax.Array, num_samples: int
) -> jax.Array:
    """Importance log-weights ``log p(x, z_k) - log q(z_k|x)``: ``(num_samples, batch)``."""
    loc, log_scale, z, log_lik = _sample_and_decode(model, x, labels, key, num_samples)
    return _log_weights_from(loc, log_scale, z, log_lik)


def iwae(
    model: VAE, x: jax.Array, labels: jax.Array | None, key: jax.Array, num_samples: int
) -> jax.Array:
    """The importance-weighted bound with ``num_samples`` samples, per example."""
    return latent.iwae_bound(log_weights(model, x, labels, key, num_samples), axis=0)


def loss_fn(
    model: VAE, x: jax.Array, labels: jax.Array, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The training loss for :class:`models.training.Trainer` (``model.config.objective``).

    Returns the batch mean of the negative bound, with the negative ELBO, its
    reconstruction term (as a negative log-likelihood) and the KL as metrics.
    """
    config = model.config
    loc, log_scale, z, log_lik = _sample_and_decode(model, x, labels, key, config.num_samples)
    terms = _elbo_from(loc, log_scale, log_lik)
    metrics = {
        "neg_elbo": -jnp.mean(terms.elbo),
        "reconstruction": -jnp.mean(terms.reconstruction),
        "kl": jnp.mean(terms.kl),
    }
    if config.objective == "elbo":
        return metrics["neg_elbo"], metrics
    bound = latent.iwae_bound(_log_weights_from(loc, log_scale, z, log_lik), axis=0)
    metrics["neg_iwae"] = -jnp.mean(bound)
    return metrics["neg_iwae"], metrics


# -------------------------------------------------------------------------- evaluation


def _padded_batches(x, labels, batch_size: int):
    """Pads to a multiple of ``batch_size`` and reshapes to ``(batches, batch_size, ...)``."""
    n = x.shape[0]
    pad = -n % batch_size
    x = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)])
    labels = jnp.concatenate([labels, jnp.zeros((pad,), labels.dtype)])
    return x.reshape(-1, batch_size, *x.shape[1:]), labels.reshape(-1, batch_size)


def _check_eval_inputs(where: str, x, labels, batch_size: int):
    x = flatten_images(x)
    if x.ndim != 2:
        raise ValueError(f"{where}: `x` must be a batch of images, got shape {x.shape}.")
    if labels is None:
        labels = jnp.zeros((x.shape[0],), jnp.int32)
    labels = jnp.asarray(labels)
    if labels.shape != x.shape[:1]:
        raise ValueError(
            f"{where}: `labels` must have shape {x.shape[:1]} to match `x`, got {labels.shape}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{where}: `labels` must be integers, got dtype {labels.dtype}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{where}: `batch_size` must be a positive integer, got {batch_size!r}.")
    return jnp.asarray(x, jnp.float32), labels


@functools.partial(jax.jit, static_argnames=("graphdef", "batch_size"))
def _elbo_per_example(graphdef, state, x, labels, key, *, batch_size):
    model = nnx.merge(graphdef, state)
    xs, ls = _padded_batches(x, labels, batch_size)
    keys = jax.random.split(key, xs.shape[0])
    terms = jax.lax.map(lambda a: elbo(model, a[0], a[1], a[2]), (xs, ls, keys))
    return jax.tree.map(lambda t: t.reshape(-1)[: x.shape[0]], terms)


def evaluate_elbo(
    model: VAE, x: jax.Array, labels: jax.Array | None, key: jax.Array, *, batch_size: int = 500
) -> dict[str, float]:
    """Mean test ELBO, reconstruction term and KL in nats (one ``z`` sample per image).

    Runs as one jit-compiled ``lax.map`` over batches of ``batch_size``.
    """
    x, labels = _check_eval_inputs("evaluate_elbo", x, labels, batch_size)
    graphdef, state = nnx.split(model)
    terms = _elbo_per_example(graphdef, state, x, labels, key, batch_size=batch_size)
    return {name: float(jnp.mean(value)) for name, value in terms._asdict().items()}


@functools.partial(
    jax.jit, static_argnames=("graphdef", "batch_size", "num_samples", "chunk_size")
)
def _iwae_per_example(graphdef, state, x, labels, key, *, batch_size, num_samples, chunk_size):
    model = nnx.merge(graphdef, state)
    xs, ls = _padded_batches(x, labels, batch_size)
    keys = jax.random.split(key, xs.shape[0])

    def one_batch(args):
        xb, lb, kb = args

        def one_chunk(_, chunk_key):
            return None, log_weights(model, xb, lb, chunk_key, chunk_size)

        chunk_keys = jax.random.split(kb, num_samples // chunk_size)
        _, weights = jax.lax.scan(one_chunk, None, chunk_keys)  # (chunks, chunk, batch)
        return latent.iwae_bound(weights.reshape(num_samples, -1), axis=0)

    return jax.lax.map(one_batch, (xs, ls, keys)).reshape(-1)[: x.shape[0]]


def _largest_divisor_at_most(n: int, bound: int) -> int:
    return max(d for d in range(1, min(n, bound) + 1) if n % d == 0)


def iwae_per_example(
    model: VAE,
    x: jax.Array,
    labels: jax.Array | None,
    key: jax.Array,
    *,
    num_samples: int,
    batch_size: int = 100,
    max_chunk: int | None = None,
) -> jax.Array:
    """The ``num_samples``-sample importance-weighted bound of every image, in nats.

    Images go through a jit-compiled ``lax.map`` in batches of ``batch_size``; each
    batch's samples through a ``lax.scan`` in chunks of at most ``max_chunk`` (by default
    about 50,000 decoder evaluations per step), so memory stays bounded for any ``K``.
    """
    x, labels = _check_eval_inputs("iwae_per_example", x, labels, batch_size)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(
            f"iwae_per_example: `num_samples` must be a positive integer, got {num_samples!r}."
        )
    if max_chunk is None:
        max_chunk = max(1, 50_000 // batch_size)
    chunk = _largest_divisor_at_most(num_samples, max_chunk)
    graphdef, state = nnx.split(model)
    return _iwae_per_example(
        graphdef, state, x, labels, key,
        batch_size=batch_size, num_samples=num_samples, chunk_size=chunk,
    )


def evaluate_log_likelihood(
    model: VAE,
    x: jax.Array,
    labels: jax.Array | None,
    key: jax.Array,
    *,
    num_samples: int,
    batch_size: int = 100,
) -> dict[str, float]:
    """Importance-sampled estimate of the test negative log-likelihood.

    Returns ``nll_nats`` (mean of ``-iwae_bound`` with ``num_samples`` samples),
    ``bits_per_dim`` and ``num_samples``.
    """
    bound = iwae_per_example(model, x, labels, key, num_samples=num_samples, batch_size=batch_size)
    nll = -jnp.mean(bound)
    return {
        "nll_nats": float(nll),
        "bits_per_dim": float(latent.bits_per_dim(nll, NUM_PIXELS)),
        "num_samples": num_samples,
    }


@functools.partial(jax.jit, static_argnames=("graphdef", "batch_size"))
def _encoder_means(graphdef, state, x, labels, *, batch_size):
    model = nnx.merge(graphdef, state)
    xs, ls = _padded_batches(x, labels, batch_size)
    means = jax.lax.map(lambda a: model.encode(a[0], a[1])[0], (xs, ls))
    return means.reshape(-1, means.shape[-1])[: x.shape[0]]


def encoder_means(
    model: VAE, x: jax.Array, labels: jax.Array | None = None, *, batch_size: int = 1000
) -> jax.Array:
    """The encoder means ``E_q[z|x]`` of a batch of images: ``(n, latent_dim)``."""
    x, labels = _check_eval_inputs("encoder_means", x, labels, batch_size)
    graphdef, state = nnx.split(model)
    return _encoder_means(graphdef, state, x, labels, batch_size=batch_size)


def latent_grid(num_per_side: int) -> jax.Array:
    """A 2-D grid of latents at the standard normal's quantiles: ``(n*n, 2)``.

    The quantiles of evenly spaced probabilities in (0, 1) cover the prior's mass
    evenly, so the decoded grid shows the whole learned manifold.
    """
    probs = (jnp.arange(num_per_side, dtype=jnp.float32) + 0.5) / num_per_side
    values = jax.scipy.special.ndtri(probs)
    rows, cols = jnp.meshgrid(values[::-1], values, indexing="ij")
    return jnp.stack([cols.ravel(), rows.ravel()], axis=-1)

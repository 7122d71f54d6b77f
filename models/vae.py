"""A variational autoencoder: injected encoder, decoder and likelihood; bounds as functions.

The model is a latent-Gaussian model: prior ``p(z) = N(0, I)``, an encoder
``q(z|x) = N(loc, diag sigma^2)`` and a decoder likelihood ``p(x|z)`` from
:mod:`models.likelihoods`. One VAE step reads top to bottom:

    images -> encoder -> (loc, log_scale) -> normal.sample -> decoder -> params
           -> likelihood.log_prob(x, params) and normal.kl_standard -> elbo / iwae

Objectives (per example, in nats; higher is better):

* :func:`elbo`: ``E_q[log p(x|z)] - KL(q(z|x) || p(z))`` with the analytic KL and ``K``
  reparameterised samples for the reconstruction term;
* :func:`iwae`: ``log (1/K) sum_k p(x, z_k) / q(z_k|x)`` (``genmath.latent.iwae_bound``),
  which tightens towards ``log p(x)`` as ``K`` grows.

A second stochastic layer (``VAEConfig.top_latent_dim``, Burda et al.'s two-layer model)
puts ``z2 ~ N(0, I)`` above ``z1``: ``p(x, z1, z2) = p(z2) p(z1|z2) p(x|z1)`` with
``q(z1, z2|x) = q(z1|x) q(z2|z1)``, every conditional a diagonal Gaussian from an MLP. The
bounds then weigh ``p(x, z1, z2) / q(z1, z2|x)``; the ELBO's KL term is
``E_q[log q(z1|x) - log p(z1|z2)] + E_q[KL(q(z2|z1) || N(0, I))]``, Monte Carlo in ``z1``
and ``z2`` and analytic in the last step.

A likelihood that draws noise of its own (``needs_key``: the uniformly dequantised
Gaussian of :mod:`models.likelihoods`) gets an independent key with every draw of ``z``;
its ``log_prob`` is then a one-draw estimate ``log p(x + u | z)`` whose expectation over
``u`` lower-bounds ``log P(x|z)``, so both objectives become bounds over pairs
``(z_k, u_k) ~ q(z|x) U(u)`` and still lower-bound ``log P(x)``.

A conditional VAE feeds the one-hot label to both networks as an extra input (their
``context``), so the decoder can be asked for a chosen digit; the bounds do not branch on it.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from genmath import latent, normal
from models import evaluation, likelihoods, networks, sharding
from models.mnist import NUM_CLASSES, NUM_PIXELS, flatten_images, unflatten_images
from models.training import Batch, ConfigError, check_choice, check_positive_int

ARCHITECTURES = ("mlp", "conv")
OBJECTIVES = ("elbo", "iwae")


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """What :func:`make_vae` builds.

    Attributes:
      latent_dim: size of ``z``.
      architecture: ``"mlp"`` (dense encoder and decoder) or ``"conv"`` (convolutional).
      hidden: ``"mlp"`` only: widths of the encoder's hidden layers; the decoder mirrors them.
      conv_channels: ``"conv"`` only: channels of the encoder's one or two stride-2 3x3
        convolutions (28x28 -> 14x14 -> 7x7); the decoder mirrors them.
      activation: a key of :data:`models.networks.ACTIVATIONS`.
      likelihood: a key of :data:`models.likelihoods.LIKELIHOODS`.
      likelihood_options: keyword options of that likelihood (e.g. ``fixed_variance``).
      conditional: feed the one-hot label to encoder and decoder.
      num_classes: number of labels of a conditional model.
      output_bias_init: start the decoder's output bias at the training data's mean image
        (for the Bernoulli likelihood, Burda et al.'s logits of the pixel means clipped to
        [0.001, 0.999]); on by default. Needs ``pixel_means`` in :func:`make_vae`.
      top_latent_dim: size of a second stochastic layer ``z2`` above ``z`` (0: none).
      top_hidden: widths of the hidden layers of ``q(z2|z)``'s MLP; ``p(z|z2)``'s mirrors
        them (Burda et al.'s two-layer model: 100, 100).
    """

    latent_dim: int = 20
    architecture: str = "mlp"
    hidden: tuple[int, ...] = (500,)
    conv_channels: tuple[int, ...] = (32, 64)
    activation: str = "relu"
    likelihood: str = "bernoulli"
    likelihood_options: tuple[tuple[str, Any], ...] = ()
    conditional: bool = False
    num_classes: int = NUM_CLASSES
    output_bias_init: bool = True
    top_latent_dim: int = 0
    top_hidden: tuple[int, ...] = (100, 100)

    def __post_init__(self):
        # Lists (e.g. from argparse) become tuples, so configs stay hashable.
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "top_hidden", tuple(self.top_hidden))
        object.__setattr__(self, "conv_channels", tuple(self.conv_channels))
        options = self.likelihood_options
        if isinstance(options, dict):
            options = options.items()
        object.__setattr__(self, "likelihood_options", tuple(sorted(options)))
        check_positive_int("latent_dim", self.latent_dim)
        check_positive_int("num_classes", self.num_classes)
        for width in self.hidden:
            check_positive_int("hidden", width)
        if self.top_latent_dim:
            check_positive_int("top_latent_dim", self.top_latent_dim)
        for width in self.top_hidden:
            check_positive_int("top_hidden", width)
        for channels in self.conv_channels:
            check_positive_int("conv_channels", channels)
        if len(self.conv_channels) not in (1, 2):
            raise ConfigError(
                "conv_channels",
                "must have 1 or 2 entries (stride-2 layers from 28x28 to 14x14 or 7x7 and "
                f"back), got {self.conv_channels}",
            )
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_choice("activation", self.activation, tuple(networks.ACTIVATIONS))
        check_choice("likelihood", self.likelihood, tuple(likelihoods.LIKELIHOODS))
        cls = likelihoods.LIKELIHOODS[self.likelihood]
        for name, _ in self.likelihood_options:
            if name not in cls.option_names:
                raise ConfigError(name, f"is not an option of the {self.likelihood!r} likelihood")
        cls.check_options(**dict(self.likelihood_options))


@dataclasses.dataclass(frozen=True)
class Objective:
    """The training objective of a VAE.

    Attributes:
      kind: ``"elbo"`` or ``"iwae"``.
      num_samples: samples of ``z`` per example (``K``).
      kl_warmup_epochs: the ELBO's KL weight rises linearly from 0 to 1 over this many
        epochs (an optax schedule of the step, over the steps rounded up); 0 for none.
      free_bits: the ELBO's KL term counts each latent dimension's batch-mean KL as at
        least this many nats (Kingma et al. 2016); 0 for none.
    """

    kind: str = "elbo"
    num_samples: int = 1
    kl_warmup_epochs: float = 0.0
    free_bits: float = 0.0

    def __post_init__(self):
        check_choice("objective", self.kind, OBJECTIVES)
        check_positive_int("num_samples", self.num_samples)
        for name in ("kl_warmup_epochs", "free_bits"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value < float("inf")):
                raise ConfigError(name, f"must be a finite number >= 0, got {value!r}")
        if self.kind == "iwae" and (self.kl_warmup_epochs or self.free_bits):
            raise ConfigError(
                "objective", "KL warm-up and free bits apply to the ELBO, not to 'iwae'"
            )


# ------------------------------------------------------------------------------- model


class TopLayer(nnx.Module):
    """A second stochastic layer ``z2`` above ``z``: ``q(z2|z)`` and ``p(z|z2)``.

    Args:
      up: ``up(z, context) -> (..., 2 * latent_dim)``: ``q(z2|z)``'s loc and log-scale.
      down: ``down(z2, context) -> (..., 2 * dim of z)``: ``p(z|z2)``'s loc and log-scale.
      latent_dim: size of ``z2``, whose prior is ``N(0, I)``.
    """

    def __init__(self, up: nnx.Module, down: nnx.Module, *, latent_dim: int):
        self.up = up
        self.down = down
        self.latent_dim = latent_dim


class VAE(nnx.Module):
    """``p(z) p(x|z)`` with ``q(z|x)``, from an encoder, a decoder and a likelihood.

    Args:
      encoder: ``encoder(x, context) -> (..., 2 * latent_dim)``: ``q``'s loc and log-scale.
      decoder: ``decoder(z, context) -> params``, read by ``likelihood``.
      likelihood: a :class:`models.likelihoods.Likelihood`.
      latent_dim: size of ``z``.
      num_classes: the labels' count for a conditional model (the one-hot label is both
        networks' context), ``None`` for an unconditional one.
      top: a :class:`TopLayer` for a second stochastic layer (its prior replaces
        ``N(0, I)`` as ``z``'s), ``None`` for one stochastic layer.

    Images enter as ``(..., 28, 28)`` or ``(..., 784)``; labels as integers of the batch
    shape (ignored by an unconditional model).
    """

    def __init__(
        self,
        encoder: nnx.Module,
        decoder: nnx.Module,
        likelihood: likelihoods.Likelihood,
        *,
        latent_dim: int,
        num_classes: int | None = None,
        top: TopLayer | None = None,
    ):
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.top = top

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    def context(self, labels: jax.Array | None, dtype=jnp.float32) -> jax.Array | None:
        """The networks' extra input: the one-hot label, or ``None`` (unconditional)."""
        if self.num_classes is None:
            return None
        if labels is None:
            raise ValueError("VAE: a conditional model needs `labels`.")
        labels = jnp.asarray(labels)
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise TypeError(f"VAE: `labels` must be integers, got dtype {labels.dtype}.")
        return jax.nn.one_hot(labels, self.num_classes, dtype=dtype)

    def encode(self, x, labels=None) -> tuple[jax.Array, jax.Array]:
        """``q(z|x)``'s ``(loc, log_scale)``, each ``(..., latent_dim)``."""
        x = flatten_images(x, fn="VAE.encode")
        if self.likelihood.white != 1.0:
            # The encoder sees values in [0, 1] whatever the data's units (8-bit: 0..255).
            x = x * (1.0 / self.likelihood.white)
        out = self.encoder(x, self.context(labels, x.dtype))
        loc, log_scale = jnp.split(out, 2, axis=-1)
        return loc, log_scale

    def decode(self, z: jax.Array, labels=None) -> jax.Array:
        """The likelihood's parameters for latents ``z``: ``(..., 784 * outputs)``."""
        return self.decoder(z, self.context(labels, z.dtype))

    def _check_top(self, fn: str) -> None:
        if self.top is None:
            raise ValueError(f"VAE.{fn}: this model has one stochastic layer (no `top`).")

    def encode_top(self, z: jax.Array, labels=None) -> tuple[jax.Array, jax.Array]:
        """Two layers only: ``q(z2|z)``'s ``(loc, log_scale)``, each ``(..., top dim)``."""
        self._check_top("encode_top")
        loc, log_scale = jnp.split(self.top.up(z, self.context(labels, z.dtype)), 2, axis=-1)
        return loc, log_scale

    def prior_given_top(self, z2: jax.Array, labels=None) -> tuple[jax.Array, jax.Array]:
        """Two layers only: ``p(z|z2)``'s ``(loc, log_scale)``, each ``(..., latent_dim)``."""
        self._check_top("prior_given_top")
        out = self.top.down(z2, self.context(labels, z2.dtype))
        loc, log_scale = jnp.split(out, 2, axis=-1)
        return loc, log_scale

    def mean(self, params: jax.Array) -> jax.Array:
        """``E[x|z]`` as images ``(..., 28, 28)``, in the data's units (``likelihood.white``)."""
        return unflatten_images(self.likelihood.mean(params))

    def generate(self, key: jax.Array, num: int, labels=None) -> jax.Array:
        """Decoder means of ``num`` prior samples: ``(num, 28, 28)``.

        A conditional model needs ``labels`` of shape ``(num,)`` (the digits to draw).
        """
        return self.mean(self.decode(self.sample_prior(key, num, labels), labels))

    def sample_prior(self, key: jax.Array, num: int, labels=None) -> jax.Array:
        """``num`` draws of ``z`` from its prior, ``(num, latent_dim)``: ``N(0, I)``, or
        with a second layer ``z2 ~ N(0, I)`` and then ``z ~ p(z|z2)``."""
        if self.top is None:
            zeros = jnp.zeros((num, self.latent_dim), jnp.float32)
            return normal.sample(key, loc=zeros, log_scale=zeros)
        top_key, key = jax.random.split(key)
        zeros = jnp.zeros((num, self.top.latent_dim), jnp.float32)
        z2 = normal.sample(top_key, loc=zeros, log_scale=zeros)
        loc, log_scale = self.prior_given_top(z2, labels)
        return normal.sample(key, loc=loc, log_scale=log_scale)

    def reconstruct(self, x, labels=None) -> jax.Array:
        """Decoder means at the encoder means: ``(..., 28, 28)``."""
        loc, _ = self.encode(x, labels)
        return self.mean(self.decode(loc, labels))


def make_vae(config: VAEConfig, *, rngs: nnx.Rngs, pixel_means: np.ndarray | None = None) -> VAE:
    """Builds the encoder, decoder and likelihood that ``config`` names, and the VAE.

    ``pixel_means``: the training set's mean image in [0, 1] (``(784,)``), for
    ``config.output_bias_init``; without it the output bias stays at its default (zero).
    """
    likelihood = likelihoods.make_likelihood(
        config.likelihood, dict(config.likelihood_options), rngs=rngs
    )
    outputs = likelihood.outputs_per_pixel
    context = config.num_classes if config.conditional else 0
    latent, act = config.latent_dim, config.activation
    if config.architecture == "conv":
        encoder = networks.ConvEncoder(config.conv_channels, context, 2 * latent, act, rngs=rngs)
        decoder = networks.ConvDecoder(
            latent + context, config.conv_channels, act, outputs_per_pixel=outputs, rngs=rngs
        )
    else:
        encoder = networks.MLP((NUM_PIXELS + context, *config.hidden, 2 * latent), act, rngs=rngs)
        decoder = networks.MLP(
            (latent + context, *reversed(config.hidden), networks.output_size(outputs)),
            act,
            rngs=rngs,
        )
    if config.output_bias_init and pixel_means is not None:
        _init_output_bias(decoder, likelihood, pixel_means)
    top = None
    if config.top_latent_dim:
        top_latent, widths = config.top_latent_dim, config.top_hidden
        top = TopLayer(
            networks.MLP((latent + context, *widths, 2 * top_latent), act, rngs=rngs),
            networks.MLP((top_latent + context, *reversed(widths), 2 * latent), act, rngs=rngs),
            latent_dim=top_latent,
        )
    return VAE(
        encoder,
        decoder,
        likelihood,
        latent_dim=latent,
        num_classes=config.num_classes if config.conditional else None,
        top=top,
    )


def pixel_means(images) -> np.ndarray:
    """The mean image in [0, 1] of uint8 ``images``: ``(784,)`` numpy, on the host.

    ``images`` may be a global array split over the processes of a job (every process
    then gets the same means, as initial parameters must be).
    """
    if isinstance(images, jax.Array) and not images.is_fully_addressable:
        # Sum on the devices (GSPMD reduces across processes), then this process's copy.
        sums = jax.jit(lambda x: jnp.sum(x.reshape(x.shape[0], -1), 0, dtype=jnp.int32))(images)
        sums = np.asarray(sharding.to_local(sums), np.float64)
    else:
        images = np.asarray(images)
        sums = images.reshape(images.shape[0], -1).sum(axis=0, dtype=np.float64)
    return sums / (255.0 * images.shape[0])


def _init_output_bias(decoder, likelihood, means) -> None:
    bias = likelihood.output_bias(np.asarray(means).reshape(-1))
    if bias is None:
        return
    outputs = likelihood.outputs_per_pixel
    bias = np.broadcast_to(np.reshape(bias, (NUM_PIXELS, -1)), (NUM_PIXELS, outputs))
    layer = decoder.output_layer
    if layer.bias.size != NUM_PIXELS * outputs:
        # A per-channel bias (a transposed convolution's): the mean over the pixels.
        bias = bias.mean(axis=0)
    layer.bias[...] = jnp.asarray(bias.reshape(layer.bias.shape), layer.bias.dtype)


# ------------------------------------------------------------------------------ bounds


class ElboTerms(NamedTuple):
    """Per-example ELBO and its two terms, in nats."""

    elbo: jax.Array
    reconstruction: jax.Array  # E_q[log p(x|z)], Monte Carlo
    kl: jax.Array  # KL(q(z|x) || N(0, I)), analytic (two layers: see the module)


class _TopDraws(NamedTuple):
    loc: jax.Array  # q(z2|z): (K, batch, top latent)
    log_scale: jax.Array
    z: jax.Array  # z2: (K, batch, top latent)
    prior_loc: jax.Array  # p(z|z2): (K, batch, latent)
    prior_log_scale: jax.Array


class _Draws(NamedTuple):
    loc: jax.Array  # (batch, latent)
    log_scale: jax.Array
    z: jax.Array  # (K, batch, latent)
    log_likelihood: jax.Array  # (K, batch)
    top: _TopDraws | None  # the second stochastic layer's, if any


def _draw(model: VAE, batch: Batch, key: jax.Array, num_samples: int) -> _Draws:
    x = flatten_images(batch.images, fn="VAE")
    loc, log_scale = model.encode(x, batch.labels)
    likelihood = model.likelihood
    if likelihood.needs_key:
        # The likelihood's own noise (a dequantisation u per z_k) from an independent key:
        # the bounds are then over pairs (z_k, u_k) from q(z|x) U(u), still valid.
        key, noise_key = jax.random.split(key)
    top = None
    if model.top is not None:
        key, top_key = jax.random.split(key)
    z = normal.sample(key, loc=loc, log_scale=log_scale, sample_shape=num_samples)
    if model.top is not None:
        top_loc, top_log_scale = model.encode_top(z, batch.labels)
        z2 = normal.sample(top_key, loc=top_loc, log_scale=top_log_scale)
        top = _TopDraws(top_loc, top_log_scale, z2, *model.prior_given_top(z2, batch.labels))
    params = model.decode(z, batch.labels)
    if likelihood.needs_key:
        log_likelihood = likelihood.log_prob(x, params, key=noise_key)
    else:
        log_likelihood = likelihood.log_prob(x, params)
    return _Draws(loc, log_scale, z, log_likelihood, top)


def _log_prior_given_top(draws: _Draws) -> jax.Array:
    top = draws.top
    return normal.log_prob(draws.z, loc=top.prior_loc, log_scale=top.prior_log_scale, axis=-1)


def _elbo_terms(draws: _Draws) -> ElboTerms:
    reconstruction = jnp.mean(draws.log_likelihood, axis=0)
    if draws.top is None:
        kl = normal.kl_standard(loc=draws.loc, log_scale=draws.log_scale, axis=-1)
    else:
        # KL(q(z, z2|x) || p(z, z2)): Monte Carlo in z, analytic in z2 given z.
        log_posterior = normal.log_prob(draws.z, loc=draws.loc, log_scale=draws.log_scale, axis=-1)
        top_kl = normal.kl_standard(loc=draws.top.loc, log_scale=draws.top.log_scale, axis=-1)
        kl = jnp.mean(log_posterior - _log_prior_given_top(draws) + top_kl, axis=0)
    return ElboTerms(latent.elbo(reconstruction, kl), reconstruction, kl)


def _log_weights(draws: _Draws) -> jax.Array:
    log_posterior = normal.log_prob(draws.z, loc=draws.loc, log_scale=draws.log_scale, axis=-1)
    if draws.top is None:
        log_prior = normal.log_prob(draws.z, loc=0.0, log_scale=0.0, axis=-1)
    else:
        top = draws.top
        log_prior = _log_prior_given_top(draws) + normal.log_prob(
            top.z, loc=0.0, log_scale=0.0, axis=-1
        )
        log_posterior = log_posterior + normal.log_prob(
            top.z, loc=top.loc, log_scale=top.log_scale, axis=-1
        )
    return draws.log_likelihood + log_prior - log_posterior


def elbo(model: VAE, batch: Batch, key: jax.Array, *, num_samples: int = 1) -> ElboTerms:
    """The ELBO per example: analytic KL (two layers: see the module), ``num_samples`` samples."""
    return _elbo_terms(_draw(model, batch, key, num_samples))


def log_weights(model: VAE, batch: Batch, key: jax.Array, *, num_samples: int) -> jax.Array:
    """Importance log-weights ``log p(x, z_k) - log q(z_k|x)``: ``(num_samples, batch)``."""
    return _log_weights(_draw(model, batch, key, num_samples))


def iwae(model: VAE, batch: Batch, key: jax.Array, *, num_samples: int) -> jax.Array:
    """The importance-weighted bound with ``num_samples`` samples, per example."""
    return latent.iwae_bound(log_weights(model, batch, key, num_samples=num_samples), axis=0)


def make_loss_fn(objective: Objective, *, steps_per_epoch: int = 1):
    """The Trainer loss ``loss_fn(model, batch, key, step) -> (loss, metrics)``.

    The loss is the batch mean of the negative bound that ``objective`` names; the metrics
    are the negative ELBO, its reconstruction term (as a negative log-likelihood) and the KL
    (and the negative IWAE bound when that is the objective). With KL warm-up, the KL term
    of the loss is weighted by ``optax.linear_schedule(0, 1, warm-up steps)`` of ``step``;
    with free bits, each latent dimension's batch-mean KL counts as at least ``free_bits``.
    """
    # Rounded up: a positive warm-up lasts at least one step (rounding to 0 dropped it);
    # rounded to 9 places first, so that 1.1 * 3000 = 3300.0000000000005 stays 3300.
    warmup_steps = math.ceil(round(objective.kl_warmup_epochs * steps_per_epoch, 9))
    kl_weight = optax.linear_schedule(0.0, 1.0, warmup_steps) if warmup_steps else None

    def loss_fn(model: VAE, batch: Batch, key: jax.Array, step: jax.Array):
        draws = _draw(model, batch, key, objective.num_samples)
        terms = _elbo_terms(draws)
        metrics = {
            "neg_elbo": -jnp.mean(terms.elbo),
            "reconstruction": -jnp.mean(terms.reconstruction),
            "kl": jnp.mean(terms.kl),
        }
        if objective.kind == "iwae":
            metrics["neg_iwae"] = -jnp.mean(latent.iwae_bound(_log_weights(draws), axis=0))
            return metrics["neg_iwae"], metrics
        kl_term = metrics["kl"]
        if objective.free_bits and draws.top is not None:
            raise ValueError(
                "make_loss_fn: `free_bits` counts the KL to N(0, I) per latent dimension, "
                "which a model with a second stochastic layer does not have."
            )
        if objective.free_bits:
            per_dim = normal.kl_standard(loc=draws.loc, log_scale=draws.log_scale, axis=())
            kl_term = jnp.sum(jnp.maximum(jnp.mean(per_dim, axis=0), objective.free_bits))
        if kl_weight is not None:
            kl_term = kl_weight(step) * kl_term
        return metrics["reconstruction"] + kl_term, metrics

    return loss_fn


# -------------------------------------------------------------------------- evaluation


def _check_eval_inputs(fn: str, x, labels):
    x = flatten_images(x, fn=fn)
    if x.ndim != 2:
        raise ValueError(f"{fn}: `x` must be a batch of images, got shape {x.shape}.")
    if labels is None:
        labels = jnp.zeros((x.shape[0],), jnp.int32)
    labels = jnp.asarray(labels)
    if labels.shape != x.shape[:1]:
        raise ValueError(
            f"{fn}: `labels` must have shape {x.shape[:1]} to match `x`, got {labels.shape}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{fn}: `labels` must be integers, got dtype {labels.dtype}.")
    return jnp.asarray(x, jnp.float32), labels


def _elbo_batch(model, x, labels, *, key):
    return elbo(model, Batch(x, labels), key)


def evaluate_elbo(model: VAE, x, labels, key: jax.Array, *, batch_size: int = 500) -> dict:
    """Mean ELBO, reconstruction term and KL in nats (one ``z`` sample per image)."""
    x, labels = _check_eval_inputs("evaluate_elbo", x, labels)
    terms = evaluation.map_batches(_elbo_batch, model, x, labels, key=key, batch_size=batch_size)
    return {name: float(jnp.mean(value)) for name, value in terms._asdict().items()}


def _iwae_batch(model, x, labels, *, key, num_samples, chunk_size):
    # Chunks of samples through a scan, so memory stays bounded for any K.
    def one_chunk(_, chunk_key):
        return None, log_weights(model, Batch(x, labels), chunk_key, num_samples=chunk_size)

    keys = jax.random.split(key, num_samples // chunk_size)
    _, weights = jax.lax.scan(one_chunk, None, keys)  # (chunks, chunk, batch)
    return latent.iwae_bound(weights.reshape(num_samples, -1), axis=0)


def _largest_divisor_at_most(n: int, bound: int) -> int:
    return max(d for d in range(1, min(n, bound) + 1) if n % d == 0)


def iwae_per_example(
    model: VAE,
    x,
    labels,
    key: jax.Array,
    *,
    num_samples: int,
    batch_size: int = 100,
    max_chunk: int | None = None,
) -> jax.Array:
    """The ``num_samples``-sample importance-weighted bound of every image, in nats.

    Images go through :func:`models.evaluation.map_batches` in batches of ``batch_size``;
    each batch's samples through a ``lax.scan`` in chunks of at most ``max_chunk`` (by
    default about 50,000 decoder evaluations per step), so memory stays bounded for any K.
    """
    x, labels = _check_eval_inputs("iwae_per_example", x, labels)
    try:
        num_samples = operator.index(num_samples)
    except TypeError:
        num_samples = 0
    if isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(
            f"iwae_per_example: `num_samples` must be a positive integer, got {num_samples!r}."
        )
    if max_chunk is None:
        max_chunk = max(1, 50_000 // batch_size)
    chunk = _largest_divisor_at_most(num_samples, max_chunk)
    return evaluation.map_batches(
        _iwae_batch,
        model,
        x,
        labels,
        key=key,
        batch_size=batch_size,
        options={"num_samples": num_samples, "chunk_size": chunk},
    )


def evaluate_log_likelihood(
    model: VAE, x, labels, key: jax.Array, *, num_samples: int, batch_size: int = 100
) -> dict:
    """Importance-sampled estimate of the test negative log-likelihood.

    Returns ``nll_nats`` (mean of ``-iwae`` with ``num_samples`` samples), its standard
    error over the images ``nll_stderr_nats``, ``bits_per_dim`` and ``num_samples``.
    """
    bound = iwae_per_example(model, x, labels, key, num_samples=num_samples, batch_size=batch_size)
    nll = -np.asarray(bound, np.float64)
    mean = float(np.mean(nll))
    return {
        "nll_nats": mean,
        "nll_stderr_nats": float(np.std(nll, ddof=1) / np.sqrt(nll.size)) if nll.size > 1 else 0.0,
        "bits_per_dim": float(latent.bits_per_dim(mean, num_dims=NUM_PIXELS)),
        "num_samples": num_samples,
    }


def _encoder_means_batch(model, x, labels, *, key):
    del key
    return model.encode(x, labels)[0]


def encoder_means(model: VAE, x, labels=None, *, batch_size: int = 1000) -> jax.Array:
    """The encoder means ``E_q[z|x]`` of a batch of images: ``(n, latent_dim)``."""
    x, labels = _check_eval_inputs("encoder_means", x, labels)
    return evaluation.map_batches(_encoder_means_batch, model, x, labels, batch_size=batch_size)


def active_units(means: jax.Array, *, threshold: float = 1e-2) -> int:
    """Burda et al. (2015)'s active units: dimensions with ``Cov_x(E_q[z|x]) > threshold``.

    Args:
      means: encoder means ``(n, latent_dim)`` over a data set (:func:`encoder_means`).
    """
    variance = np.var(np.asarray(means, np.float64), axis=0)
    return int(np.sum(variance > threshold))


def latent_grid(num_per_side: int) -> jax.Array:
    """A 2-D grid of latents at the standard normal's quantiles: ``(n*n, 2)``.

    The quantiles of evenly spaced probabilities in (0, 1) cover the prior's mass
    evenly, so the decoded grid shows the whole learned manifold.
    """
    probs = (jnp.arange(num_per_side, dtype=jnp.float32) + 0.5) / num_per_side
    values = jax.scipy.special.ndtri(probs)
    rows, cols = jnp.meshgrid(values[::-1], values, indexing="ij")
    return jnp.stack([cols.ravel(), rows.ravel()], axis=-1)

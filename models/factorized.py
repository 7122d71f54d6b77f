"""The factorized Bernoulli model of MNIST: one independent Bernoulli per pixel.

.. math::

    p(x) = \\prod_i \\mathrm{Bernoulli}(x_i; \\theta_i), \\qquad \\theta_i = \\sigma(\\ell_i)

Training maximises the log-likelihood plus a symmetric Beta prior with ``alpha``
pseudo-counts per outcome (``alpha`` imaginary all-ones and ``alpha`` all-zeros images):

.. math::

    \\log p(\\theta) = \\alpha \\sum_i [\\log\\theta_i + \\log(1-\\theta_i)] + \\text{const}.

Spread over a training set of :math:`N` images (the prior is counted once, so each
minibatch carries :math:`1/N` of it), the per-pixel objective is

.. math::

    J(\\ell_i) = \\bar x_i \\log\\sigma(\\ell_i) + (1-\\bar x_i)\\log\\sigma(-\\ell_i)
        + \\tfrac{\\alpha}{N}[\\log\\sigma(\\ell_i) + \\log\\sigma(-\\ell_i)],

where :math:`\\bar x_i` is the training mean of pixel :math:`i` (under dynamic binarisation
its expectation, the mean grey level ``pixel / 255``). Setting
:math:`dJ/d\\ell_i = \\bar x_i - \\theta_i + \\tfrac{\\alpha}{N}(1 - 2\\theta_i) = 0` gives the
closed form

.. math::

    \\theta_i^\\star = \\frac{N\\bar x_i + \\alpha}{N + 2\\alpha},

which :func:`closed_form_logits` computes. The objective is concave in the logits.

Which objective is trained, honestly: the examples and tests train on dynamically
binarised minibatches (fresh binary draws each step), so :math:`\\bar x_i` above is only
reached in expectation and the gradients are noisy twice over (minibatch and
binarisation). Their optimum is still exactly the closed form; what removes the noise is
the learning-rate schedule (Adam, cosine decay to 0, :func:`make_optimizer`), not an
exact objective. The trained model therefore agrees with the closed form to within the
remaining optimisation noise: its test NLL, not its every logit, is what is compared
(within 0.05 nats in the tests; rarely-on border pixels keep logit differences of order 1,
worth thousandths of a nat). Training on ``binarization="grey"`` instead would optimise the
exact expected log-likelihood (the cross-entropy with the grey levels), with the same
optimum and minibatch noise only.

The helpers here (:func:`component_log_likelihoods`, :func:`beta_log_prior`,
:func:`make_loss_fn`, :func:`make_optimizer`, :func:`evaluate_nll`) are shared by the
mixture (:mod:`models.mixture`) and the class-conditional model
(:mod:`models.class_conditional`). Evaluation goes through
:func:`models.evaluation.map_batches` with module-level batch functions, so it compiles
once per model structure and test-set shape, not once per call.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from genmath import bernoulli, latent
from models import evaluation, mnist
from models.mnist import IMAGE_SHAPE, NUM_PIXELS, flatten_images
from models.training import Batch, TrainConfig

#: Default Beta pseudo-count per outcome (Laplace smoothing).
PSEUDO_COUNT = 1.0
#: The binarisations the family trains on: a Bernoulli likelihood of grey levels is no
#: normalised density, so ``"grey"`` is left out.
BINARIZATIONS = ("dynamic", "threshold")


def component_log_likelihoods(x: jax.Array, logits: jax.Array) -> jax.Array:
    """``log p(x | k)`` under every row ``k`` of ``logits`` at once.

    Args:
      x: pixels in [0, 1] of shape ``(..., D)`` (binary, or grey levels for the expected
        log-likelihood of a dynamic binarisation).
      logits: finite logits of shape ``(K, D)``.

    Returns:
      ``(..., K)``: ``bernoulli.log_prob(x[..., None, :], logits=logits)``.

    The per-pixel terms :math:`\\log\\sigma(\\ell)` and :math:`\\log\\sigma(-\\ell)` come from
    ``bernoulli.log_prob`` evaluated without reduction at ``x = 1`` and ``x = 0``. The sum
    :math:`\\sum_i x_i\\log\\sigma(\\ell_{ki}) + (1-x_i)\\log\\sigma(-\\ell_{ki})` is linear in
    ``x``, so it is one matrix product with their difference plus the sum of the ``x = 0``
    terms, instead of a ``(..., K, D)`` tensor: that is what makes K = 500 components cheap.
    Values of ``x`` outside [0, 1] give NaN, as in ``bernoulli.log_prob``.
    """
    log_on = bernoulli.log_prob(1.0, logits=logits, axis=())
    log_off = bernoulli.log_prob(0.0, logits=logits, axis=())
    x = jnp.asarray(x, log_on.dtype)
    out = jnp.matmul(x, (log_on - log_off).T, precision=jax.lax.Precision.HIGHEST)
    out = out + jnp.sum(log_off, axis=-1)
    invalid = jnp.any((x < 0) | (x > 1), axis=-1, keepdims=True)
    return jnp.where(invalid, jnp.nan, out)


def beta_log_prior(logits: jax.Array, pseudo_count: float) -> jax.Array:
    """Symmetric Beta log-prior, up to a constant: ``pseudo_count`` ones and zeros per pixel.

    Written as the log-likelihood of those pseudo-observations, summed over every logit.
    """
    ones = bernoulli.log_prob(1.0, logits=logits, axis=tuple(range(jnp.ndim(logits))))
    zeros = bernoulli.log_prob(0.0, logits=logits, axis=tuple(range(jnp.ndim(logits))))
    return pseudo_count * (ones + zeros)


def expected_pixels(images, binarization: str) -> jax.Array:
    """``E[binarize(images, mode=binarization)]``: the grey levels for dynamic binarisation."""
    if binarization not in mnist.BINARIZATIONS:
        raise ValueError(
            f"expected_pixels: `binarization` must be one of {mnist.BINARIZATIONS}, "
            f"got {binarization!r}."
        )
    mode = "grey" if binarization == "dynamic" else binarization
    return mnist.binarize(images, mode=mode)


def closed_form_probs(
    images, *, binarization: str = "dynamic", pseudo_count: float = PSEUDO_COUNT
) -> np.ndarray:
    """The MAP ``theta`` in closed form: ``(sum of expected pixels + alpha) / (N + 2 alpha)``.

    Args:
      images: uint8 training images ``(N, 28, 28)``.
      binarization: how training binarises them (see :func:`expected_pixels`).
      pseudo_count: the Beta prior's ``alpha``; must be positive (alpha = 0 gives infinite
        logits for pixels that are always off).

    Returns:
      float64 numpy probabilities of shape ``(784,)``.
    """
    if not pseudo_count > 0:
        raise ValueError(f"closed_form_probs: `pseudo_count` must be > 0, got {pseudo_count}.")
    x = flatten_images(expected_pixels(images, binarization), fn="closed_form_probs")
    # Accumulate the per-pixel counts in float64 on the host: 60000 terms in float32 lose
    # several digits, more than the 0.05-nat agreement this is compared at.
    counts = np.sum(np.asarray(x), axis=0, dtype=np.float64)
    return (counts + pseudo_count) / (x.shape[0] + 2.0 * pseudo_count)


def closed_form_logits(
    images, *, binarization: str = "dynamic", pseudo_count: float = PSEUDO_COUNT
) -> jax.Array:
    """:func:`closed_form_probs` as float32 logits ``(784,)``."""
    probs = closed_form_probs(images, binarization=binarization, pseudo_count=pseudo_count)
    return bernoulli.logits_from_probs(jnp.asarray(probs, jnp.float32))


class FactorizedBernoulli(nnx.Module):
    """``p(x) = prod_i Bernoulli(x_i; sigmoid(logits_i))`` over the 784 pixels.

    Args:
      logits: initial logits ``(784,)``; zeros (every pixel 1/2) by default.
    """

    def __init__(self, logits: jax.Array | None = None):
        if logits is None:
            logits = jnp.zeros((NUM_PIXELS,))
        logits = jnp.asarray(logits)
        if logits.shape != (NUM_PIXELS,) or not jnp.issubdtype(logits.dtype, jnp.floating):
            raise ValueError(
                f"FactorizedBernoulli: `logits` must be floating of shape ({NUM_PIXELS},), "
                f"got {logits.dtype}{logits.shape}."
            )
        self.logits = nnx.Param(logits)

    @property
    def probs(self) -> jax.Array:
        """Per-pixel ``theta`` as a ``(28, 28)`` image."""
        return jax.nn.sigmoid(self.logits[...]).reshape(IMAGE_SHAPE)

    def log_prob(self, x: jax.Array) -> jax.Array:
        """``log p(x)`` in nats for images ``(..., 28, 28)`` or ``(..., 784)``: shape ``(...)``."""
        x = flatten_images(x, fn="FactorizedBernoulli.log_prob")
        return bernoulli.log_prob(x, logits=self.logits[...], axis=-1)

    def log_prior(self, pseudo_count: float = PSEUDO_COUNT) -> jax.Array:
        return beta_log_prior(self.logits[...], pseudo_count)

    def sample(self, key: jax.Array, num_samples: int) -> jax.Array:
        """``num_samples`` binary images ``(num_samples, 28, 28)``."""
        x = bernoulli.sample(key, logits=self.logits[...], sample_shape=(num_samples,))
        return x.reshape((num_samples, *IMAGE_SHAPE))


def make_loss_fn(num_train: int, **prior_kwargs):
    """The Trainer loss ``loss_fn(model, batch, key, step) -> (loss, metrics)``.

    The loss is the minibatch NLL minus ``1/num_train`` of the log-prior. Works for any
    model with ``log_prob(x)`` and ``log_prior(**prior_kwargs)`` (e.g. ``pseudo_count=...``;
    the mixture also takes ``weight_pseudo_count=...``); the labels, key and step are
    unused. Counting ``1/num_train`` of the prior per minibatch makes one epoch's expected
    loss the negative log-posterior divided by ``num_train``.
    """

    def loss_fn(model, batch: Batch, key: jax.Array, step: jax.Array):
        del key, step
        nll = -jnp.mean(model.log_prob(batch.images))
        loss = nll - model.log_prior(**prior_kwargs) / num_train
        return loss, {"nll": nll}

    return loss_fn


def train_steps(num_train: int, config: TrainConfig) -> int:
    """The optimizer steps of a run: ``epochs * (num_train // batch_size)``."""
    return config.epochs * (num_train // config.batch_size)


def make_optimizer(
    learning_rate: float, total_steps: int, *, warmup_steps: int = 0, b2: float = 0.95
) -> optax.GradientTransformation:
    """Adam with a cosine decay to zero over ``total_steps``.

    The decay is what makes the noisy gradient iterates settle on the optimum rather than
    jitter around it at the scale of the learning rate. The short second-moment memory
    (``b2 = 0.95`` rather than 0.999) matters for pixels that are (almost) always off: their
    gradient shrinks like ``sigmoid(logit)`` as the logit falls towards -11, and a long
    memory keeps normalising by the early, large gradients, so the steps collapse and those
    logits stall near -7 (a few hundredths of a nat in total, measured).
    """
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0 if warmup_steps else learning_rate,
        peak_value=learning_rate,
        warmup_steps=warmup_steps,
        decay_steps=max(total_steps, warmup_steps + 1),
        end_value=0.0,
    )
    return optax.adam(schedule, b2=b2)


# -------------------------------------------------------------------------- evaluation


def eval_images(fn: str, x) -> jax.Array:
    """A batch of images ``(N, 28, 28)`` or ``(N, 784)`` as float32 ``(N, 784)``."""
    x = flatten_images(x, fn=fn)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{fn}: `x` must be a non-empty batch of images, got shape {x.shape}.")
    return jnp.asarray(x, jnp.float32)


def _log_prob_batch(model, x, *, key):
    del key
    return model.log_prob(x)


def log_probs(model, x, *, batch_size: int = 1000) -> jax.Array:
    """``log p(x)`` in nats of every image of ``x`` ``(N, 28, 28)``: shape ``(N,)``.

    ``model`` is any module with ``log_prob(x)`` (this family's three models). Batches of
    ``batch_size`` bound the memory of models whose ``log_prob`` builds per-component
    arrays; the whole evaluation is one compiled call
    (:func:`models.evaluation.map_batches`), compiled once per model structure and shape.
    """
    x = eval_images("log_probs", x)
    return evaluation.map_batches(_log_prob_batch, model, x, batch_size=batch_size)


def evaluate_nll(model, x, *, batch_size: int = 1000) -> float:
    """Mean ``-log p(x)`` in nats over the binarised images ``x`` (see :func:`log_probs`)."""
    values = np.asarray(log_probs(model, x, batch_size=batch_size), np.float64)
    return float(-np.mean(values))


def bits_per_dim(nll_nats) -> float:
    """An NLL in nats per image as bits per pixel."""
    return float(latent.bits_per_dim(nll_nats, num_dims=NUM_PIXELS))

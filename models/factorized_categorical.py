"""The factorized categorical model of 8-bit MNIST: one independent 256-way categorical per pixel.

.. math::

    P(x) = \\prod_{i=1}^{784} p_{i, x_i}, \\qquad p_i = \\mathrm{softmax}(\\ell_i),
    \\quad x_i \\in \\{0, \\dots, 255\\}

It is the 8-bit analogue of the factorized Bernoulli model (:mod:`models.factorized`): a
proper distribution over the :math:`256^{784}` grey-level images, so its
:math:`-\\log_2 P(x) / 784` (:func:`bits_per_dim`, ``genmath.dequantize.bits_per_dim_8bit``)
is directly comparable with discretised likelihoods and dequantised flows on 8-bit MNIST.
The logits ``(784, 256)`` are one ``nnx.Param``; :meth:`FactorizedCategorical.log_prob` is
``genmath.categorical.log_prob`` summed over the pixel axis.

Training maximises the log-likelihood plus a symmetric Dirichlet(1 + ``alpha``) prior, that
is ``alpha`` pseudo-counts per level and pixel (``alpha`` imaginary images at every one of the 256
levels):

.. math::

    \\log p(\\ell) = \\alpha \\sum_i \\sum_{k=0}^{255} \\log p_{ik} + \\text{const}.

Spread over :math:`N` training images (each minibatch carries :math:`1/N` of the prior, as
in :func:`models.factorized.make_loss_fn`), the per-pixel objective is

.. math::

    J(\\ell_i) = \\sum_k \\bar f_{ik} \\log p_{ik} + \\tfrac{\\alpha}{N} \\sum_k \\log p_{ik},

with :math:`\\bar f_{ik} = n_{ik} / N` the fraction of training images whose pixel
:math:`i` is at level :math:`k`. Its gradient :math:`\\partial J / \\partial\\ell_{ik} =
\\bar f_{ik} - p_{ik} + \\tfrac{\\alpha}{N}(1 - 256\\, p_{ik})` vanishes at the closed form

.. math::

    p^\\star_{ik} = \\frac{n_{ik} + \\alpha}{N + 256\\,\\alpha},

which :func:`closed_form_probs` computes from exact integer counts. ``J`` is concave in the
logits; the optimum fixes the probabilities, and the logits up to a constant per pixel.

The choice of ``alpha`` (:data:`PSEUDO_COUNT` = 1, add-one smoothing, fixed before any
evaluation): with 256 levels and 60,000 images, most levels of most pixels are never seen
(the digits' strokes take a few dozen grey levels, the border pixels only 0), and the
maximum-likelihood estimate would give such a level probability 0 and a test image that
uses it :math:`-\\infty`. Add-one gives an unseen level :math:`1/60256` (11.0 nats) and
costs an always-black pixel :math:`-\\log(60001/60256) = 0.0042` nats. Smaller ``alpha``
trades those two costs the other way; ``python -m benchmarks.eightbit`` records the
trade-off on a held-out part of the training set (measured: ``alpha`` = 0.1 does best
there, by 0.0013 bits/dim; the differences are that small).

What is trained, honestly: the ``"8bit"`` data are deterministic (no binarisation noise),
so a minibatch's loss is an unbiased estimate of ``-J`` with minibatch noise only; Adam
with a cosine decay to zero (:func:`models.factorized.make_optimizer`) settles on the
closed form: after the example's default 5 epochs on the 60,000 images the test figures
differ by 0.0017 bits/dim (the issue's bar is 0.01; ``benchmarks/README.md``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmath import categorical, dequantize
from models.mnist import IMAGE_SHAPE, NUM_PIXELS, flatten_images

#: The grey levels of an 8-bit pixel.
NUM_LEVELS = 256
#: Default Dirichlet pseudo-count per level and pixel (add-one smoothing; see the module).
PSEUDO_COUNT = 1.0
#: The one training binarisation: the pixel values themselves (``models.mnist.binarize``).
BINARIZATIONS = ("8bit",)


def pixel_levels(x, *, fn: str = "pixel_levels") -> tuple[jax.Array, jax.Array]:
    """8-bit images as int32 levels ``(..., 784)`` and a per-image validity mask ``(...)``.

    Args:
      x: images ``(..., 28, 28)`` or ``(..., 784)``: integers, or floats holding integers
        (``models.mnist.binarize(images, mode="8bit")``), in ``[0, 255]``.
      fn: the caller, named in the shape error.

    Returns:
      ``(levels, valid)``: the levels (0 where a value is invalid) and whether every pixel
      of the image is an integer in ``[0, 255]`` (NaN, 127.5 or 256 are not).
    """
    x = flatten_images(x, fn=fn)
    if jnp.issubdtype(x.dtype, jnp.integer):
        x = x.astype(jnp.int32)  # against uint8, the bound 256 would wrap to 0
        ok = (x >= 0) & (x < NUM_LEVELS)
    else:
        ok = (x >= 0) & (x <= NUM_LEVELS - 1) & (x == jnp.floor(x))  # False for NaN
    levels = jnp.where(ok, x, 0).astype(jnp.int32)
    return levels, jnp.all(ok, axis=-1)


def level_counts(images) -> np.ndarray:
    """``n[i, k]``: how many images have pixel ``i`` at level ``k``, exact int64 ``(784, 256)``.

    Args:
      images: uint8 images ``(N, 28, 28)`` (or ``(N, 784)``).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"level_counts: `images` must be uint8 pixels, got {images.dtype}.")
    flat = np.asarray(flatten_images(images, fn="level_counts")).reshape(-1, NUM_PIXELS)
    # One bincount over (pixel, level) pairs: exact integers, no float accumulation.
    index = np.arange(NUM_PIXELS, dtype=np.int64) * NUM_LEVELS + flat
    counts = np.bincount(index.ravel(), minlength=NUM_PIXELS * NUM_LEVELS)
    return counts.reshape(NUM_PIXELS, NUM_LEVELS)


def closed_form_probs(images, *, pseudo_count: float = PSEUDO_COUNT) -> np.ndarray:
    """The MAP probabilities ``(n[i, k] + alpha) / (N + 256 alpha)``, float64 ``(784, 256)``.

    Args:
      images: uint8 training images ``(N, 28, 28)``.
      pseudo_count: the Dirichlet prior's ``alpha``; must be positive (0 would give unseen
        levels probability 0 and infinite logits).
    """
    if not pseudo_count > 0:
        raise ValueError(f"closed_form_probs: `pseudo_count` must be > 0, got {pseudo_count}.")
    counts = level_counts(images)
    total = counts[0].sum()  # N, the same for every pixel
    return (counts + pseudo_count) / (total + NUM_LEVELS * pseudo_count)


def closed_form_logits(images, *, pseudo_count: float = PSEUDO_COUNT) -> jax.Array:
    """:func:`closed_form_probs` as float32 logits ``(784, 256)`` (the log-probabilities)."""
    probs = closed_form_probs(images, pseudo_count=pseudo_count)
    return jnp.asarray(np.log(probs), jnp.float32)  # the log in float64, then rounded


def dirichlet_log_prior(logits: jax.Array, pseudo_count: float) -> jax.Array:
    """Symmetric Dirichlet(1 + alpha) log-prior, up to a constant: ``alpha sum_i sum_k log p_ik``.

    That is ``alpha`` times the log-likelihood of one observation of every level at every
    pixel; its gradient is ``alpha (1 - 256 p_ik)``.
    """
    # A plain log-softmax: categorical.log_prob of the 256 labels per pixel gives the same
    # value but cost 3.6x the time (a gather), and cross_entropy from a constant uniform
    # distribution had XLA constant-folding its reductions for seconds per compile.
    return pseudo_count * jnp.sum(jax.nn.log_softmax(logits, axis=-1))


class FactorizedCategorical(nnx.Module):
    """``P(x) = prod_i softmax(logits_i)[x_i]`` over the 784 pixels' 256 levels.

    Args:
      logits: initial logits ``(784, 256)``; zeros (every level 1/256, 8 bits/dim) by
        default.
    """

    def __init__(self, logits: jax.Array | None = None):
        if logits is None:
            logits = jnp.zeros((NUM_PIXELS, NUM_LEVELS))
        logits = jnp.asarray(logits)
        shape = (NUM_PIXELS, NUM_LEVELS)
        if logits.shape != shape or not jnp.issubdtype(logits.dtype, jnp.floating):
            raise ValueError(
                f"FactorizedCategorical: `logits` must be floating of shape {shape}, "
                f"got {logits.dtype}{logits.shape}."
            )
        self.logits = nnx.Param(logits)

    @property
    def log_probs(self) -> jax.Array:
        """``log p_ik``, shape ``(784, 256)`` (the logits normalised per pixel)."""
        return jax.nn.log_softmax(self.logits[...], axis=-1)

    @property
    def mean_image(self) -> jax.Array:
        """The expected grey level of every pixel, ``E[x_i] / 255``, as a ``(28, 28)`` image."""
        levels = jnp.arange(NUM_LEVELS, dtype=self.logits[...].dtype) / (NUM_LEVELS - 1)
        return (jax.nn.softmax(self.logits[...], axis=-1) @ levels).reshape(IMAGE_SHAPE)

    def log_prob(self, x: jax.Array) -> jax.Array:
        """``log P(x)`` in nats of 8-bit images ``(..., 28, 28)`` or ``(..., 784)``: ``(...)``.

        ``x`` holds levels 0..255 (integers, or floats from ``binarize(mode="8bit")``). An
        image with any other value (127.5, 256, NaN; or grey levels in [0, 1] that are not
        0 or 1) gets NaN, not a silently rounded level.
        """
        levels, valid = pixel_levels(x, fn="FactorizedCategorical.log_prob")
        log_prob = categorical.log_prob(levels, logits=self.logits[...], axis=-1)
        return jnp.where(valid, log_prob, jnp.nan)

    def log_prior(self, pseudo_count: float = PSEUDO_COUNT) -> jax.Array:
        return dirichlet_log_prior(self.logits[...], pseudo_count)

    def sample(self, key: jax.Array, num_samples: int) -> jax.Array:
        """``num_samples`` images of levels 0..255 ``(num_samples, 28, 28)``, logits' dtype."""
        levels = categorical.sample(key, logits=self.logits[...], sample_shape=(num_samples,))
        return levels.astype(self.logits[...].dtype).reshape((num_samples, *IMAGE_SHAPE))


def bits_per_dim(nll_nats) -> float:
    """An NLL in nats per 8-bit image as bits per pixel (``dequantize.bits_per_dim_8bit``)."""
    return float(dequantize.bits_per_dim_8bit(-np.float64(nll_nats), num_dims=NUM_PIXELS))

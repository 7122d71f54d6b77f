"""Decoder likelihoods ``p(x | z)``: one small object per family, over genmath.

A decoder network outputs ``params``, raw values of shape ``(..., 784 * outputs_per_pixel)``;
a likelihood reads them:

* ``log_prob(x, params)``: ``log p(x | z)`` summed over the 784 pixels, shape ``(...)``;
* ``mean(params)``: ``E[x | z]``, ``(..., 784)``, what pictures show;
* ``sample(key, params)``: a draw of ``x``, ``(..., 784)``;
* ``output_bias(pixel_means)``: the decoder output bias that makes the decoder's output at
  initialisation the training set's mean image, or ``None`` where that means nothing.

Pixel values are in the units of the data the family models (``white`` is the value of a
white pixel: 1 for binary and [0, 1] grey images, 255 for 8-bit pixels); the networks see
``x / white``. A family whose ``log_prob`` draws noise (``needs_key``, e.g. uniform
dequantisation) takes ``log_prob(x, params, key=key)`` and returns a one-draw estimate.

Families are registered by name in :data:`LIKELIHOODS`; :func:`make_likelihood` builds one
from its name and keyword options. Adding a family is one class with the
:func:`register` decorator::

    @register("my-family")
    class MyFamily(Likelihood):
        outputs_per_pixel = 2
        binarizations = ("grey",)
        def log_prob(self, x, params): ...
        def mean(self, params): ...
        def sample(self, key, params): ...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmath import bernoulli, dequantize, discretized_logistic, normal
from models.training import ConfigError

#: Name -> likelihood class; filled by :func:`register`.
LIKELIHOODS: dict[str, type[Likelihood]] = {}


def register(name: str) -> Callable[[type[Likelihood]], type[Likelihood]]:
    """Class decorator: makes a :class:`Likelihood` available as ``likelihood=name``."""

    def add(cls: type[Likelihood]) -> type[Likelihood]:
        if name in LIKELIHOODS:
            raise ValueError(f"register: a likelihood called {name!r} exists already.")
        cls.name = name
        LIKELIHOODS[name] = cls
        return cls

    return add


def make_likelihood(name: str, options: dict[str, Any] | None = None, *, rngs: nnx.Rngs):
    """The registered likelihood ``name``, built with its keyword ``options``."""
    if name not in LIKELIHOODS:
        raise ConfigError("likelihood", f"must be one of {tuple(LIKELIHOODS)}, got {name!r}")
    cls = LIKELIHOODS[name]
    options = dict(options or {})
    for option in options:
        if option not in cls.option_names:
            raise ConfigError(option, f"is not an option of the {name!r} likelihood")
    return cls(**options, rngs=rngs)


class Likelihood(nnx.Module):
    """The interface of a decoder likelihood (see the module docstring)."""

    name: ClassVar[str] = ""
    #: Decoder outputs per pixel (an instance may set its own, from its options).
    outputs_per_pixel: int = 1
    #: The data binarisations (``models.mnist.BINARIZATIONS``) it is a likelihood of; the
    #: first is the default.
    binarizations: ClassVar[tuple[str, ...]] = ()
    #: Keyword options of the constructor.
    option_names: ClassVar[tuple[str, ...]] = ()
    #: What ``log_prob`` is: a log-probability, or a log-density.
    kind: ClassVar[str] = "log p(x)"
    #: The value of a white pixel in the data (255 for 8-bit pixels).
    white: ClassVar[float] = 1.0
    #: Whether ``log_prob`` draws noise and so takes ``key=`` (see the module docstring).
    needs_key: ClassVar[bool] = False

    @classmethod
    def check_options(cls, **options) -> None:
        """Raises :class:`models.training.ConfigError` naming a bad option."""
        del options

    def log_prob(self, x: jax.Array, params: jax.Array) -> jax.Array:
        raise NotImplementedError

    def mean(self, params: jax.Array) -> jax.Array:
        raise NotImplementedError

    def sample(self, key: jax.Array, params: jax.Array) -> jax.Array:
        raise NotImplementedError

    def output_bias(self, pixel_means: np.ndarray) -> np.ndarray | None:
        del pixel_means
        return None


@register("bernoulli")
class Bernoulli(Likelihood):
    """Independent Bernoulli pixels; ``params`` are logits. For binary (binarised) images.

    The output bias from the data is Burda et al. (2015)'s initialisation: the logits of the
    training set's mean pixel intensities, clipped to [0.001, 0.999].
    """

    binarizations = ("dynamic", "threshold")

    def __init__(self, *, rngs: nnx.Rngs | None = None):
        del rngs

    def log_prob(self, x, params):
        return bernoulli.log_prob(x, logits=params, axis=-1)

    def mean(self, params):
        return jax.nn.sigmoid(params)

    def sample(self, key, params):
        return bernoulli.sample(key, logits=params)

    def output_bias(self, pixel_means):
        probs = np.clip(np.asarray(pixel_means, np.float64), 1e-3, 1.0 - 1e-3)
        return np.log(probs) - np.log1p(-probs)


def _softplus_inverse(y: float) -> float:
    return y + math.log(-math.expm1(-y))


@register("gaussian")
class Gaussian(Likelihood):
    """Independent Gaussian grey levels; ``params`` are the means' logits (mean = sigmoid).

    Options:
      fixed_variance: a fixed pixel variance (the log-likelihood is then a constant minus
        a scaled squared error), or ``None`` (default) for a learned log-scale.
      scale: a learned log-scale per ``"pixel"`` (default) or one ``"global"`` log-scale.
      min_scale: lower bound of a learned scale, in (0, 1) (default 0.01; the scale starts
        at 1). Pixels that are constant in the training set would otherwise drive their
        scale to 0 and the density to infinity.

    It is a density on [0, 1]^784: its "nats" are not comparable with a probability's.
    """

    binarizations = ("grey",)
    option_names = ("fixed_variance", "scale", "min_scale")
    kind = "log-density on [0, 1]^784"
    SCALES: ClassVar[tuple[str, ...]] = ("pixel", "global")

    def __init__(
        self,
        *,
        fixed_variance: float | None = None,
        scale: str = "pixel",
        min_scale: float = 1e-2,
        rngs: nnx.Rngs | None = None,
    ):
        del rngs
        self.check_options(fixed_variance=fixed_variance, scale=scale, min_scale=min_scale)
        self.fixed_variance = fixed_variance
        self.min_scale = float(min_scale)
        if fixed_variance is None:
            shape = (784,) if scale == "pixel" else ()
            # Start at unit scale: log_scale = log(min_scale) + softplus(raw) = 0.
            raw = _softplus_inverse(-math.log(min_scale))
            self.raw_log_scale = nnx.Param(jnp.full(shape, raw, jnp.float32))

    @classmethod
    def check_options(cls, *, fixed_variance=None, scale="pixel", min_scale=1e-2) -> None:
        if fixed_variance is not None and not 0.0 < fixed_variance < math.inf:
            raise ConfigError(
                "fixed_variance", f"must be a positive finite number, got {fixed_variance}"
            )
        if scale not in cls.SCALES:
            raise ConfigError("scale", f"must be one of {cls.SCALES}, got {scale!r}")
        # A learned scale starts at 1 (pixels in [0, 1]), which must lie above its bound.
        if not 0.0 < min_scale < 1.0:
            raise ConfigError("min_scale", f"must lie in (0, 1), got {min_scale}")

    def log_scale(self) -> jax.Array | float:
        """The log standard deviation: fixed (a Python float), per pixel or global."""
        if self.fixed_variance is not None:
            return 0.5 * math.log(self.fixed_variance)
        return math.log(self.min_scale) + jax.nn.softplus(self.raw_log_scale[...])

    def log_prob(self, x, params):
        return normal.log_prob(x, loc=self.mean(params), log_scale=self.log_scale(), axis=-1)

    def mean(self, params):
        # Grey levels lie in [0, 1]; a sigmoid keeps the mean there.
        return jax.nn.sigmoid(params)

    def sample(self, key, params):
        return normal.sample(key, loc=self.mean(params), log_scale=self.log_scale())

    def output_bias(self, pixel_means):
        probs = np.clip(np.asarray(pixel_means, np.float64), 1e-3, 1.0 - 1e-3)
        return np.log(probs) - np.log1p(-probs)


# ------------------------------------------------------------------------ 8-bit pixels

#: Floor of the learned log-scales of the 8-bit likelihoods, on the [0, 1] scale. At
#: e^-8 = 3.4e-4 (a twelfth of a grey level) a component centred on a grey level still
#: puts 99.4 % of its mass there; the floor keeps a scale, and its gradients, away from 0.
MIN_LOG_SCALE_8BIT = -8.0


def _floored(raw: jax.Array, floor: float) -> jax.Array:
    # floor + softplus(raw - floor): about raw well above the floor, never below it, and
    # with a gradient everywhere (a hard clip would strand a log-scale under the floor).
    return floor + jax.nn.softplus(raw - floor)


def _unfloored(value: np.ndarray, floor: float) -> np.ndarray:
    """The raw output that :func:`_floored` maps to ``value`` (> floor)."""
    gap = np.asarray(value, np.float64) - floor
    return floor + gap + np.log(-np.expm1(-gap))


def _mean_and_std(pixel_means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # A [0, 1] variable of mean m has variance at most m (1 - m) (reached by a binary
    # one, which MNIST nearly is): a scale that covers the data at initialisation.
    means = np.clip(np.asarray(pixel_means, np.float64), 1e-3, 1.0 - 1e-3)
    return means, np.sqrt(means * (1.0 - means))


@register("logistic-mixture")
class LogisticMixture(Likelihood):
    """A per-pixel mixture of discretised logistics over the 256 grey levels (PixelCNN++).

    For 8-bit pixels ``x`` in {0, ..., 255}. ``params`` hold per pixel, in this order, the
    ``components`` mixture logits, locations and raw log-scales. A location is on the [0, 1]
    scale and not squashed, so a component can sit beyond 0 or 1 and give an edge level
    (MNIST's background 0, its strokes' 255) nearly all of its mass; a log-scale is kept
    above :data:`MIN_LOG_SCALE_8BIT`. ``log_prob`` is
    :func:`genmath.discretized_logistic.mixture_log_prob`: the log-probability of the 8-bit
    image, so its bits/dim compare directly with any other discrete model of the same data.

    Options:
      components: mixture components per pixel (default 5).

    The output bias from the data starts every component at the pixel's mean intensity
    ``m``, with the scale of a logistic of standard deviation ``sqrt(m (1 - m))``, and equal
    weights; the decoder's random output weights tell the components apart.

    References:
      T. Salimans, A. Karpathy, X. Chen, D. P. Kingma, *PixelCNN++*, ICLR 2017.
    """

    binarizations = ("8bit",)
    option_names = ("components",)
    kind = "log P(x) of the 8-bit image (discretised logistic mixture)"
    white = 255.0

    def __init__(self, *, components: int = 5, rngs: nnx.Rngs | None = None):
        del rngs
        self.check_options(components=components)
        self.components = int(components)
        self.outputs_per_pixel = 3 * self.components

    @classmethod
    def check_options(cls, *, components=5) -> None:
        if isinstance(components, bool) or not isinstance(components, int) or components < 1:
            raise ConfigError("components", f"must be a positive integer, got {components!r}")

    def mixture(self, params: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(logits, loc, log_scale)`` of the components, each ``(..., 784, components)``."""
        per_pixel = params.reshape(*params.shape[:-1], -1, self.outputs_per_pixel)
        logits, loc, raw = jnp.split(per_pixel, 3, axis=-1)
        return logits, loc, _floored(raw, MIN_LOG_SCALE_8BIT)

    def pixel_log_prob(self, x: jax.Array, params: jax.Array) -> jax.Array:
        """``log P(x_i | z)`` of every pixel: ``(..., 784)``."""
        logits, loc, log_scale = self.mixture(params)
        return discretized_logistic.mixture_log_prob(
            x, logits=logits, loc=loc, log_scale=log_scale, axis=()
        )

    def log_prob(self, x, params):
        logits, loc, log_scale = self.mixture(params)
        return discretized_logistic.mixture_log_prob(
            x, logits=logits, loc=loc, log_scale=log_scale, axis=-1
        )

    def mean(self, params):
        """``E[x | z]`` in grey levels (0 to 255), exactly: the sum of ``P(x >= j)``."""
        logits, loc, log_scale = self.mixture(params)
        weights = jax.nn.softmax(logits, axis=-1)
        inv_scale = jnp.exp(-log_scale)

        # E[x] = sum_{j=1}^{255} P(x >= j), with P(x >= j) = sum_k w_k sigmoid((mu_k -
        # (j - 1/2)/255) / s_k): 255 thresholds in a loop keep the memory at one level's.
        def add_level(j, total):
            edge = (j - 0.5) / 255.0
            return total + jnp.sum(weights * jax.nn.sigmoid((loc - edge) * inv_scale), axis=-1)

        return jax.lax.fori_loop(1, 256, add_level, jnp.zeros(loc.shape[:-1], loc.dtype))

    def sample(self, key, params):
        logits, loc, log_scale = self.mixture(params)
        draws = discretized_logistic.mixture_sample(
            key, logits=logits, loc=loc, log_scale=log_scale
        )
        return draws.astype(params.dtype)

    def output_bias(self, pixel_means):
        means, std = _mean_and_std(pixel_means)
        # A logistic of scale s has standard deviation s pi / sqrt(3).
        log_scale = np.log(std * math.sqrt(3.0) / math.pi)
        raw = _unfloored(log_scale, MIN_LOG_SCALE_8BIT)
        k = self.components
        columns = [np.zeros((means.size, k)), np.repeat(means[:, None], k, 1)]
        return np.concatenate([*columns, np.repeat(raw[:, None], k, 1)], axis=1)


@register("dequantized-gaussian")
class DequantizedGaussian(Likelihood):
    """A Gaussian density on uniformly dequantised 8-bit pixels, reported as a bound on log P(x).

    For 8-bit pixels ``x`` in {0, ..., 255}. ``params`` hold per pixel the logit of the mean
    (mean = sigmoid, in [0, 1]) and a raw log-scale (kept above ``log(min_scale)``) of a
    Gaussian density ``p(y | z)`` on ``y = (x + u) / 256``, ``u ~ U[0, 1)``
    (:func:`genmath.dequantize.uniform`). ``log_prob(x, params, key=key)`` draws one ``u``
    per pixel from ``key`` and returns

        log p((x + u) / 256 | z) - 784 log 256   (genmath.dequantize.log_prob_lower_bound),

    the log-density of ``x + u`` on the scale of the integers. Its expectation over ``u`` is
    a lower bound on ``log P(x | z)``, the probability of the 8-bit image under the model
    ``P(x | z) = integral of p(y | z) over x's cube of side 1/256`` (whose mass outside [0, 1)
    is lost, which only loosens the bound). So in a VAE the ELBO with ``(z, u)`` drawn from
    ``q(z | x) U(u)`` lower-bounds ``log P(x)``, and so does the importance-weighted bound
    over ``K`` pairs ``(z_k, u_k)``: both compare with a discrete model's log-likelihood.
    The training objective is the same quantity (the constant changes no gradient).

    Options:
      min_scale: lower bound of the Gaussian's standard deviation on the [0, 1] scale
        (default 1e-3). A pixel that is always 0 puts ``y`` uniform on [0, 1/256); the best
        Gaussian fit to that has standard deviation ``1/(256 sqrt 12) = 1.1e-3``, so a floor
        at 1e-3 costs such pixels nothing, while a smaller one lets the density explode.

    ``mean`` and ``sample`` are in grey levels: ``sample`` rounds a Gaussian draw down to
    its level, clipped to [0, 255]; ``mean`` is ``256 mu - 1/2`` clipped to [0, 255], the
    mean level when the density is smooth over a level (about ``E[x | z]``).

    References:
      L. Theis, A. van den Oord, M. Bethge, *A note on the evaluation of generative
      models*, ICLR 2016, §3.1.
    """

    binarizations = ("8bit",)
    option_names = ("min_scale",)
    kind = (
        "lower bound on log P(x) of the 8-bit image (Gaussian density of uniformly "
        "dequantised pixels, minus 784 log 256)"
    )
    white = 255.0
    needs_key = True
    outputs_per_pixel = 2

    def __init__(self, *, min_scale: float = 1e-3, rngs: nnx.Rngs | None = None):
        del rngs
        self.check_options(min_scale=min_scale)
        self.min_scale = float(min_scale)

    @classmethod
    def check_options(cls, *, min_scale=1e-3) -> None:
        if not (isinstance(min_scale, (int, float)) and 0.0 < min_scale < 1.0):
            raise ConfigError("min_scale", f"must be in (0, 1), got {min_scale!r}")

    def gaussian(self, params: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The Gaussian's ``(loc, log_scale)`` on the [0, 1] scale, each ``(..., 784)``."""
        per_pixel = params.reshape(*params.shape[:-1], -1, 2)
        loc = jax.nn.sigmoid(per_pixel[..., 0])
        return loc, _floored(per_pixel[..., 1], math.log(self.min_scale))

    def log_density(self, y: jax.Array, params: jax.Array) -> jax.Array:
        """``log p(y | z)``, the log-density on [0, 1]^784 of dequantised pixels ``y``."""
        loc, log_scale = self.gaussian(params)
        return normal.log_prob(y, loc=loc, log_scale=log_scale, axis=-1)

    def log_prob(self, x, params, *, key):
        loc, _ = self.gaussian(params)
        y = dequantize.uniform(key, jnp.broadcast_to(x, jnp.broadcast_shapes(x.shape, loc.shape)))
        return dequantize.log_prob_lower_bound(self.log_density(y, params), num_dims=y.shape[-1])

    def mean(self, params):
        loc, _ = self.gaussian(params)
        return jnp.clip(256.0 * loc - 0.5, 0.0, 255.0)

    def sample(self, key, params):
        loc, log_scale = self.gaussian(params)
        y = normal.sample(key, loc=loc, log_scale=log_scale)
        return jnp.clip(jnp.floor(256.0 * y), 0.0, 255.0)

    def output_bias(self, pixel_means):
        means, std = _mean_and_std(pixel_means)
        raw = _unfloored(np.log(np.maximum(std, 2.0 * self.min_scale)), math.log(self.min_scale))
        return np.stack([np.log(means) - np.log1p(-means), raw], axis=1)

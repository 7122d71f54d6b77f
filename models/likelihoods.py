"""Decoder likelihoods ``p(x | z)``: one small object per family, over genmath.

A decoder network outputs ``params``, raw values of shape ``(..., 784 * outputs_per_pixel)``;
a likelihood reads them:

* ``log_prob(x, params)``: ``log p(x | z)`` summed over the 784 pixels, shape ``(...)``;
* ``mean(params)``: ``E[x | z]``, ``(..., 784)``, what pictures show;
* ``sample(key, params)``: a draw of ``x``, ``(..., 784)``;
* ``output_bias(pixel_means)``: the decoder output bias that makes the decoder's output at
  initialisation the training set's mean image, or ``None`` where that means nothing.

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

from genmath import bernoulli, normal
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
    #: Decoder outputs per pixel.
    outputs_per_pixel: ClassVar[int] = 1
    #: The data binarisations (``models.mnist.BINARIZATIONS``) it is a likelihood of; the
    #: first is the default.
    binarizations: ClassVar[tuple[str, ...]] = ()
    #: Keyword options of the constructor.
    option_names: ClassVar[tuple[str, ...]] = ()
    #: What ``log_prob`` is: a log-probability, or a log-density.
    kind: ClassVar[str] = "log p(x)"

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
      min_scale: lower bound of a learned scale (default 0.01). Pixels that are constant in
        the training set would otherwise drive their scale, and the density, to infinity.

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
        if fixed_variance is not None and not fixed_variance > 0.0:
            raise ConfigError("fixed_variance", f"must be positive, got {fixed_variance}")
        if scale not in cls.SCALES:
            raise ConfigError("scale", f"must be one of {cls.SCALES}, got {scale!r}")
        if not min_scale > 0.0:
            raise ConfigError("min_scale", f"must be positive, got {min_scale}")

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

"""MADE: an exact-likelihood autoregressive model of binary images (Germain et al. 2015).

The chain rule writes any distribution over ``D`` binary pixels, taken in an ordering
``o`` (a permutation of the pixels), as a product of one-dimensional conditionals:

.. math::

    p(x) = \\prod_{t=1}^{D} p(x_{o_t} \\mid x_{o_1}, \\dots, x_{o_{t-1}}),
    \\qquad
    p(x_{o_t} = 1 \\mid x_{o_{<t}}) = \\sigma(\\ell_{o_t}(x_{o_{<t}})).

MADE computes all ``D`` logits ``l_d`` in *one* pass of a dense network whose weights are
masked so that output ``d`` sees only the pixels before ``d`` in the ordering. Every unit
gets a degree: pixel ``d`` the degree ``m(d)`` = its position in the ordering (1..D), each
hidden unit ``k`` of layer ``l`` a degree ``m^l(k)`` drawn uniformly from
``[min_k' m^{l-1}(k'), D - 1]``. A connection is kept when the degrees allow it:

.. math::

    M^{W^l}_{k' k} = [m^{l-1}(k') \\le m^l(k)] \\ \\text{(hidden)},\\qquad
    M^{V}_{k d} = [m^L(k) < m(d)] \\ \\text{(output)},\\qquad
    M^{A}_{d' d} = [m(d') < m(d)] \\ \\text{(direct input to output)},

so a path from pixel ``d'`` to output ``d`` exists only if ``m(d') < m(d)``: the network
is autoregressive, and ``log p(x) = sum_d log Bernoulli(x_d; sigma(l_d))`` is
:func:`genmath.bernoulli.log_prob` of the image under the logits, *exact*, with no bound and
no sampling. :class:`MaskedDense` is ``h -> h (W ⊙ M) + b``; the optional connectivity
conditioning of the paper adds ``1ᵀ(U ⊙ M)``, a bias that tells each unit which of its
inputs are connected.

Order- and connectivity-agnostic training (the paper's section 4): the model holds a
fixed set of ``num_masks`` orderings and connectivities, drawn once from ``mask_seed``
(mask 0 keeps the raster ordering); each training step draws one of them, so one set of
weights learns ``num_masks`` autoregressive models. At test time their average is again a
distribution, the paper's ensemble:

.. math::

    p_{\\text{ens}}(x) = \\frac{1}{M} \\sum_{m=1}^{M} p(x \\mid \\text{mask } m),\\qquad
    \\log p_{\\text{ens}}(x) = \\operatorname{logsumexp}_m \\log p(x \\mid m) - \\log M,

computed by :func:`genmath.bayes.evidence` over the mask axis (:func:`ensemble`). By
Jensen's inequality it is at least the mean of the single-mask log-likelihoods.

Sampling is sequential: :meth:`MADE.sample` draws the ``D`` pixels in the mask's ordering,
one ``lax.scan`` of ``D`` steps; the first layer's pre-activation is updated by one row
per step (``a += x_d W_d``) instead of recomputed, so a step of a one-hidden-layer model
costs ``O(H)`` per image. :func:`generate` is its jit-compiled form.

The class-conditional variant feeds the label as an extra, unmasked input (a learned
per-class bias of the first hidden layer and of the output logits), so it models
``p(x | y)`` exactly; with a learned ``p(y)`` it is a generative classifier by Bayes' rule,
``p(y | x) = p(x, y) / sum_y' p(x, y')`` (:func:`genmath.bayes.posterior`), and its
marginal ``log p(x)`` is :func:`genmath.bayes.evidence` of the same log-joint.

:func:`evaluate` scores a model on a fixed binarised test set through
:func:`models.evaluation.map_batches`, compiled once per model structure and shape.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmath import bayes, bernoulli, categorical, latent
from models import evaluation, networks
from models.mnist import IMAGE_SHAPE, NUM_CLASSES, NUM_PIXELS, flatten_images
from models.training import Batch, ConfigError, check_choice, check_positive_int

#: Training binarisations a binary model accepts.
BINARIZATIONS = ("dynamic", "threshold")

#: Output-bias initialisation clips the training pixel means to [eps, 1 - eps].
OUTPUT_BIAS_CLIP = 1e-3


@dataclasses.dataclass(frozen=True)
class MADEConfig:
    """What :func:`make_made` builds.

    Attributes:
      hidden: widths of the masked hidden layers.
      num_masks: size of the fixed set of orderings/connectivities trained on (1: one
        ordering, the raster order, and one connectivity).
      order_agnostic: masks 1.. use random orderings; ``False`` keeps the raster
        ordering for every mask (only the connectivity changes).
      direct: masked direct connections from the inputs to the outputs (an
        autoregressive logistic regression added to the network's logits).
      condition_on_mask: the paper's connectivity conditioning, ``1ᵀ(U ⊙ M)``.
      activation: a key of :data:`models.networks.ACTIVATIONS`.
      conditional: the label is an extra input; the model is ``p(y) p(x | y)``.
      num_classes: labels of a conditional model.
      num_dims: ``D``, the number of binary pixels (784 for MNIST; small in tests).
      mask_seed: seed of the fixed set of masks.
      output_bias_init: start the output bias at the logits of the training pixel means
        (clipped to [1e-3, 1 - 1e-3]); needs ``pixel_means`` in :func:`make_made`.
    """

    hidden: tuple[int, ...] = (500,)
    num_masks: int = 1
    order_agnostic: bool = True
    direct: bool = True
    condition_on_mask: bool = False
    activation: str = "relu"
    conditional: bool = False
    num_classes: int = NUM_CLASSES
    num_dims: int = NUM_PIXELS
    mask_seed: int = 0
    output_bias_init: bool = True

    def __post_init__(self):
        # Lists (e.g. from argparse) become tuples, so configs stay hashable.
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if not self.hidden:
            raise ConfigError("hidden", "must name at least one hidden layer")
        for width in self.hidden:
            check_positive_int("hidden", width)
        for name in ("num_masks", "num_classes", "num_dims"):
            check_positive_int(name, getattr(self, name))
        if self.num_dims < 2:
            raise ConfigError("num_dims", f"must be at least 2, got {self.num_dims}")
        if self.num_classes < 2:
            raise ConfigError("num_classes", f"must be at least 2, got {self.num_classes}")
        for name in (
            "order_agnostic",
            "direct",
            "condition_on_mask",
            "conditional",
            "output_bias_init",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be True or False, got {getattr(self, name)!r}")
        seed = self.mask_seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError("mask_seed", f"must be an integer >= 0, got {seed!r}")
        check_choice("activation", self.activation, tuple(networks.ACTIVATIONS))


# -------------------------------------------------------------------------------- masks


class Degrees(nnx.Variable):
    """Integer connectivity degrees of the fixed set of masks (state, never trained)."""


class Masks(NamedTuple):
    """The boolean masks of one ordering and connectivity, ``(inputs, outputs)`` each."""

    hidden: tuple[jax.Array, ...]  # (D, H1), (H1, H2), ...
    output: jax.Array  # (H_L, D)
    direct: jax.Array  # (D, D)


def make_degrees(
    num_dims: int,
    hidden: tuple[int, ...],
    num_masks: int,
    *,
    order_agnostic: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Degrees of ``num_masks`` orderings and connectivities, drawn from ``seed``.

    Returns:
      ``input_degrees`` ``(num_masks, D)``: ``m(d)``, the position (1..D) of pixel ``d``
      in mask ``i``'s ordering (the raster ordering for mask 0, and for all masks when
      ``order_agnostic`` is false); and per hidden layer ``(num_masks, H_l)`` degrees,
      uniform on ``[min m^{l-1}, D - 1]`` (the paper's rule, so no unit is useless).
      Mask 0 is the same whatever ``order_agnostic`` and ``num_masks`` are.
    """
    rng = np.random.default_rng(seed)
    inputs = np.empty((num_masks, num_dims), np.int32)
    layers = [np.empty((num_masks, width), np.int32) for width in hidden]
    for mask in range(num_masks):
        if mask == 0 or not order_agnostic:
            inputs[mask] = np.arange(1, num_dims + 1)
        else:
            inputs[mask] = rng.permutation(num_dims) + 1
        low = 1
        for degrees in layers:
            degrees[mask] = rng.integers(low, num_dims, size=degrees.shape[1])  # [low, D-1]
            low = int(degrees[mask].min())
    return inputs, layers


def connectivity(input_degrees: jax.Array, hidden_degrees) -> Masks:
    """The masks of one ordering from its degrees (``(D,)`` and one ``(H_l,)`` per layer).

    Hidden: ``m^{l-1}(k') <= m^l(k)``; output and direct: strictly less than ``m(d)``.
    """
    layers, previous = [], input_degrees
    for degrees in hidden_degrees:
        layers.append(previous[:, None] <= degrees[None, :])
        previous = degrees
    output = previous[:, None] < input_degrees[None, :]
    direct = input_degrees[:, None] < input_degrees[None, :]
    return Masks(tuple(layers), output, direct)


class MaskedDense(nnx.Module):
    """A dense layer with a mask on its kernel: ``h -> h (W ⊙ M) + b [+ 1ᵀ(U ⊙ M)]``.

    The mask is an argument of every call (a boolean ``(in_features, out_features)``
    array), so one layer serves every ordering and connectivity of a MADE.

    Args:
      in_features, out_features: the kernel's shape.
      use_bias: add ``b``.
      condition_on_mask: add ``1ᵀ(U ⊙ M)`` (Germain et al.'s connectivity conditioning):
        each output unit learns a bias per connected input, so it knows its connectivity.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        condition_on_mask: bool = False,
        rngs: nnx.Rngs,
    ):
        init = nnx.initializers.lecun_normal()
        shape = (in_features, out_features)
        self.kernel = nnx.Param(init(rngs.params(), shape))
        self.bias = nnx.Param(jnp.zeros((out_features,))) if use_bias else None
        self.mask_kernel = nnx.Param(init(rngs.params(), shape)) if condition_on_mask else None
        self.out_features = out_features

    def masked_kernel(self, mask: jax.Array) -> jax.Array:
        """``W ⊙ M``."""
        kernel = self.kernel[...]
        return kernel * mask.astype(kernel.dtype)

    def offset(self, mask: jax.Array) -> jax.Array:
        """The input-independent part, ``b + 1ᵀ(U ⊙ M)``: ``(out_features,)``."""
        total = jnp.zeros((self.out_features,), self.kernel.dtype)
        if self.bias is not None:
            total = total + self.bias[...]
        if self.mask_kernel is not None:
            u = self.mask_kernel[...]
            total = total + jnp.sum(u * mask.astype(u.dtype), axis=0)
        return total

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        return x @ self.masked_kernel(mask) + self.offset(mask)


# -------------------------------------------------------------------------------- model


class MADE(nnx.Module):
    """A MADE for ``D`` binary pixels, optionally class-conditional.

    Args:
      num_dims: ``D`` (784 for MNIST, whose images may then be passed as ``(..., 28, 28)``).
      hidden: widths of the masked hidden layers.
      num_masks, order_agnostic, direct, condition_on_mask, activation, mask_seed: see
        :class:`MADEConfig`.
      num_classes: ``None`` for ``p(x)``; ``C`` for ``p(y) p(x | y)`` with the label as an
        extra input (then ``labels`` are required wherever ``x | y`` is meant).
      rngs: the initial parameters' keys.

    Images are float arrays of zeros and ones, ``(..., D)``; labels integers of the batch
    shape. Every method that takes ``mask_index`` (an int or a traced int32 in
    ``[0, num_masks)``) uses that one mask; ``num_masks`` arguments mean the first
    ``num_masks`` masks of the set (all by default).
    """

    def __init__(
        self,
        num_dims: int = NUM_PIXELS,
        hidden: tuple[int, ...] = (500,),
        *,
        num_masks: int = 1,
        order_agnostic: bool = True,
        direct: bool = True,
        condition_on_mask: bool = False,
        activation: str = "relu",
        num_classes: int | None = None,
        mask_seed: int = 0,
        rngs: nnx.Rngs,
    ):
        hidden = tuple(int(h) for h in hidden)
        if num_dims < 2 or not hidden or min(hidden) < 1 or num_masks < 1:
            raise ValueError(
                "MADE: needs num_dims >= 2, at least one hidden layer of positive width and "
                f"num_masks >= 1, got num_dims={num_dims}, hidden={hidden}, "
                f"num_masks={num_masks}."
            )
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"MADE: `num_classes` must be None or >= 2, got {num_classes}.")
        if activation not in networks.ACTIVATIONS:
            raise ValueError(
                f"MADE: `activation` must be one of {tuple(networks.ACTIVATIONS)}, "
                f"got {activation!r}."
            )
        inputs, layers = make_degrees(
            num_dims, hidden, num_masks, order_agnostic=order_agnostic, seed=mask_seed
        )
        self.input_degrees = Degrees(jnp.asarray(inputs))
        self.hidden_degrees = nnx.List([Degrees(jnp.asarray(d)) for d in layers])
        conditioned = {"condition_on_mask": condition_on_mask, "rngs": rngs}
        self.hidden_layers = nnx.List(
            [MaskedDense(a, b, **conditioned) for a, b in itertools.pairwise((num_dims, *hidden))]
        )
        self.output_layer = MaskedDense(hidden[-1], num_dims, **conditioned)
        self.direct_layer = (
            MaskedDense(num_dims, num_dims, use_bias=False, rngs=rngs) if direct else None
        )
        if num_classes is not None:
            init = nnx.initializers.lecun_normal()
            self.label_hidden = nnx.Param(init(rngs.params(), (num_classes, hidden[0])))
            self.label_output = nnx.Param(jnp.zeros((num_classes, num_dims)))
            self.class_logits = nnx.Param(jnp.zeros((num_classes,)))
        self.num_dims = int(num_dims)
        self.num_masks = int(num_masks)
        self.activation = activation
        self.num_classes = num_classes

    # ------------------------------------------------------------------ structure

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    def masks(self, mask_index) -> Masks:
        """The masks of mask ``mask_index`` of the fixed set."""
        index = self._mask_index(mask_index)
        return connectivity(
            self.input_degrees[...][index], [d[...][index] for d in self.hidden_degrees]
        )

    def ordering(self, mask_index) -> jax.Array:
        """The pixels in mask ``mask_index``'s order: ``(D,)`` indices, first pixel first."""
        return jnp.argsort(self.input_degrees[...][self._mask_index(mask_index)])

    def _mask_index(self, mask_index):
        if isinstance(mask_index, (int, np.integer)) and not 0 <= mask_index < self.num_masks:
            raise ValueError(
                f"MADE: `mask_index` must lie in [0, {self.num_masks}), got {mask_index}."
            )
        return mask_index

    def _ensemble_size(self, num_masks: int | None) -> int:
        if num_masks is None:
            return self.num_masks
        if isinstance(num_masks, bool) or not isinstance(num_masks, (int, np.integer)):
            raise TypeError(f"MADE: `num_masks` must be a static int, got {num_masks!r}.")
        if not 1 <= num_masks <= self.num_masks:
            raise ValueError(
                f"MADE: `num_masks` must lie in [1, {self.num_masks}], got {num_masks}."
            )
        return int(num_masks)

    def _inputs(self, x, fn: str) -> jax.Array:
        if self.num_dims == NUM_PIXELS:
            return flatten_images(x, fn=fn)
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.num_dims:
            raise ValueError(f"{fn}: `x` must have shape (..., {self.num_dims}), got {x.shape}.")
        return x

    def _labels(self, labels, fn: str) -> jax.Array | None:
        if not self.conditional:
            return None
        if labels is None:
            raise ValueError(f"{fn}: a class-conditional MADE needs `labels`.")
        labels = jnp.asarray(labels)
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise TypeError(f"{fn}: `labels` must be integers, got dtype {labels.dtype}.")
        return labels

    def _label_rows(self, table: nnx.Param, labels: jax.Array) -> jax.Array:
        # Labels outside [0, C) give NaN rows, hence NaN log-probabilities.
        return jnp.take(table[...], labels, axis=0, mode="fill", fill_value=jnp.nan)

    # ------------------------------------------------------------------ the network

    def _input_terms(self, x: jax.Array, masks: Masks) -> tuple[jax.Array, jax.Array]:
        """The parts that depend on ``x`` but not on the label: the first layer's
        pre-activation and the direct connections' logits."""
        first = self.hidden_layers[0](x, masks.hidden[0])
        direct = 0.0 if self.direct_layer is None else self.direct_layer(x, masks.direct)
        return first, direct

    def _logits_from(self, first, direct, masks: Masks, labels) -> jax.Array:
        act = networks.ACTIVATIONS[self.activation]
        if labels is not None:
            first = first + self._label_rows(self.label_hidden, labels)
        h = act(first)
        for layer, mask in zip(self.hidden_layers[1:], masks.hidden[1:], strict=True):
            h = act(layer(h, mask))
        logits = self.output_layer(h, masks.output) + direct
        if labels is not None:
            logits = logits + self._label_rows(self.label_output, labels)
        return logits

    def logits(self, x, labels=None, *, mask_index=0) -> jax.Array:
        """The ``D`` conditional logits ``l_d(x_{<d})`` under one mask: ``(..., D)``."""
        x = self._inputs(x, "MADE.logits")
        labels = self._labels(labels, "MADE.logits")
        masks = self.masks(mask_index)
        return self._logits_from(*self._input_terms(x, masks), masks, labels)

    def log_prob(self, x, labels=None, *, mask_index=0) -> jax.Array:
        """Exact ``log p(x)`` (``log p(x | y)`` if conditional) under one mask: ``(...)``.

        ``sum_d x_d log sigma(l_d) + (1 - x_d) log sigma(-l_d)`` by
        :func:`genmath.bernoulli.log_prob`.
        """
        x = self._inputs(x, "MADE.log_prob")
        logits = self.logits(x, labels, mask_index=mask_index)
        return bernoulli.log_prob(x, logits=logits, axis=-1)

    def mask_log_probs(self, x, labels=None, *, num_masks: int | None = None) -> jax.Array:
        """``log p(x | mask m)`` for the first ``num_masks`` masks: ``(num_masks, ...)``.

        A ``lax.map`` over the masks: one mask's activations in memory at a time.
        """
        count = self._ensemble_size(num_masks)
        x = self._inputs(x, "MADE.mask_log_probs")
        labels = self._labels(labels, "MADE.mask_log_probs")
        return jax.lax.map(
            lambda index: self.log_prob(x, labels, mask_index=index),
            jnp.arange(count, dtype=jnp.int32),
        )

    def ensemble_log_prob(self, x, labels=None, *, num_masks: int | None = None) -> jax.Array:
        """The ensemble ``log (1/M) sum_m p(x | m)`` over the first ``num_masks`` masks."""
        return ensemble(self.mask_log_probs(x, labels, num_masks=num_masks), axis=0)

    # ------------------------------------------------------- the conditional model

    def _require_conditional(self, fn: str) -> None:
        if not self.conditional:
            raise ValueError(f"{fn}: only a class-conditional MADE (num_classes=C) has it.")

    @property
    def log_class_probs(self) -> jax.Array:
        """``log p(y)``, shape ``(C,)`` (conditional models)."""
        self._require_conditional("MADE.log_class_probs")
        labels = jnp.arange(self.num_classes)
        return categorical.log_prob(labels, logits=self.class_logits[...])

    def mask_class_log_probs(self, x, *, num_masks: int | None = None) -> jax.Array:
        """``log p(x | y = c, mask m)`` for every mask and class: ``(num_masks, ..., C)``.

        The label enters after the first layer's matrix product and the direct term, so
        those are computed once per mask and shared by the ``C`` classes.
        """
        self._require_conditional("MADE.mask_class_log_probs")
        count = self._ensemble_size(num_masks)
        x = self._inputs(x, "MADE.mask_class_log_probs")
        classes = jnp.arange(self.num_classes)

        def one_mask(index):
            masks = self.masks(index)
            first, direct = self._input_terms(x, masks)

            def one_class(label):
                labels = jnp.full(x.shape[:-1], label)
                logits = self._logits_from(first, direct, masks, labels)
                return bernoulli.log_prob(x, logits=logits, axis=-1)

            return jnp.moveaxis(jax.lax.map(one_class, classes), 0, -1)

        return jax.lax.map(one_mask, jnp.arange(count, dtype=jnp.int32))

    def log_joint(self, x, *, num_masks: int | None = None) -> jax.Array:
        """``log p(x, y) = log p(y) + log p_ens(x | y)`` for every class: ``(..., C)``."""
        per_mask = self.mask_class_log_probs(x, num_masks=num_masks)
        return self.log_class_probs + ensemble(per_mask, axis=0)

    def log_posterior(self, x, *, num_masks: int | None = None) -> jax.Array:
        """``log p(y | x)`` by Bayes' rule (:func:`genmath.bayes.posterior`): ``(..., C)``."""
        return bayes.posterior(self.log_joint(x, num_masks=num_masks), axis=-1)

    def log_marginal(self, x, *, num_masks: int | None = None) -> jax.Array:
        """``log p(x) = logsumexp_y log p(x, y)`` (:func:`genmath.bayes.evidence`): ``(...)``."""
        return bayes.evidence(self.log_joint(x, num_masks=num_masks), axis=-1)

    def predict(self, x, *, num_masks: int | None = None) -> jax.Array:
        """The Bayes classifier ``argmax_y p(y | x)``: ``(...)``."""
        return jnp.argmax(self.log_joint(x, num_masks=num_masks), axis=-1)

    # ------------------------------------------------------------------ sampling

    def sample(self, key: jax.Array, num_samples: int, labels=None, *, mask_index=0):
        """``num_samples`` exact draws from mask ``mask_index``'s autoregressive model.

        ``D`` sequential steps in one ``lax.scan``: step ``t`` computes the logit of pixel
        ``o_t`` from the pixels drawn so far and draws it (:func:`genmath.bernoulli.sample`).
        The first layer's pre-activation is carried and updated by one kernel row per
        drawn pixel; deeper layers are recomputed; only the one output logit is computed.
        A class-conditional model needs ``labels`` of shape ``(num_samples,)``; labels
        outside ``[0, C)`` give NaN images.

        Returns:
          float zeros and ones, ``(num_samples, 28, 28)`` for ``D = 784``, else
          ``(num_samples, D)``.
        """
        labels = self._labels(labels, "MADE.sample")
        if labels is not None and labels.shape != (num_samples,):
            raise ValueError(
                f"MADE.sample: `labels` must have shape ({num_samples},), got {labels.shape}."
            )
        act = networks.ACTIVATIONS[self.activation]
        masks = self.masks(mask_index)
        order = self.ordering(mask_index)
        first = self.hidden_layers[0]
        w_first = first.masked_kernel(masks.hidden[0])  # (D, H1)
        pre = jnp.broadcast_to(first.offset(masks.hidden[0]), (num_samples, w_first.shape[1]))
        deeper = [
            (layer.masked_kernel(mask), layer.offset(mask))
            for layer, mask in zip(self.hidden_layers[1:], masks.hidden[1:], strict=True)
        ]
        w_out = self.output_layer.masked_kernel(masks.output)  # (H_L, D)
        b_out = jnp.broadcast_to(
            self.output_layer.offset(masks.output), (num_samples, w_out.shape[1])
        )
        if labels is not None:
            pre = pre + self._label_rows(self.label_hidden, labels)
            b_out = b_out + self._label_rows(self.label_output, labels)
        w_direct = (
            None if self.direct_layer is None else self.direct_layer.masked_kernel(masks.direct)
        )

        def step(carry, inputs):
            x, pre = carry
            pixel, step_key = inputs
            h = act(pre)
            for kernel, bias in deeper:
                h = act(h @ kernel + bias)
            logit = h @ w_out[:, pixel] + b_out[:, pixel]
            if w_direct is not None:
                logit = logit + x @ w_direct[:, pixel]
            value = bernoulli.sample(step_key, logits=logit)
            x = x.at[:, pixel].set(value)
            return (x, pre + value[:, None] * w_first[pixel]), None

        x = jnp.zeros((num_samples, self.num_dims), w_first.dtype)
        keys = jax.random.split(key, self.num_dims)
        (x, _), _ = jax.lax.scan(step, (x, pre), (order, keys))
        if labels is not None:
            valid = (labels >= 0) & (labels < self.num_classes)
            x = jnp.where(valid[:, None], x, jnp.nan)
        if self.num_dims == NUM_PIXELS:
            return x.reshape(num_samples, *IMAGE_SHAPE)
        return x


def ensemble(log_probs: jax.Array, *, axis: int = 0) -> jax.Array:
    """``log (1/M) sum_m exp(log_probs_m)`` along ``axis`` (``M`` its length).

    :func:`genmath.bayes.evidence` (the logsumexp over the masks, as over the values of a
    discrete latent with a uniform prior) minus ``log M``.
    """
    count = log_probs.shape[axis]
    return bayes.evidence(log_probs, axis=axis) - math.log(count)


@functools.partial(nnx.jit, static_argnames=("num_samples",))
def generate(model: MADE, key: jax.Array, num_samples: int, labels=None, mask_index=0):
    """:meth:`MADE.sample`, jit-compiled (``num_samples`` static; ``mask_index`` traced)."""
    return model.sample(key, num_samples, labels, mask_index=jnp.asarray(mask_index, jnp.int32))


def make_made(config: MADEConfig, *, rngs: nnx.Rngs, pixel_means: np.ndarray | None = None) -> MADE:
    """The MADE that ``config`` describes.

    ``pixel_means``: the training set's mean image in [0, 1] (``(D,)``), for
    ``config.output_bias_init``: the output bias starts at its clipped logits, so that at
    initialisation every conditional is the pixel's marginal.
    """
    model = MADE(
        config.num_dims,
        config.hidden,
        num_masks=config.num_masks,
        order_agnostic=config.order_agnostic,
        direct=config.direct,
        condition_on_mask=config.condition_on_mask,
        activation=config.activation,
        num_classes=config.num_classes if config.conditional else None,
        mask_seed=config.mask_seed,
        rngs=rngs,
    )
    if config.output_bias_init and pixel_means is not None:
        means = np.clip(
            np.asarray(pixel_means, np.float64).reshape(-1), OUTPUT_BIAS_CLIP, 1 - OUTPUT_BIAS_CLIP
        )
        if means.shape != (config.num_dims,):
            raise ValueError(
                f"make_made: `pixel_means` must have {config.num_dims} entries, got {means.size}."
            )
        bias = model.output_layer.bias
        bias[...] = jnp.asarray(np.log(means) - np.log1p(-means), bias.dtype)
    return model


def num_parameters(model: nnx.Module) -> int:
    """The number of trained parameters (``nnx.Param`` entries)."""
    return int(sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))))


# ------------------------------------------------------------------------------ training


def loss_fn(model: MADE, batch: Batch, key: jax.Array, step: jax.Array):
    """The Trainer loss: the minibatch mean ``-log p(x)`` under one mask drawn from ``key``.

    Order- and connectivity-agnostic training: each step draws a mask uniformly from the
    model's fixed set (always mask 0 when there is one). A conditional model minimises
    ``-log p(x, y) = -log p(y) - log p(x | y)``. Metrics: ``nll`` (``-log p(x)``, or
    ``-log p(x | y)``) and, conditional, ``nll_joint``.
    """
    del step
    mask_index = jax.random.randint(key, (), 0, model.num_masks)
    labels = batch.labels if model.conditional else None
    nll = -jnp.mean(model.log_prob(batch.images, labels, mask_index=mask_index))
    if not model.conditional:
        return nll, {"nll": nll}
    log_py = categorical.log_prob(batch.labels, logits=model.class_logits[...])
    nll_joint = nll - jnp.mean(log_py)
    return nll_joint, {"nll": nll, "nll_joint": nll_joint}


# ---------------------------------------------------------------------------- evaluation


def _eval_inputs(fn: str, model: MADE, x, labels):
    x = model._inputs(x, fn)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{fn}: `x` must be a non-empty batch of images, got shape {x.shape}.")
    if labels is None:
        if model.conditional:
            raise ValueError(f"{fn}: a class-conditional MADE needs `labels`.")
        labels = jnp.zeros((x.shape[0],), jnp.int32)
    labels = jnp.asarray(labels)
    if labels.shape != x.shape[:1]:
        raise ValueError(
            f"{fn}: `labels` must have shape {x.shape[:1]} to match `x`, got {labels.shape}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{fn}: `labels` must be integers, got dtype {labels.dtype}.")
    return jnp.asarray(x, jnp.float32), labels


def _scores_batch(model, x, labels, *, key, num_masks):
    del key
    if not model.conditional:
        per_mask = model.mask_log_probs(x, num_masks=num_masks)  # (M, B)
        return {"per_mask": per_mask.T, "log_px": ensemble(per_mask, axis=0)}
    per_class = model.mask_class_log_probs(x, num_masks=num_masks)  # (M, B, C)
    index = jnp.broadcast_to(labels[None, :, None], (*per_class.shape[:2], 1))
    per_mask = jnp.take_along_axis(per_class, index, axis=-1)[..., 0]  # (M, B)
    log_joint = model.log_class_probs + ensemble(per_class, axis=0)  # (B, C)
    return {
        "per_mask": per_mask.T,
        "log_px": bayes.evidence(log_joint, axis=-1),
        "log_px_given_y": ensemble(per_mask, axis=0),
        "log_pxy": jnp.take_along_axis(log_joint, labels[:, None], axis=-1)[:, 0],
        "correct": jnp.argmax(bayes.posterior(log_joint, axis=-1), axis=-1) == labels,
    }


def log_probs(model: MADE, x, labels=None, *, num_masks: int | None = None, batch_size: int = 500):
    """Per-image scores of a test set, one compiled call (:func:`models.evaluation.map_batches`).

    Returns a dict of arrays with leading axis ``N``: ``per_mask`` ``(N, num_masks)`` (the
    single masks' ``log p(x)``, or ``log p(x | y)``) and ``log_px`` (the ensemble's
    ``log p(x)``; for a conditional model the marginal ``logsumexp_y log p(x, y)``); a
    conditional model adds ``log_px_given_y``, ``log_pxy`` and ``correct`` (Bayes' rule).
    """
    x, labels = _eval_inputs("made.log_probs", model, x, labels)
    count = model._ensemble_size(num_masks)
    return evaluation.map_batches(
        _scores_batch, model, x, labels, batch_size=batch_size, options={"num_masks": count}
    )


def evaluate(
    model: MADE, x, labels=None, *, num_masks: int | None = None, batch_size: int = 500
) -> dict:
    """Test metrics of binarised ``x`` (``(N, 28, 28)`` or ``(N, D)``), in nats per image.

    Returns a dict of Python floats: ``nll`` (the ensemble's ``-log p(x)`` over the first
    ``num_masks`` masks; for a conditional model the marginal over the classes),
    ``bits_per_dim``, ``nll_per_mask`` (a list: each single mask's mean ``-log p(x)``, or
    ``-log p(x | y)``), ``nll_mean_single_mask`` and ``num_masks``; a conditional model adds
    ``nll_conditional`` (ensemble ``-log p(x | y)``), ``nll_joint`` and ``accuracy``.
    """
    scores = log_probs(model, x, labels, num_masks=num_masks, batch_size=batch_size)
    scores = {name: np.asarray(value, np.float64) for name, value in scores.items()}
    nll = float(-np.mean(scores["log_px"]))
    per_mask = (-np.mean(scores["per_mask"], axis=0)).tolist()
    metrics = {
        "nll": nll,
        "bits_per_dim": bits_per_dim(nll, num_dims=model.num_dims),
        "nll_per_mask": per_mask,
        "nll_mean_single_mask": float(np.mean(per_mask)),
        "num_masks": len(per_mask),
    }
    if model.conditional:
        metrics["nll_conditional"] = float(-np.mean(scores["log_px_given_y"]))
        metrics["nll_joint"] = float(-np.mean(scores["log_pxy"]))
        metrics["accuracy"] = float(np.mean(scores["correct"]))
    return metrics


def bits_per_dim(nll_nats, *, num_dims: int = NUM_PIXELS) -> float:
    """An NLL in nats per image as bits per pixel."""
    return float(latent.bits_per_dim(nll_nats, num_dims=num_dims))

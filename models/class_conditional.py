"""A class-conditional factorized Bernoulli model: Bernoulli naive Bayes as a generative model.

.. math::

    p(x, y) = p(y) \\prod_i \\mathrm{Bernoulli}(x_i; \\theta_{yi})

It is the mixture of :mod:`models.mixture` with the component observed: the label.
Classification is Bayes' rule, ``p(y | x) = p(x, y) / sum_y' p(x, y')``
(``genmath.bayes.posterior`` over the class axis of the log-joint), and the same log-joint
gives the marginal ``log p(x)`` (``genmath.bayes.evidence``) and class-conditional samples,
which a discriminative classifier of ``p(y | x)`` cannot.

Fitting maximises ``log p(x, y)`` plus a Beta prior (``pseudo_count``) on every ``theta``
and a Dirichlet prior (``class_pseudo_count``) on ``p(y)``; the optimum is the closed form
``theta_yi = (sum_{n: y_n = y} x_ni + a) / (N_y + 2a)``, ``p(y) = (N_y + b) / (N + C b)``
(:func:`closed_form`), and gradient training through the shared Trainer
(:func:`make_loss_fn`) reaches it. :func:`evaluate` scores a model on a test set in one
compiled call (:func:`models.evaluation.map_batches`), compiled once per shape.

For contrast, :class:`LogisticRegression` is the discriminative counterpart on the same
pixels: it models ``p(y | x)`` only (no ``log p(x)``, no samples), and usually classifies
better.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmath import bayes, bernoulli, categorical
from models import evaluation, factorized
from models.factorized import PSEUDO_COUNT
from models.mnist import IMAGE_SHAPE, NUM_CLASSES, NUM_PIXELS, flatten_images
from models.training import Batch

#: Default Dirichlet pseudo-count per class on p(y).
CLASS_PSEUDO_COUNT = 1.0


class ClassConditionalBernoulli(nnx.Module):
    """``p(x, y) = softmax(class_logits)_y prod_i Bernoulli(x_i; sigmoid(logits_yi))``.

    Args:
      num_classes: C.
      logits: initial pixel logits ``(C, 784)``; zeros by default.
      class_logits: initial class logits ``(C,)``; zeros (uniform) by default.
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        *,
        logits: jax.Array | None = None,
        class_logits: jax.Array | None = None,
    ):
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise TypeError(
                f"ClassConditionalBernoulli: `num_classes` must be an int, got {num_classes!r}."
            )
        if num_classes < 2:
            raise ValueError(
                f"ClassConditionalBernoulli: `num_classes` must be >= 2, got {num_classes}."
            )
        logits = jnp.zeros((num_classes, NUM_PIXELS)) if logits is None else jnp.asarray(logits)
        class_logits = (
            jnp.zeros((num_classes,)) if class_logits is None else jnp.asarray(class_logits)
        )
        for name, value, shape in (
            ("logits", logits, (num_classes, NUM_PIXELS)),
            ("class_logits", class_logits, (num_classes,)),
        ):
            if value.shape != shape or not jnp.issubdtype(value.dtype, jnp.floating):
                raise ValueError(
                    f"ClassConditionalBernoulli: `{name}` must be floating of shape {shape}, "
                    f"got {value.dtype}{value.shape}."
                )
        self.num_classes = int(num_classes)
        self.logits = nnx.Param(logits)
        self.class_logits = nnx.Param(class_logits)

    @property
    def log_class_probs(self) -> jax.Array:
        """``log p(y)``, shape ``(C,)``."""
        labels = jnp.arange(self.num_classes)
        return categorical.log_prob(labels, logits=self.class_logits[...])

    @property
    def probs(self) -> jax.Array:
        """``theta_y`` as images ``(C, 28, 28)``."""
        return jax.nn.sigmoid(self.logits[...]).reshape((-1, *IMAGE_SHAPE))

    def log_joint(self, x: jax.Array) -> jax.Array:
        """``log p(x, y)`` for every class, shape ``(..., C)``."""
        x = flatten_images(x, fn="ClassConditionalBernoulli.log_joint")
        return self.log_class_probs + factorized.component_log_likelihoods(x, self.logits[...])

    def log_prob(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """``log p(x, y)`` for the given ``labels``, or the marginal ``log p(x)`` without.

        Args:
          x: images ``(..., 28, 28)`` or ``(..., 784)``.
          labels: integer labels broadcastable with ``x``'s batch shape, or ``None``.
        """
        if labels is None:
            return bayes.evidence(self.log_joint(x), axis=-1)
        x = flatten_images(x, fn="ClassConditionalBernoulli.log_prob")
        log_py = categorical.log_prob(labels, logits=self.class_logits[...])
        # Gathering the labels' templates costs (..., 784) rather than (..., C, 784).
        logits = jnp.take(self.logits[...], jnp.asarray(labels), axis=0, mode="clip")
        return log_py + bernoulli.log_prob(x, logits=logits, axis=-1)

    def log_posterior(self, x: jax.Array) -> jax.Array:
        """``log p(y | x)`` by Bayes' rule, shape ``(..., C)``."""
        return bayes.posterior(self.log_joint(x), axis=-1)

    def predict(self, x: jax.Array) -> jax.Array:
        """The most probable class ``argmax_y p(y | x)``, shape ``(...)``."""
        return jnp.argmax(self.log_joint(x), axis=-1)

    def log_prior(
        self, pseudo_count: float = PSEUDO_COUNT, class_pseudo_count: float = CLASS_PSEUDO_COUNT
    ) -> jax.Array:
        """Beta prior on every ``theta`` plus a symmetric Dirichlet on ``p(y)``."""
        return factorized.beta_log_prior(
            self.logits[...], pseudo_count
        ) + class_pseudo_count * jnp.sum(self.log_class_probs)

    def sample(self, key: jax.Array, labels: jax.Array) -> jax.Array:
        """Images of the chosen classes, ``x ~ p(x | y)``: shape ``labels.shape + (28, 28)``.

        Labels outside ``[0, C)`` give NaN images.
        """
        labels = jnp.asarray(labels)
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise TypeError(
                f"ClassConditionalBernoulli.sample: `labels` must be integers, got {labels.dtype}."
            )
        logits = jnp.take(self.logits[...], labels, axis=0, mode="clip")
        x = bernoulli.sample(key, logits=logits)
        # Labels outside [0, C) give NaN images, like categorical.log_prob gives NaN.
        valid = (labels >= 0) & (labels < self.num_classes)
        x = jnp.where(valid[..., None], x, jnp.nan)
        return x.reshape((*labels.shape, *IMAGE_SHAPE))


def make_loss_fn(
    num_train: int,
    pseudo_count: float = PSEUDO_COUNT,
    class_pseudo_count: float = CLASS_PSEUDO_COUNT,
):
    """The Trainer loss ``loss_fn(model, batch, key, step) -> (loss, metrics)``.

    The loss is the minibatch ``-log p(x, y)`` minus ``1/num_train`` of the log-prior; the
    metrics are that NLL (``nll_joint``) and the minibatch accuracy.
    """

    def loss_fn(model, batch: Batch, key: jax.Array, step: jax.Array):
        del key, step
        x, labels = batch.images, batch.labels
        nll = -jnp.mean(model.log_prob(x, labels))
        loss = nll - model.log_prior(pseudo_count, class_pseudo_count) / num_train
        accuracy = jnp.mean(model.predict(x) == labels)
        return loss, {"nll_joint": nll, "accuracy": accuracy}

    return loss_fn


def closed_form(
    images,
    labels,
    *,
    num_classes: int = NUM_CLASSES,
    binarization: str = "dynamic",
    pseudo_count: float = PSEUDO_COUNT,
    class_pseudo_count: float = CLASS_PSEUDO_COUNT,
) -> ClassConditionalBernoulli:
    """The MAP model in closed form from per-class pixel counts (Bernoulli naive Bayes).

    Args:
      images: uint8 training images ``(N, 28, 28)``.
      labels: integer labels ``(N,)`` in ``[0, num_classes)``.
      num_classes: C.
      binarization: how training binarises (the counts use the expected pixels).
      pseudo_count, class_pseudo_count: the priors' pseudo-counts, both > 0.
    """
    if not (pseudo_count > 0 and class_pseudo_count > 0):
        raise ValueError(
            "closed_form: `pseudo_count` and `class_pseudo_count` must be > 0, got "
            f"{pseudo_count} and {class_pseudo_count}."
        )
    labels = np.asarray(labels)
    if labels.shape != (images.shape[0],) or labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"closed_form: `labels` must be ({images.shape[0]},) integers in [0, {num_classes}), "
            f"got shape {labels.shape}."
        )
    x = flatten_images(factorized.expected_pixels(images, binarization), fn="closed_form")
    # float64 host accumulation, as in factorized.closed_form_logits.
    x = np.asarray(x)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    sums = np.stack([np.sum(x[labels == c], axis=0, dtype=np.float64) for c in range(num_classes)])
    probs = (sums + pseudo_count) / (counts[:, None] + 2.0 * pseudo_count)
    class_probs = (counts + class_pseudo_count) / (len(labels) + num_classes * class_pseudo_count)
    return ClassConditionalBernoulli(
        num_classes,
        logits=bernoulli.logits_from_probs(jnp.asarray(probs, jnp.float32)),
        class_logits=jnp.log(jnp.asarray(class_probs, jnp.float32)),
    )


# -------------------------------------------------------------------------- evaluation


def _eval_labels(fn: str, labels, num: int) -> jax.Array:
    labels = jnp.asarray(labels)
    if labels.shape != (num,):
        raise ValueError(
            f"{fn}: `labels` must have shape ({num},) to match `x`, got {labels.shape}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{fn}: `labels` must be integers, got dtype {labels.dtype}.")
    return labels


def _scores_batch(model, x, labels, *, key):
    del key
    log_joint = model.log_joint(x)
    return {
        "correct": jnp.argmax(log_joint, axis=-1) == labels,
        "log_px": bayes.evidence(log_joint, axis=-1),
        "log_pxy": jnp.take_along_axis(log_joint, labels[:, None], axis=-1)[:, 0],
    }


def evaluate(model: ClassConditionalBernoulli, x, labels, *, batch_size: int = 1000) -> dict:
    """Test metrics on binarised ``x``: accuracy, mean ``-log p(x)`` and ``-log p(x, y)``.

    One compiled call over batches of ``batch_size`` (:func:`models.evaluation.map_batches`),
    compiled once per model structure and shape: a second call compiles nothing.

    Returns a dict of Python floats: ``accuracy``, ``nll`` (marginal), ``nll_joint``.
    """
    x = factorized.eval_images("class_conditional.evaluate", x)
    labels = _eval_labels("class_conditional.evaluate", labels, x.shape[0])
    scores = evaluation.map_batches(_scores_batch, model, x, labels, batch_size=batch_size)
    scores = {name: np.asarray(value, np.float64) for name, value in scores.items()}
    return {
        "accuracy": float(np.mean(scores["correct"])),
        "nll": float(-np.mean(scores["log_px"])),
        "nll_joint": float(-np.mean(scores["log_pxy"])),
    }


# --------------------------------------------------- the discriminative counterpart


class LogisticRegression(nnx.Module):
    """``p(y | x) = softmax(W x + b)`` on the same pixels (zero-initialised; the objective is
    convex, so no random start is needed). It models ``p(y | x)`` only."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        self.weights = nnx.Param(jnp.zeros((NUM_PIXELS, num_classes)))
        self.bias = nnx.Param(jnp.zeros((num_classes,)))

    def __call__(self, x: jax.Array) -> jax.Array:
        """Class logits ``(..., C)`` of images ``(..., 28, 28)`` or ``(..., 784)``."""
        x = flatten_images(x, fn="LogisticRegression")
        return x @ self.weights[...] + self.bias[...]


def logistic_loss(model: LogisticRegression, batch: Batch, key: jax.Array, step: jax.Array):
    """The Trainer loss of :class:`LogisticRegression`: the mean ``-log p(y | x)``."""
    del key, step
    logits = model(batch.images)
    loss = -jnp.mean(categorical.log_prob(batch.labels, logits=logits))
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, axis=-1) == batch.labels)}


def _correct_batch(model, x, labels, *, key):
    del key
    return jnp.argmax(model(x), axis=-1) == labels


def classifier_accuracy(model, x, labels, *, batch_size: int = 1000) -> float:
    """Test accuracy of a classifier ``model(x) -> class logits`` (e.g. LogisticRegression)."""
    x = factorized.eval_images("classifier_accuracy", x)
    labels = _eval_labels("classifier_accuracy", labels, x.shape[0])
    correct = evaluation.map_batches(_correct_batch, model, x, labels, batch_size=batch_size)
    return float(np.mean(np.asarray(correct, np.float64)))

"""A mixture of factorized Bernoullis: a discrete latent ``z`` picks one of K pixel templates.

.. math::

    p(x) = \\sum_{k=1}^K \\pi_k \\prod_i \\mathrm{Bernoulli}(x_i; \\theta_{ki})

The log-likelihood is exact: the log-joint ``log pi_k + log p(x | z = k)`` over the
component axis goes through ``genmath.bayes.evidence`` (a log-sum-exp), and the
responsibilities ``p(z | x)`` through ``genmath.bayes.posterior``.

Two ways to fit it, maximising the same objective (log-likelihood plus a Beta prior with
``pseudo_count`` on every ``theta`` and a Dirichlet prior with ``weight_pseudo_count`` on
``pi``, as in :mod:`models.factorized`):

* gradient ascent with optax through the shared :class:`models.training.Trainer`
  (``factorized.make_loss_fn`` works unchanged for this model, and
  ``factorized.evaluate_nll`` evaluates it);
* expectation-maximisation (:func:`fit_em`), one compiled full-data pass per iteration,
  whose M-step is the closed form ``theta_k = (sum_n r_nk x_n + a) / (sum_n r_nk + 2a)``,
  ``pi_k = (sum_n r_nk + b) / (N + K b)``.

Components start from random training images blended with the smoothed mean image
(``init_images``), which breaks the symmetry between components far better than random
logits.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from genmath import bayes, bernoulli, categorical
from models import factorized, mnist, sharding
from models.factorized import PSEUDO_COUNT
from models.mnist import IMAGE_SHAPE, NUM_PIXELS, flatten_images
from models.training import run_key

#: Default Dirichlet pseudo-count per component on the mixture weights.
WEIGHT_PSEUDO_COUNT = 1.0


def initial_logits(
    key: jax.Array, images, num_components: int, *, smoothing: float = 0.5
) -> jax.Array:
    """Component templates ``(1 - smoothing) * random image + smoothing * mean image``.

    Args:
      key: picks the images (without replacement).
      images: uint8 training images ``(N, 28, 28)``.
      num_components: K, at most N.
      smoothing: weight of the smoothed mean image (:func:`factorized.closed_form_probs`),
        in (0, 1]; it keeps every probability away from 0 and 1.

    Returns:
      float32 logits ``(K, 784)``.
    """
    if not 0.0 < smoothing <= 1.0:
        raise ValueError(f"initial_logits: `smoothing` must be in (0, 1], got {smoothing}.")
    n = images.shape[0]
    if not 1 <= num_components <= n:
        raise ValueError(
            f"initial_logits: `num_components` must be in [1, {n}] (the number of images), "
            f"got {num_components}."
        )
    mean = jnp.asarray(factorized.closed_form_probs(images), jnp.float32)
    return _blend(key, jnp.asarray(images), mean, smoothing, num_components=num_components)


@functools.partial(jax.jit, static_argnames="num_components")
def _blend(key, images, mean, smoothing, *, num_components):
    chosen = jax.random.choice(key, images.shape[0], (num_components,), replace=False)
    grey = mnist.binarize(images[chosen], mode="grey").reshape(num_components, NUM_PIXELS)
    return bernoulli.logits_from_probs((1.0 - smoothing) * grey + smoothing * mean)


class MixtureOfBernoullis(nnx.Module):
    """``p(x) = sum_k pi_k prod_i Bernoulli(x_i; sigmoid(logits_ki))``.

    Args:
      num_components: K.
      key: PRNG key for the initial templates.
      init_images: uint8 training images to start the templates from (recommended);
        without them the template probabilities are uniform in [0.25, 0.75].
      init_smoothing: see :func:`initial_logits`.
    """

    def __init__(
        self,
        num_components: int,
        *,
        key: jax.Array,
        init_images=None,
        init_smoothing: float = 0.5,
    ):
        if isinstance(num_components, bool) or not isinstance(num_components, (int, np.integer)):
            raise TypeError(
                f"MixtureOfBernoullis: `num_components` must be an int, got {num_components!r}."
            )
        if num_components < 1:
            raise ValueError(
                f"MixtureOfBernoullis: `num_components` must be >= 1, got {num_components}."
            )
        if init_images is None:
            probs = jax.random.uniform(key, (num_components, NUM_PIXELS), minval=0.25, maxval=0.75)
            logits = bernoulli.logits_from_probs(probs)
        else:
            logits = initial_logits(key, init_images, num_components, smoothing=init_smoothing)
        self.num_components = int(num_components)
        self.logits = nnx.Param(logits)
        self.mixture_logits = nnx.Param(jnp.zeros((num_components,), logits.dtype))

    @property
    def log_weights(self) -> jax.Array:
        """``log pi_k``, shape ``(K,)``."""
        k = self.num_components
        return categorical.log_prob(jnp.arange(k), logits=self.mixture_logits[...])

    @property
    def probs(self) -> jax.Array:
        """The component templates ``theta_k`` as images ``(K, 28, 28)``."""
        return jax.nn.sigmoid(self.logits[...]).reshape((-1, *IMAGE_SHAPE))

    def log_joint(self, x: jax.Array) -> jax.Array:
        """``log pi_k + log p(x | z = k)`` for images ``(..., 28, 28)``: shape ``(..., K)``."""
        x = flatten_images(x, fn="MixtureOfBernoullis.log_joint")
        return self.log_weights + factorized.component_log_likelihoods(x, self.logits[...])

    def log_prob(self, x: jax.Array) -> jax.Array:
        """Exact ``log p(x)`` in nats, shape ``(...)``."""
        return bayes.evidence(self.log_joint(x), axis=-1)

    def log_responsibilities(self, x: jax.Array) -> jax.Array:
        """``log p(z = k | x)``, shape ``(..., K)``."""
        return bayes.posterior(self.log_joint(x), axis=-1)

    def log_prior(
        self, pseudo_count: float = PSEUDO_COUNT, weight_pseudo_count: float = WEIGHT_PSEUDO_COUNT
    ) -> jax.Array:
        """Beta prior on every template pixel plus a symmetric Dirichlet on the weights."""
        return factorized.beta_log_prior(
            self.logits[...], pseudo_count
        ) + weight_pseudo_count * jnp.sum(self.log_weights)

    def sample(self, key: jax.Array, num_samples: int) -> tuple[jax.Array, jax.Array]:
        """Draws ``z ~ pi`` then ``x ~ p(x | z)``.

        Returns:
          ``(images (num_samples, 28, 28), components (num_samples,))``.
        """
        z_key, x_key = jax.random.split(key)
        z = categorical.sample(z_key, logits=self.mixture_logits[...], sample_shape=(num_samples,))
        x = bernoulli.sample(x_key, logits=self.logits[...][z])
        return x.reshape((num_samples, *IMAGE_SHAPE)), z


def _em_step(logits, mixture_logits, x, pseudo_count, weight_pseudo_count):
    """One EM iteration on binarised ``x`` ``(N, 784)``; returns new parameters and the NLL.

    The returned NLL is the mean ``-log p(x)`` under the parameters *before* the update
    (it comes for free with the E-step).
    """
    num_components = logits.shape[0]
    log_weights = categorical.log_prob(jnp.arange(num_components), logits=mixture_logits)
    log_joint = log_weights + factorized.component_log_likelihoods(x, logits)
    nll = -jnp.mean(bayes.evidence(log_joint, axis=-1))
    resp = jnp.exp(bayes.posterior(log_joint, axis=-1))  # (N, K)
    counts = jnp.sum(resp, axis=0)
    stats = jnp.matmul(resp.T, x.astype(resp.dtype), precision=jax.lax.Precision.HIGHEST)
    probs = (stats + pseudo_count) / (counts[:, None] + 2.0 * pseudo_count)
    weights = (counts + weight_pseudo_count) / (x.shape[0] + num_components * weight_pseudo_count)
    return bernoulli.logits_from_probs(probs), jnp.log(weights), nll


@functools.partial(jax.jit, static_argnames=("binarization", "mesh"))
def _em_iteration(
    logits, mixture_logits, images, key, pseudo_count, weight_pseudo_count, *, binarization, mesh
):
    # The images stay split along the batch: the E-step is per image, and the M-step's
    # sums over images become one all-reduce of the (K, 784) statistics and K counts.
    images = jax.lax.with_sharding_constraint(images, sharding.batch_sharded(mesh))
    x = mnist.binarize(images, mode=binarization, key=key)
    x = flatten_images(x, fn="fit_em")
    logits, mixture_logits, nll = _em_step(
        logits, mixture_logits, x, pseudo_count, weight_pseudo_count
    )
    return jax.lax.with_sharding_constraint(
        (logits, mixture_logits, nll), sharding.replicated(mesh)
    )


def _place_images(images, mesh):
    """The images split along the batch over ``mesh`` (kept as they are if already there)."""
    if isinstance(images, jax.Array) and set(images.sharding.device_set) == set(mesh.devices.flat):
        return images  # e.g. from sharding.load_mnist_shard; the step's constraint splits them
    if jax.process_count() > 1:
        # Every process passes all images: replicate checks they agree, and the step's
        # constraint then keeps each device's slice without communication.
        return sharding.replicate(np.asarray(images), mesh)
    return jax.device_put(np.asarray(images), sharding.batch_sharded(mesh))


def fit_em(
    model: MixtureOfBernoullis,
    images,
    *,
    iterations: int,
    binarization: str = "dynamic",
    seed: int = 0,
    pseudo_count: float = PSEUDO_COUNT,
    weight_pseudo_count: float = WEIGHT_PSEUDO_COUNT,
    mesh: jax.sharding.Mesh | None = None,
    progress: bool = True,
) -> list[float]:
    """Fits ``model`` in place by EM on the full training set.

    Each iteration is one jit-compiled call that binarises the whole training set on the
    device (a fresh draw per iteration for ``"dynamic"``, from ``(seed, iteration)``), runs
    the E-step and the closed-form M-step; the host reads back one number per iteration
    for the progress bar. Memory: the ``(N, K)`` responsibilities and the ``(N, 784)``
    binary images, split over the devices of ``mesh``.

    Data parallel like :class:`models.training.Trainer`: the images are split along the
    batch over the mesh axis ``"data"`` and the parameters are replicated, so each device
    runs the E-step on its own images and the M-step sums are all-reduced. The result
    equals the one-device result up to float rounding of those sums.

    Args:
      model: the mixture to update.
      images: uint8 training images ``(N, 28, 28)``.
      iterations: number of EM iterations.
      binarization: one of ``models.mnist.BINARIZATIONS``.
      seed: seeds the per-iteration binarisations.
      pseudo_count, weight_pseudo_count: the priors' pseudo-counts, both > 0.
      mesh: the devices to split the images over (default ``sharding.data_mesh()``, all
        devices); N must be divisible by the size of its axis ``"data"``.
      progress: show a progress bar.

    Returns:
      The training NLL (nats per image) before each iteration's update.
    """
    if binarization not in mnist.BINARIZATIONS:
        raise ValueError(
            f"fit_em: `binarization` must be one of {mnist.BINARIZATIONS}, got {binarization!r}."
        )
    if not (pseudo_count > 0 and weight_pseudo_count > 0):
        raise ValueError(
            "fit_em: `pseudo_count` and `weight_pseudo_count` must be > 0 (zero gives "
            f"infinite logits), got {pseudo_count} and {weight_pseudo_count}."
        )
    mesh = sharding.data_mesh() if mesh is None else mesh
    devices = sharding.data_axis_size(mesh)
    num_images = np.shape(images)[0] if np.ndim(images) else 0
    if num_images % devices:
        raise ValueError(
            f"fit_em: the number of `images` ({num_images}) is not divisible by the {devices} "
            f"devices on the mesh axis {sharding.DATA_AXIS!r}; every device takes an equal "
            f"slice. Drop {num_images % devices} images or use a mesh over fewer devices."
        )
    images = _place_images(images, mesh)
    logits, mixture_logits = sharding.replicate(
        (model.logits[...], model.mixture_logits[...]), mesh
    )
    # The EM iterations are its epochs: the same stream as the Trainer's.
    base_key = sharding.replicate(run_key(seed, "epochs"), mesh)
    history = []
    with tqdm(range(iterations), disable=not progress, unit="iter", desc="EM") as bar:
        for iteration in bar:
            key = jax.random.fold_in(base_key, iteration)
            logits, mixture_logits, nll = _em_iteration(
                logits,
                mixture_logits,
                images,
                key,
                pseudo_count,
                weight_pseudo_count,
                binarization=binarization,
                mesh=mesh,
            )
            history.append(float(nll))
            bar.set_postfix(nll=f"{history[-1]:.2f}")
    model.logits.set_value(logits)
    model.mixture_logits.set_value(mixture_logits.astype(model.mixture_logits.dtype))
    return history

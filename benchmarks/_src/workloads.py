"""The benchmarked workloads: input shapes, random inputs and float64 references.

A workload is one mathematical quantity evaluated row by row. ``batch`` is the
number of rows (data points, distributions or pairs) and ``dim`` the event size.
Every implementation (genmath and peers) is called as ``fn(**inputs)`` with the
same arrays and must return one value per row.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.special

HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)
MNIST_PIXELS = 784
LATENT_DIM = 32
CLASSES = 1000
MVN_DIM = 64
MVN_POINTS_PER_DISTRIBUTION = 16
PIXEL_LEVELS = 256
PIXEL_MIXTURE_COMPONENTS = 10
MIXTURE_COMPONENTS = 512
IWAE_SAMPLES = 50
BINARY_LATENTS = 200
CATEGORICAL_LATENTS = 30  # Gumbel-softmax VAE: 30 ten-way categorical latents
RELAXED_CLASSES = 10
RELAXED_TEMPERATURE = 2.0 / 3.0

Inputs = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmarked quantity and the sizes it is timed at.

    Attributes:
        name: identifier used in results files and the peer tables.
        title: human-readable description for tables.
        params: names of the inputs differentiated by ``value_and_grad``.
        data: names of the inputs held fixed (observations).
        make_inputs: ``(rng, batch, dim) -> inputs`` in float64 (cast later).
        reference: float64 numpy/scipy value of every row, from the same inputs.
        dim: the event size of the headline measurement.
        batches: batch sizes of the full run.
        quick_batches: batch sizes of ``--quick`` (which has no dimension sweep).
        dims: event sizes of the cost-versus-dimension sweep (empty: no sweep).
        dim_sweep_batch: batch size held fixed during the dimension sweep.
        memory_bound: whether a bytes-moved roofline is meaningful.
        batch_label, dim_label: what a row and an event element are, for plots.
        headline: the batch size of the summary table (default: the largest).
        accelerator_batches: larger batch sizes added to the sweep on GPU/TPU, where the
            CPU sizes do not fill the device (the headline size stays the same, so that
            every peer, torch on the host included, is compared at the same size).
    """

    name: str
    title: str
    params: tuple[str, ...]
    data: tuple[str, ...]
    make_inputs: Callable[[np.random.Generator, int, int], Inputs]
    reference: Callable[..., np.ndarray]
    dim: int
    batches: tuple[int, ...]
    quick_batches: tuple[int, ...]
    dims: tuple[int, ...] = ()
    dim_sweep_batch: int = 1024
    memory_bound: bool = True
    batch_label: str = "rows"
    dim_label: str = "D"
    headline: int | None = None
    accelerator_batches: tuple[int, ...] = ()

    def headline_batch(self, quick: bool = False) -> int:
        """The batch size of the summary table (the largest, unless set)."""
        if quick:
            return self.quick_batches[-1]
        return self.headline or self.batches[-1]


# ---------------------------------------------------------------- random inputs


def _bernoulli_inputs(binary: bool):
    def make(rng, batch, dim):
        logits = rng.normal(0.0, 3.0, (batch, dim))
        if binary:
            x = (rng.random((batch, dim)) < 0.5).astype(np.float64)
        else:
            x = rng.random((batch, dim))
        return {"x": x, "logits": logits}

    return make


def _normal_inputs(rng, batch, dim):
    return {
        "x": rng.normal(0.0, 1.0, (batch, dim)),
        "loc": rng.normal(0.0, 1.0, (batch, dim)),
        "log_scale": rng.uniform(-1.0, 1.0, (batch, dim)),
    }


def _kl_standard_inputs(rng, batch, dim):
    return {
        "loc": rng.normal(0.0, 1.0, (batch, dim)),
        "log_scale": rng.uniform(-2.0, 1.0, (batch, dim)),
    }


def _normal_kl_inputs(rng, batch, dim):
    p = _kl_standard_inputs(rng, batch, dim)
    q = _kl_standard_inputs(rng, batch, dim)
    return {
        "loc_p": p["loc"],
        "log_scale_p": p["log_scale"],
        "loc_q": q["loc"],
        "log_scale_q": q["log_scale"],
    }


def _scale_tril(rng, shape, dim):
    """Well-conditioned lower-triangular factors with a positive diagonal."""
    strict = np.tril(rng.normal(0.0, 0.5 / math.sqrt(dim), (*shape, dim, dim)), k=-1)
    diagonal = np.exp(rng.uniform(-0.5, 0.5, (*shape, dim)))
    return strict + diagonal[..., None] * np.eye(dim)


def _mvn_shared_inputs(rng, batch, dim):
    """One distribution, ``batch`` points."""
    return {
        "x": rng.normal(0.0, 1.5, (batch, dim)),
        "loc": rng.normal(0.0, 1.0, (dim,)),
        "scale_tril": _scale_tril(rng, (), dim),
    }


def _mvn_batched_inputs(rng, batch, dim):
    """``batch`` distributions, 16 points each: x has shape (16, batch, dim)."""
    return {
        "x": rng.normal(0.0, 1.5, (MVN_POINTS_PER_DISTRIBUTION, batch, dim)),
        "loc": rng.normal(0.0, 1.0, (batch, dim)),
        "scale_tril": _scale_tril(rng, (batch,), dim),
    }


def _mvn_kl_inputs(rng, batch, dim):
    return {
        "loc_p": rng.normal(0.0, 1.0, (batch, dim)),
        "scale_tril_p": _scale_tril(rng, (batch,), dim),
        "loc_q": rng.normal(0.0, 1.0, (batch, dim)),
        "scale_tril_q": _scale_tril(rng, (batch,), dim),
    }


def _categorical_inputs(names):
    def make(rng, batch, dim):
        return {name: rng.normal(0.0, 2.0, (batch, dim)) for name in names}

    return make


def _vae_inputs(rng, batch, dim):
    inputs = _bernoulli_inputs(binary=True)(rng, batch, dim)
    inputs.update(_kl_standard_inputs(rng, batch, LATENT_DIM))
    return inputs


def _pixels(rng, batch):
    """8-bit MNIST-like images: mostly background 0, some saturated 255, the rest between."""
    u = rng.random((batch, MNIST_PIXELS))
    middle = rng.integers(1, 255, (batch, MNIST_PIXELS)).astype(np.float64)
    return np.where(u < 0.6, 0.0, np.where(u < 0.7, 255.0, middle))


def _discretized_inputs(rng, batch, dim):
    """A decoder's prediction near each pixel: loc = x/255 + N(0, 0.05^2), scale e^-4..e^-2."""
    x = _pixels(rng, batch)[:, :dim]
    return {
        "x": x,
        "loc": x / 255.0 + rng.normal(0.0, 0.05, x.shape),
        "log_scale": rng.uniform(-4.0, -2.0, x.shape),
    }


def _discretized_mixture_inputs(rng, batch, dim):
    x = _pixels(rng, batch)[:, :dim]
    shape = (*x.shape, PIXEL_MIXTURE_COMPONENTS)
    return {
        "x": x,
        "logits": rng.normal(0.0, 1.0, shape),
        "loc": x[..., None] / 255.0 + rng.normal(0.0, 0.1, shape),
        "log_scale": rng.uniform(-4.0, -2.0, shape),
    }


def _categorical_pixel_inputs(rng, batch, dim):
    """Labels int32 (kept integer by the benchmark), logits over the 256 levels."""
    labels = _pixels(rng, batch)[:, :dim].astype(np.int32)
    return {"labels": labels, "logits": rng.normal(0.0, 2.0, (*labels.shape, PIXEL_LEVELS))}


def _continuous_bernoulli_inputs(rng, batch, dim):
    return {"x": rng.random((batch, dim)), "logits": rng.normal(0.0, 3.0, (batch, dim))}


def _mixture_inputs(rng, batch, dim):
    """VampPrior-like: log-densities of ``batch`` latents under ``dim`` components, whose
    mixture logits are shared by the batch."""
    return {
        "component_log_probs": rng.normal(-50.0, 15.0, (batch, dim)),
        "logits": rng.normal(0.0, 1.0, (dim,)),
    }


def _iwae_inputs(decoder: bool):
    """Log-weights of ``dim`` importance samples (axis 0) for each of ``batch`` images, at
    the scale of a binarised-MNIST VAE (log w around -100); the decoder's copy (DReG) has
    the same values, as it does in training."""

    def make(rng, batch, dim):
        log_weights = rng.normal(-100.0, 3.0, (dim, batch))
        if not decoder:
            return {"log_weights": log_weights}
        return {"log_weights": log_weights, "decoder_log_weights": log_weights.copy()}

    return make


def _relaxed_bernoulli_inputs(rng, batch, dim):
    """Relaxed samples y = sigmoid((l + L) / t) with logistic L, their logits clipped to
    [-8, 8] so that no float32 y rounds to exactly 0 or 1 (where the density is a limit)."""
    logits = rng.normal(0.0, 1.0, (batch, dim))
    x = np.clip((logits + rng.logistic(0.0, 1.0, (batch, dim))) / RELAXED_TEMPERATURE, -8, 8)
    return {
        "y": scipy.special.expit(x),
        "logits": logits,
        "temperature": np.asarray(RELAXED_TEMPERATURE),
    }


def _relaxed_categorical_inputs(rng, batch, dim):
    """Gumbel-softmax samples of ``dim`` ten-way latents per row: y = softmax((l + g) / t)."""
    shape = (batch, dim, RELAXED_CLASSES)
    logits = rng.normal(0.0, 1.0, shape)
    y = scipy.special.softmax((logits + rng.gumbel(0.0, 1.0, shape)) / RELAXED_TEMPERATURE, -1)
    return {"y": y, "logits": logits, "temperature": np.asarray(RELAXED_TEMPERATURE)}


# ---------------------------------------------------------------- float64 references


def ref_bernoulli_log_prob(x, logits):
    return np.sum(x * logits - np.logaddexp(0.0, logits), axis=-1)


def ref_normal_log_prob(x, loc, log_scale):
    z = (x - loc) * np.exp(-log_scale)
    return np.sum(-0.5 * z * z - log_scale - HALF_LOG_TWO_PI, axis=-1)


def ref_normal_kl_standard(loc, log_scale):
    return 0.5 * np.sum(np.expm1(2.0 * log_scale) + loc * loc - 2.0 * log_scale, axis=-1)


def ref_normal_kl(loc_p, log_scale_p, loc_q, log_scale_q):
    ratio = np.exp(2.0 * (log_scale_p - log_scale_q))
    mahalanobis = ((loc_p - loc_q) * np.exp(-log_scale_q)) ** 2
    return 0.5 * np.sum(ratio - 1.0 - 2.0 * (log_scale_p - log_scale_q) + mahalanobis, axis=-1)


def _log_det(scale_tril):
    return np.sum(np.log(np.diagonal(scale_tril, axis1=-2, axis2=-1)), axis=-1)


def ref_mvn_log_prob(x, loc, scale_tril):
    diff = x - loc
    dim = x.shape[-1]
    if scale_tril.ndim == 2:
        z = scipy.linalg.solve_triangular(scale_tril, diff.T, lower=True).T
    else:
        # (points, batch, D) against (batch, D, D): the points are the columns of one
        # solve per distribution.
        z = np.moveaxis(np.linalg.solve(scale_tril, np.moveaxis(diff, 0, -1)), -1, 0)
    return -0.5 * np.sum(z * z, axis=-1) - _log_det(scale_tril) - dim * HALF_LOG_TWO_PI


def ref_mvn_kl(loc_p, scale_tril_p, loc_q, scale_tril_q):
    dim = loc_p.shape[-1]
    m = np.linalg.solve(scale_tril_q, scale_tril_p)
    z = np.linalg.solve(scale_tril_q, (loc_p - loc_q)[..., None])[..., 0]
    trace = np.sum(m * m, axis=(-2, -1))
    return (
        0.5 * (trace + np.sum(z * z, axis=-1) - dim)
        + _log_det(scale_tril_q)
        - _log_det(scale_tril_p)
    )


def ref_categorical_entropy(logits):
    log_p = scipy.special.log_softmax(logits, axis=-1)
    return -np.sum(np.exp(log_p) * log_p, axis=-1)


def ref_categorical_kl(logits_p, logits_q):
    log_p = scipy.special.log_softmax(logits_p, axis=-1)
    log_q = scipy.special.log_softmax(logits_q, axis=-1)
    return np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)


def ref_vae_loss(x, logits, loc, log_scale):
    return ref_normal_kl_standard(loc, log_scale) - ref_bernoulli_log_prob(x, logits)


def _logistic_bin_probability(x, loc, log_scale):
    """P(bin x) in float64, each bin taken on the side of the location where both of its
    CDF values are small (sf above the location, cdf below), so nothing cancels."""
    scale = np.exp(log_scale)
    lower = np.where(x == 0, -np.inf, (x - 0.5) / 255.0)
    upper = np.where(x == 255, np.inf, (x + 0.5) / 255.0)
    lower, upper = (lower - loc) / scale, (upper - loc) / scale
    above = (lower + upper) > 0  # the bin's centre is above the location
    return np.where(
        above,
        scipy.special.expit(-lower) - scipy.special.expit(-upper),
        scipy.special.expit(upper) - scipy.special.expit(lower),
    )


def ref_discretized_logistic_log_prob(x, loc, log_scale):
    return np.sum(np.log(_logistic_bin_probability(x, loc, log_scale)), axis=-1)


def ref_discretized_logistic_mixture_log_prob(x, logits, loc, log_scale):
    per_component = np.log(_logistic_bin_probability(x[..., None], loc, log_scale))
    log_weights = scipy.special.log_softmax(logits, axis=-1)
    return np.sum(scipy.special.logsumexp(log_weights + per_component, axis=-1), axis=-1)


def ref_discretized_normal_log_prob(x, loc, log_scale):
    scale = np.exp(log_scale)
    lower = np.where(x == 0, -np.inf, (x - 0.5) / 255.0)
    upper = np.where(x == 255, np.inf, (x + 0.5) / 255.0)
    lower, upper = (lower - loc) / scale, (upper - loc) / scale
    above = (lower + upper) > 0
    probability = np.where(
        above,
        scipy.special.ndtr(-lower) - scipy.special.ndtr(-upper),
        scipy.special.ndtr(upper) - scipy.special.ndtr(lower),
    )
    return np.sum(np.log(probability), axis=-1)


def ref_categorical_log_prob_pixels(labels, logits):
    log_p = scipy.special.log_softmax(logits, axis=-1)
    return np.sum(np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0], axis=-1)


def ref_normal_cross_entropy(loc_p, log_scale_p, loc_q, log_scale_q):
    entropy_p = np.sum(log_scale_p + 0.5 + HALF_LOG_TWO_PI, axis=-1)
    return entropy_p + ref_normal_kl(loc_p, log_scale_p, loc_q, log_scale_q)


def ref_mvn_cross_entropy(loc_p, scale_tril_p, loc_q, scale_tril_q):
    dim = loc_p.shape[-1]
    entropy_p = _log_det(scale_tril_p) + dim * (0.5 + HALF_LOG_TWO_PI)
    return entropy_p + ref_mvn_kl(loc_p, scale_tril_p, loc_q, scale_tril_q)


def _cb_log_partition(eta):
    """A(eta) = log((e^eta - 1) / eta), from |eta| and e^-|eta| (no overflow)."""
    a = np.abs(eta)
    return np.maximum(eta, 0.0) + np.log(-np.expm1(-a) / a)


def _cb_mean(eta):
    """A'(eta) = 1 / (1 - e^-eta) - 1 / eta. Near 0 the difference cancels, losing an
    absolute ~1e-16 / |eta|: still far below the float32 tolerance at any |eta| > 1e-9."""
    return 1.0 / -np.expm1(-eta) - 1.0 / eta


def ref_continuous_bernoulli_log_prob(x, logits):
    return np.sum(x * logits - _cb_log_partition(logits), axis=-1)


def ref_continuous_bernoulli_entropy(logits):
    return np.sum(_cb_log_partition(logits) - logits * _cb_mean(logits), axis=-1)


def ref_continuous_bernoulli_kl(logits_p, logits_q):
    terms = (
        _cb_log_partition(logits_q)
        - _cb_log_partition(logits_p)
        - (logits_q - logits_p) * _cb_mean(logits_p)
    )
    return np.sum(terms, axis=-1)


def ref_mixture_log_prob(component_log_probs, logits):
    log_weights = scipy.special.log_softmax(logits, axis=-1)
    return scipy.special.logsumexp(log_weights + component_log_probs, axis=-1)


def ref_iwae_bound(log_weights, decoder_log_weights=None):
    """The surrogates' value: the IWAE bound log (1/K) sum_k w_k (K on axis 0)."""
    return scipy.special.logsumexp(log_weights, axis=0) - math.log(log_weights.shape[0])


def ref_relaxed_bernoulli_log_prob(y, logits, temperature):
    """Maddison et al. (2017), eq. (4) with n = 2, in log space."""
    log_y, log_not_y = np.log(y), np.log1p(-y)
    terms = (
        np.log(temperature)
        + logits
        - (temperature + 1.0) * (log_y + log_not_y)
        - 2.0 * np.logaddexp(logits - temperature * log_y, -temperature * log_not_y)
    )
    return np.sum(terms, axis=-1)


def ref_relaxed_categorical_log_prob(y, logits, temperature):
    """Maddison et al. (2017), Definition 1, in log space; summed over the latents."""
    k = y.shape[-1]
    log_y = np.log(y)
    per_latent = (
        scipy.special.gammaln(k)
        + (k - 1) * np.log(temperature)
        + np.sum(logits - (temperature + 1.0) * log_y, axis=-1)
        - k * scipy.special.logsumexp(logits - temperature * log_y, axis=-1)
    )
    return np.sum(per_latent, axis=-1)


# ---------------------------------------------------------------- the list

# The headline (summary-table) size is 4096 rows (1024 for the costlier 8-bit pixel and
# continuous Bernoulli kernels, added later and timed on a busier machine); 16384 is timed
# for the scaling plots with fewer peers, to keep the full run near ten minutes on two cores.
ELEMENTWISE_BATCHES = (128, 1024, 4096, 16384)
ELEMENTWISE_HEADLINE = 4096
ELEMENTWISE_ACCELERATOR = (65536, 262144)
ELEMENTWISE_QUICK = (128,)

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="bernoulli_log_prob_binary",
        title="Bernoulli log-likelihood from logits, 784 binary pixels",
        params=("logits",),
        data=("x",),
        make_inputs=_bernoulli_inputs(binary=True),
        reference=ref_bernoulli_log_prob,
        dim=MNIST_PIXELS,
        batches=ELEMENTWISE_BATCHES,
        quick_batches=ELEMENTWISE_QUICK,
        headline=ELEMENTWISE_HEADLINE,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dim_label="pixels",
    ),
    Workload(
        name="bernoulli_log_prob_grey",
        title="Bernoulli log-likelihood from logits, 784 grey-level pixels",
        params=("logits",),
        data=("x",),
        make_inputs=_bernoulli_inputs(binary=False),
        reference=ref_bernoulli_log_prob,
        dim=MNIST_PIXELS,
        batches=ELEMENTWISE_BATCHES,
        quick_batches=ELEMENTWISE_QUICK,
        headline=ELEMENTWISE_HEADLINE,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dim_label="pixels",
    ),
    Workload(
        name="normal_log_prob",
        title="Diagonal Gaussian log-likelihood, 784 dims",
        params=("loc", "log_scale"),
        data=("x",),
        make_inputs=_normal_inputs,
        reference=ref_normal_log_prob,
        dim=MNIST_PIXELS,
        batches=ELEMENTWISE_BATCHES,
        quick_batches=ELEMENTWISE_QUICK,
        headline=ELEMENTWISE_HEADLINE,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dims=(8, 32, 128, 512, 2048),
    ),
    Workload(
        name="normal_kl_standard",
        title="KL(N(μ, σ²) ‖ N(0, I)), 32 dims",
        params=("loc", "log_scale"),
        data=(),
        make_inputs=_kl_standard_inputs,
        reference=ref_normal_kl_standard,
        dim=LATENT_DIM,
        batches=(128, 1024, 16384, 131072),
        quick_batches=ELEMENTWISE_QUICK,
        headline=16384,
        accelerator_batches=(1 << 20, 1 << 22),
    ),
    Workload(
        name="normal_kl",
        title="KL between two diagonal Gaussians, 32 dims",
        params=("loc_p", "log_scale_p", "loc_q", "log_scale_q"),
        data=(),
        make_inputs=_normal_kl_inputs,
        reference=ref_normal_kl,
        dim=LATENT_DIM,
        batches=(128, 1024, 16384, 131072),
        quick_batches=ELEMENTWISE_QUICK,
        headline=16384,
        accelerator_batches=(1 << 20, 1 << 22),
    ),
    Workload(
        name="mvn_log_prob_shared",
        title="Full-covariance log-likelihood, D = 64, one distribution × N points",
        params=("loc", "scale_tril"),
        data=("x",),
        make_inputs=_mvn_shared_inputs,
        reference=ref_mvn_log_prob,
        dim=MVN_DIM,
        batches=(128, 1024, 4096, 16384),
        quick_batches=(128,),
        dims=(8, 16, 32, 64, 128, 256),
        dim_sweep_batch=4096,
        memory_bound=False,
        batch_label="points",
        headline=4096,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
    ),
    Workload(
        name="mvn_log_prob_batched",
        title="Full-covariance log-likelihood, D = 64, N distributions × 16 points",
        params=("loc", "scale_tril"),
        data=("x",),
        make_inputs=_mvn_batched_inputs,
        reference=ref_mvn_log_prob,
        dim=MVN_DIM,
        batches=(16, 64, 256),
        quick_batches=(16,),
        dims=(8, 16, 32, 64, 128, 256),
        dim_sweep_batch=64,
        memory_bound=False,
        batch_label="distributions",
        headline=256,
        accelerator_batches=(1024, 4096),
    ),
    Workload(
        name="mvn_kl",
        title="Full-covariance KL, D = 64, N pairs",
        params=("loc_p", "scale_tril_p", "loc_q", "scale_tril_q"),
        data=(),
        make_inputs=_mvn_kl_inputs,
        reference=ref_mvn_kl,
        dim=MVN_DIM,
        batches=(16, 64, 256),
        quick_batches=(16,),
        dims=(8, 16, 32, 64, 128, 256),
        dim_sweep_batch=32,
        memory_bound=False,
        batch_label="pairs",
        headline=256,
        accelerator_batches=(1024, 4096),
    ),
    Workload(
        name="categorical_entropy",
        title="Categorical entropy, 1000 classes",
        params=("logits",),
        data=(),
        make_inputs=_categorical_inputs(("logits",)),
        reference=ref_categorical_entropy,
        dim=CLASSES,
        batches=ELEMENTWISE_BATCHES,
        quick_batches=ELEMENTWISE_QUICK,
        headline=ELEMENTWISE_HEADLINE,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dim_label="classes",
    ),
    Workload(
        name="categorical_kl",
        title="Categorical KL, 1000 classes",
        params=("logits_p", "logits_q"),
        data=(),
        make_inputs=_categorical_inputs(("logits_p", "logits_q")),
        reference=ref_categorical_kl,
        dim=CLASSES,
        batches=ELEMENTWISE_BATCHES,
        quick_batches=ELEMENTWISE_QUICK,
        headline=ELEMENTWISE_HEADLINE,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dim_label="classes",
    ),
    Workload(
        name="vae_loss",
        title="VAE loss: Bernoulli reconstruction (784 px) + analytic KL (32 dims)",
        params=("logits", "loc", "log_scale"),
        data=("x",),
        make_inputs=_vae_inputs,
        reference=ref_vae_loss,
        dim=MNIST_PIXELS,
        batches=ELEMENTWISE_BATCHES,
        quick_batches=ELEMENTWISE_QUICK,
        headline=ELEMENTWISE_HEADLINE,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dim_label="pixels",
    ),
    # ------------------------------------------------ issue 12: 8-bit pixel likelihoods
    Workload(
        name="discretized_logistic_log_prob",
        title="Discretised logistic log-likelihood, 784 8-bit pixels",
        params=("loc", "log_scale"),
        data=("x",),
        make_inputs=_discretized_inputs,
        reference=ref_discretized_logistic_log_prob,
        dim=MNIST_PIXELS,
        batches=(128, 1024),
        quick_batches=(8,),
        headline=1024,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dim_label="pixels",
    ),
    Workload(
        name="discretized_logistic_mixture_log_prob",
        title="Mixture of 10 discretised logistics per pixel, 784 8-bit pixels",
        params=("logits", "loc", "log_scale"),
        data=("x",),
        make_inputs=_discretized_mixture_inputs,
        reference=ref_discretized_logistic_mixture_log_prob,
        dim=MNIST_PIXELS,
        batches=(8, 32, 128),
        quick_batches=(4,),
        headline=128,
        accelerator_batches=(4096, 16384),
        dim_label="pixels",
    ),
    Workload(
        name="discretized_normal_log_prob",
        title="Discretised Gaussian log-likelihood, 784 8-bit pixels",
        params=("loc", "log_scale"),
        data=("x",),
        make_inputs=_discretized_inputs,
        reference=ref_discretized_normal_log_prob,
        dim=MNIST_PIXELS,
        batches=(128, 1024),
        quick_batches=(8,),
        headline=1024,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dim_label="pixels",
    ),
    Workload(
        name="categorical_log_prob_pixels",
        title="256-way categorical per pixel, 784 8-bit pixels (int32 labels)",
        params=("logits",),
        data=("labels",),
        make_inputs=_categorical_pixel_inputs,
        reference=ref_categorical_log_prob_pixels,
        dim=MNIST_PIXELS,
        batches=(4, 16, 64),
        quick_batches=(2,),
        headline=64,
        accelerator_batches=(1024, 4096),
        batch_label="images",
        dim_label="pixels",
    ),
    # ------------------------------------------------ issue 13: divergences and mixtures
    Workload(
        name="normal_cross_entropy",
        title="Cross-entropy between two diagonal Gaussians, 32 dims",
        params=("loc_p", "log_scale_p", "loc_q", "log_scale_q"),
        data=(),
        make_inputs=_normal_kl_inputs,
        reference=ref_normal_cross_entropy,
        dim=LATENT_DIM,
        batches=(128, 1024, 16384, 131072),
        quick_batches=ELEMENTWISE_QUICK,
        headline=16384,
        accelerator_batches=(1 << 20, 1 << 22),
    ),
    Workload(
        name="mvn_cross_entropy",
        title="Full-covariance cross-entropy, D = 64, N pairs",
        params=("loc_p", "scale_tril_p", "loc_q", "scale_tril_q"),
        data=(),
        make_inputs=_mvn_kl_inputs,
        reference=ref_mvn_cross_entropy,
        dim=MVN_DIM,
        batches=(16, 64, 256),
        quick_batches=(16,),
        memory_bound=False,
        batch_label="pairs",
        headline=256,
        accelerator_batches=(1024, 4096),
    ),
    Workload(
        name="continuous_bernoulli_log_prob",
        title="Continuous Bernoulli log-density, 784 grey-level pixels",
        params=("logits",),
        data=("x",),
        make_inputs=_continuous_bernoulli_inputs,
        reference=ref_continuous_bernoulli_log_prob,
        dim=MNIST_PIXELS,
        batches=(128, 1024),
        quick_batches=ELEMENTWISE_QUICK,
        headline=1024,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dim_label="pixels",
    ),
    Workload(
        name="continuous_bernoulli_entropy",
        title="Continuous Bernoulli entropy, 784 pixels",
        params=("logits",),
        data=(),
        make_inputs=_categorical_inputs(("logits",)),
        reference=ref_continuous_bernoulli_entropy,
        dim=MNIST_PIXELS,
        batches=(128, 1024),
        quick_batches=ELEMENTWISE_QUICK,
        headline=1024,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dim_label="pixels",
    ),
    Workload(
        name="continuous_bernoulli_kl",
        title="KL between continuous Bernoullis, 784 pixels",
        params=("logits_p", "logits_q"),
        data=(),
        make_inputs=_categorical_inputs(("logits_p", "logits_q")),
        reference=ref_continuous_bernoulli_kl,
        dim=MNIST_PIXELS,
        batches=(128, 1024),
        quick_batches=ELEMENTWISE_QUICK,
        headline=1024,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dim_label="pixels",
    ),
    Workload(
        name="mixture_log_prob",
        title="Mixture log-density from 512 components' log-densities, shared logits",
        params=("component_log_probs", "logits"),
        data=(),
        make_inputs=_mixture_inputs,
        reference=ref_mixture_log_prob,
        dim=MIXTURE_COMPONENTS,
        batches=(128, 1024, 4096),
        quick_batches=ELEMENTWISE_QUICK,
        headline=ELEMENTWISE_HEADLINE,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        batch_label="points",
        dim_label="components",
    ),
    Workload(
        name="iwae_stl",
        title="Sticking-the-landing IWAE surrogate, K = 50 samples",
        params=("log_weights",),
        data=(),
        make_inputs=_iwae_inputs(decoder=False),
        reference=ref_iwae_bound,
        dim=IWAE_SAMPLES,
        batches=ELEMENTWISE_BATCHES,
        quick_batches=ELEMENTWISE_QUICK,
        headline=ELEMENTWISE_HEADLINE,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        batch_label="images",
        dim_label="samples",
    ),
    Workload(
        name="iwae_dreg_encoder",
        title="DReG encoder surrogate of the IWAE bound, K = 50 samples",
        params=("log_weights",),
        data=(),
        make_inputs=_iwae_inputs(decoder=False),
        reference=ref_iwae_bound,
        dim=IWAE_SAMPLES,
        batches=ELEMENTWISE_BATCHES,
        quick_batches=ELEMENTWISE_QUICK,
        headline=ELEMENTWISE_HEADLINE,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        batch_label="images",
        dim_label="samples",
    ),
    Workload(
        name="iwae_dreg",
        title="DReG surrogate (encoder and decoder paths), K = 50 samples",
        params=("log_weights", "decoder_log_weights"),
        data=(),
        make_inputs=_iwae_inputs(decoder=True),
        reference=ref_iwae_bound,
        dim=IWAE_SAMPLES,
        batches=ELEMENTWISE_BATCHES,
        quick_batches=ELEMENTWISE_QUICK,
        headline=ELEMENTWISE_HEADLINE,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        batch_label="images",
        dim_label="samples",
    ),
    Workload(
        name="relaxed_bernoulli_log_prob",
        title="Relaxed Bernoulli (binary Concrete) log-density, 200 latents, t = 2/3",
        params=("logits",),
        data=("y", "temperature"),
        make_inputs=_relaxed_bernoulli_inputs,
        reference=ref_relaxed_bernoulli_log_prob,
        dim=BINARY_LATENTS,
        batches=ELEMENTWISE_BATCHES,
        quick_batches=ELEMENTWISE_QUICK,
        headline=ELEMENTWISE_HEADLINE,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dim_label="latents",
    ),
    Workload(
        name="relaxed_categorical_log_prob",
        title="Relaxed categorical (Concrete) log-density, 30 ten-way latents, t = 2/3",
        params=("logits",),
        data=("y", "temperature"),
        make_inputs=_relaxed_categorical_inputs,
        reference=ref_relaxed_categorical_log_prob,
        dim=CATEGORICAL_LATENTS,
        batches=ELEMENTWISE_BATCHES,
        quick_batches=ELEMENTWISE_QUICK,
        headline=ELEMENTWISE_HEADLINE,
        accelerator_batches=ELEMENTWISE_ACCELERATOR,
        dim_label="latents",
    ),
)

BY_NAME = {w.name: w for w in WORKLOADS}

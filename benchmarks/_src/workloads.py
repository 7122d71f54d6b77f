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


# ---------------------------------------------------------------- the list

# The headline (summary-table) size is 4096 rows; 16384 is timed for the scaling plots
# with fewer peers, to keep the full run near ten minutes on two cores.
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
)

BY_NAME = {w.name: w for w in WORKLOADS}

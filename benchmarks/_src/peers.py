"""genmath and the peers it is compared with, one implementation per workload.

Each peer is loaded lazily: its ``load`` function imports the library and returns
``{workload name: fn}``, where ``fn(**inputs)`` gives one value per row. A peer that
cannot be imported is reported as "not available: <reason>", never a crash; a
workload a peer has no natural expression for is simply absent from its dict.
Where a peer takes a different parameterisation (a scale instead of a log-scale,
probabilities instead of logits, a covariance instead of its Cholesky factor),
the conversion a user would write is part of the timed function.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from collections.abc import Callable

import jax
import jax.numpy as jnp

from benchmarks._src import formulas

Impls = dict[str, Callable]

JAX_LIBRARY_PEERS = ("jax.scipy", "optax", "numpyro", "distrax", "tfp")
ALL_PEERS = ("genmath", "jnp", *JAX_LIBRARY_PEERS, "torch")
QUICK_PEERS = ("genmath", "jnp", "jax.scipy", "optax", "numpyro")
# Away from the headline size (the scaling sweeps) only these run, to bound the run time.
SWEEP_PEERS = ("genmath", "jnp", "jax.scipy", "numpyro")


@dataclasses.dataclass(frozen=True)
class Peer:
    name: str
    framework: str  # "jax" or "torch"
    version: str
    impls: Impls
    note: str = ""


class PeerUnavailable(Exception):
    """The peer's library is missing or does not import with this JAX."""


def _version(*distributions: str) -> str:
    """The installed version of the first of ``distributions`` that is installed."""
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


# ---------------------------------------------------------------- genmath


def _load_genmath() -> Peer:
    import genmath.bernoulli as bernoulli
    import genmath.categorical as categorical
    import genmath.discretized_logistic as discretized_logistic
    import genmath.discretized_normal as discretized_normal
    import genmath.estimators as estimators
    import genmath.mixture as mixture
    import genmath.mvn as mvn
    import genmath.normal as normal
    import genmath.relaxed_bernoulli as relaxed_bernoulli
    import genmath.relaxed_categorical as relaxed_categorical

    def vae_loss(x, logits, loc, log_scale):
        return normal.kl_standard(loc=loc, log_scale=log_scale) - bernoulli.log_prob(
            x, logits=logits
        )

    bernoulli_log_prob = lambda x, logits: bernoulli.log_prob(x, logits=logits)
    mvn_log_prob = lambda x, loc, scale_tril: mvn.log_prob(x, loc=loc, scale_tril=scale_tril)
    impls = {
        "bernoulli_log_prob_binary": bernoulli_log_prob,
        "bernoulli_log_prob_grey": bernoulli_log_prob,
        "normal_log_prob": lambda x, loc, log_scale: normal.log_prob(
            x, loc=loc, log_scale=log_scale
        ),
        "normal_kl_standard": normal.kl_standard,
        "normal_kl": normal.kl,
        "mvn_log_prob_shared": mvn_log_prob,
        "mvn_log_prob_batched": mvn_log_prob,
        "mvn_kl": mvn.kl,
        "categorical_entropy": categorical.entropy,
        "categorical_kl": categorical.kl,
        "vae_loss": vae_loss,
        "discretized_logistic_log_prob": lambda x, loc, log_scale: discretized_logistic.log_prob(
            x, loc=loc, log_scale=log_scale
        ),
        "discretized_logistic_mixture_log_prob": lambda x, logits, loc, log_scale: (
            discretized_logistic.mixture_log_prob(x, logits=logits, loc=loc, log_scale=log_scale)
        ),
        "discretized_normal_log_prob": lambda x, loc, log_scale: discretized_normal.log_prob(
            x, loc=loc, log_scale=log_scale
        ),
        "categorical_log_prob_pixels": lambda labels, logits: categorical.log_prob(
            labels, logits=logits, axis=-1
        ),
        "normal_cross_entropy": normal.cross_entropy,
        "mvn_cross_entropy": mvn.cross_entropy,
        "continuous_bernoulli_log_prob": lambda x, logits: bernoulli.continuous_log_prob(
            x, logits=logits
        ),
        "continuous_bernoulli_entropy": bernoulli.continuous_entropy,
        "continuous_bernoulli_kl": bernoulli.continuous_kl,
        "mixture_log_prob": lambda component_log_probs, logits: mixture.log_prob(
            component_log_probs, logits=logits
        ),
        "iwae_stl": estimators.iwae_stl,
        "iwae_dreg_encoder": estimators.iwae_dreg_encoder,
        "iwae_dreg": estimators.iwae_dreg,
        "relaxed_bernoulli_log_prob": lambda y, logits, temperature: relaxed_bernoulli.log_prob(
            y, logits=logits, temperature=temperature
        ),
        "relaxed_categorical_log_prob": lambda y, logits, temperature: jnp.sum(
            relaxed_categorical.log_prob(y, logits=logits, temperature=temperature), axis=-1
        ),
    }
    import genmath

    return Peer("genmath", "jax", genmath.__version__, impls)


# ---------------------------------------------------------------- hand-written jnp


def _load_jnp() -> Peer:
    impls = {
        "bernoulli_log_prob_binary": formulas.bernoulli_log_prob,
        "bernoulli_log_prob_grey": formulas.bernoulli_log_prob,
        "normal_log_prob": formulas.normal_log_prob,
        "normal_kl_standard": formulas.normal_kl_standard,
        "normal_kl": formulas.normal_kl,
        "mvn_log_prob_shared": formulas.mvn_log_prob,
        "mvn_log_prob_batched": formulas.mvn_log_prob,
        "mvn_kl": formulas.mvn_kl,
        "categorical_entropy": formulas.categorical_entropy,
        "categorical_kl": formulas.categorical_kl,
        "vae_loss": formulas.vae_loss,
        "discretized_logistic_log_prob": formulas.discretized_logistic_log_prob,
        "discretized_logistic_mixture_log_prob": formulas.discretized_logistic_mixture_log_prob,
        "discretized_normal_log_prob": formulas.discretized_normal_log_prob,
        "categorical_log_prob_pixels": formulas.categorical_log_prob_pixels,
        "normal_cross_entropy": formulas.normal_cross_entropy,
        "mvn_cross_entropy": formulas.mvn_cross_entropy,
        "continuous_bernoulli_log_prob": formulas.continuous_bernoulli_log_prob,
        "continuous_bernoulli_entropy": formulas.continuous_bernoulli_entropy,
        "continuous_bernoulli_kl": formulas.continuous_bernoulli_kl,
        "mixture_log_prob": formulas.mixture_log_prob,
        "iwae_stl": formulas.iwae_stl,
        "iwae_dreg_encoder": formulas.iwae_dreg_encoder,
        "iwae_dreg": formulas.iwae_dreg,
        "relaxed_bernoulli_log_prob": formulas.relaxed_bernoulli_log_prob,
        "relaxed_categorical_log_prob": formulas.relaxed_categorical_log_prob,
    }
    return Peer("jnp", "jax", jax.__version__, impls, note="hand-written textbook formula")


# ---------------------------------------------------------------- jax.scipy


def _load_jax_scipy() -> Peer:
    from jax.scipy import special, stats

    def bernoulli(x, logits):
        # The scipy API takes a probability; sigmoid(logits) is what a user passes.
        return jnp.sum(stats.bernoulli.logpmf(x, jax.nn.sigmoid(logits)), axis=-1)

    def mvn(x, loc, scale_tril):
        # The scipy API takes the covariance, which it factorises again.
        cov = scale_tril @ jnp.swapaxes(scale_tril, -1, -2)
        return stats.multivariate_normal.logpdf(x, loc, cov)

    impls = {
        "bernoulli_log_prob_binary": bernoulli,
        "bernoulli_log_prob_grey": bernoulli,
        "normal_log_prob": lambda x, loc, log_scale: jnp.sum(
            stats.norm.logpdf(x, loc, jnp.exp(log_scale)), axis=-1
        ),
        "mvn_log_prob_shared": mvn,
        "mvn_log_prob_batched": mvn,
        "categorical_entropy": lambda logits: jnp.sum(
            special.entr(jax.nn.softmax(logits, axis=-1)), axis=-1
        ),
        "categorical_kl": lambda logits_p, logits_q: jnp.sum(
            special.rel_entr(jax.nn.softmax(logits_p, axis=-1), jax.nn.softmax(logits_q, axis=-1)),
            axis=-1,
        ),
        # The mixture weights as logsumexp's scale factors b: log sum_k w_k p_k.
        "mixture_log_prob": lambda component_log_probs, logits: special.logsumexp(
            component_log_probs, axis=-1, b=jax.nn.softmax(logits, axis=-1)
        ),
    }
    return Peer("jax.scipy", "jax", jax.__version__, impls)


# ---------------------------------------------------------------- optax


def _load_optax() -> Peer:
    import optax

    def bernoulli(x, logits):
        return -jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), axis=-1)

    def vae_loss(x, logits, loc, log_scale):
        # optax has no Gaussian KL, so the KL term is the jnp formula.
        return formulas.normal_kl_standard(loc, log_scale) - bernoulli(x, logits)

    impls = {
        "bernoulli_log_prob_binary": bernoulli,
        "bernoulli_log_prob_grey": bernoulli,
        # H(p) is the cross-entropy of p with itself.
        "categorical_entropy": lambda logits: optax.softmax_cross_entropy(
            logits, jax.nn.softmax(logits, axis=-1)
        ),
        "categorical_kl": lambda logits_p, logits_q: optax.kl_divergence(
            jax.nn.log_softmax(logits_q, axis=-1), jax.nn.softmax(logits_p, axis=-1)
        ),
        "vae_loss": vae_loss,
        "categorical_log_prob_pixels": lambda labels, logits: (
            -jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, labels), axis=-1)
        ),
    }
    return Peer("optax", "jax", _version("optax"), impls)


# ---------------------------------------------------------------- numpyro


def _load_numpyro() -> Peer:
    import numpyro.distributions as dist
    from numpyro.distributions.kl import kl_divergence

    def normal(loc, log_scale):
        return dist.Normal(loc, jnp.exp(log_scale), validate_args=False)

    def bernoulli(x, logits):
        return jnp.sum(dist.BernoulliLogits(logits, validate_args=False).log_prob(x), axis=-1)

    def kl_standard(loc, log_scale):
        standard = dist.Normal(jnp.zeros_like(loc), jnp.ones_like(loc), validate_args=False)
        return jnp.sum(kl_divergence(normal(loc, log_scale), standard), axis=-1)

    def mvn(loc, scale_tril):
        return dist.MultivariateNormal(loc, scale_tril=scale_tril, validate_args=False)

    def categorical_kl(logits_p, logits_q):
        # numpyro registers the categorical KL for probabilities only.
        p = dist.CategoricalProbs(jax.nn.softmax(logits_p, axis=-1), validate_args=False)
        q = dist.CategoricalProbs(jax.nn.softmax(logits_q, axis=-1), validate_args=False)
        return kl_divergence(p, q)

    impls = {
        "bernoulli_log_prob_binary": bernoulli,
        "bernoulli_log_prob_grey": bernoulli,
        "normal_log_prob": lambda x, loc, log_scale: jnp.sum(
            normal(loc, log_scale).log_prob(x), axis=-1
        ),
        "normal_kl_standard": kl_standard,
        "normal_kl": lambda loc_p, log_scale_p, loc_q, log_scale_q: jnp.sum(
            kl_divergence(normal(loc_p, log_scale_p), normal(loc_q, log_scale_q)), axis=-1
        ),
        "mvn_log_prob_shared": lambda x, loc, scale_tril: mvn(loc, scale_tril).log_prob(x),
        "mvn_log_prob_batched": lambda x, loc, scale_tril: mvn(loc, scale_tril).log_prob(x),
        "mvn_kl": lambda loc_p, scale_tril_p, loc_q, scale_tril_q: kl_divergence(
            mvn(loc_p, scale_tril_p), mvn(loc_q, scale_tril_q)
        ),
        "categorical_entropy": lambda logits: dist.CategoricalLogits(
            logits, validate_args=False
        ).entropy(),
        "categorical_kl": categorical_kl,
        "vae_loss": lambda x, logits, loc, log_scale: (
            kl_standard(loc, log_scale) - bernoulli(x, logits)
        ),
        "categorical_log_prob_pixels": lambda labels, logits: jnp.sum(
            dist.CategoricalLogits(logits, validate_args=False).log_prob(labels), axis=-1
        ),
        # numpyro has no cross-entropy method: H(p, q) = H(p) + KL(p || q), as a user writes.
        "normal_cross_entropy": lambda loc_p, log_scale_p, loc_q, log_scale_q: jnp.sum(
            normal(loc_p, log_scale_p).entropy()
            + kl_divergence(normal(loc_p, log_scale_p), normal(loc_q, log_scale_q)),
            axis=-1,
        ),
        "mvn_cross_entropy": lambda loc_p, scale_tril_p, loc_q, scale_tril_q: (
            mvn(loc_p, scale_tril_p).entropy()
            + kl_divergence(mvn(loc_p, scale_tril_p), mvn(loc_q, scale_tril_q))
        ),
        "relaxed_bernoulli_log_prob": lambda y, logits, temperature: jnp.sum(
            dist.RelaxedBernoulliLogits(temperature, logits, validate_args=False).log_prob(y),
            axis=-1,
        ),
    }
    return Peer("numpyro", "jax", _version("numpyro"), impls)


# ---------------------------------------------------------------- quantised (TFP, distrax)


def _pixel_quantized(quantized, continuous, loc, log_scale):
    """The 8-bit bins as TFP/distrax quantisation: ``Y = ceil(X')`` has ``P(Y = y) =
    F(y) - F(y - 1)``, with the tails in ``low`` and ``high``. On the pixel scale
    ``X = 255 X01``, bin ``x`` is ``(x - 1/2, x + 1/2]``, so ``X' = X - 1/2``."""
    return quantized(continuous(255.0 * loc - 0.5, 255.0 * jnp.exp(log_scale)), low=0.0, high=255.0)


def _quantized_impls(quantized, logistic, normal) -> Impls:
    return {
        "discretized_logistic_log_prob": lambda x, loc, log_scale: jnp.sum(
            _pixel_quantized(quantized, logistic, loc, log_scale).log_prob(x), axis=-1
        ),
        "discretized_normal_log_prob": lambda x, loc, log_scale: jnp.sum(
            _pixel_quantized(quantized, normal, loc, log_scale).log_prob(x), axis=-1
        ),
    }


# ---------------------------------------------------------------- distrax


def _load_distrax() -> Peer:
    import distrax

    def bernoulli(x, logits):
        return jnp.sum(distrax.Bernoulli(logits=logits).log_prob(x), axis=-1)

    def kl_standard(loc, log_scale):
        standard = distrax.Normal(jnp.zeros_like(loc), jnp.ones_like(loc))
        return jnp.sum(distrax.LogStddevNormal(loc, log_scale).kl_divergence(standard), axis=-1)

    def mvn(loc, scale_tril):
        return distrax.MultivariateNormalTri(loc, scale_tril)

    impls = {
        "bernoulli_log_prob_binary": bernoulli,
        "bernoulli_log_prob_grey": bernoulli,
        "normal_log_prob": lambda x, loc, log_scale: jnp.sum(
            distrax.LogStddevNormal(loc, log_scale).log_prob(x), axis=-1
        ),
        "normal_kl_standard": kl_standard,
        "normal_kl": lambda loc_p, log_scale_p, loc_q, log_scale_q: jnp.sum(
            distrax.LogStddevNormal(loc_p, log_scale_p).kl_divergence(
                distrax.LogStddevNormal(loc_q, log_scale_q)
            ),
            axis=-1,
        ),
        "mvn_log_prob_shared": lambda x, loc, scale_tril: mvn(loc, scale_tril).log_prob(x),
        "mvn_log_prob_batched": lambda x, loc, scale_tril: mvn(loc, scale_tril).log_prob(x),
        "mvn_kl": lambda loc_p, scale_tril_p, loc_q, scale_tril_q: mvn(
            loc_p, scale_tril_p
        ).kl_divergence(mvn(loc_q, scale_tril_q)),
        "categorical_entropy": lambda logits: distrax.Categorical(logits=logits).entropy(),
        "categorical_kl": lambda logits_p, logits_q: distrax.Categorical(
            logits=logits_p
        ).kl_divergence(distrax.Categorical(logits=logits_q)),
        "vae_loss": lambda x, logits, loc, log_scale: (
            kl_standard(loc, log_scale) - bernoulli(x, logits)
        ),
        **_quantized_impls(distrax.Quantized, distrax.Logistic, distrax.Normal),
        "discretized_logistic_mixture_log_prob": lambda x, logits, loc, log_scale: jnp.sum(
            distrax.MixtureSameFamily(
                distrax.Categorical(logits=logits),
                _pixel_quantized(distrax.Quantized, distrax.Logistic, loc, log_scale),
            ).log_prob(x),
            axis=-1,
        ),
        "categorical_log_prob_pixels": lambda labels, logits: jnp.sum(
            distrax.Categorical(logits=logits).log_prob(labels), axis=-1
        ),
        "normal_cross_entropy": lambda loc_p, log_scale_p, loc_q, log_scale_q: jnp.sum(
            distrax.LogStddevNormal(loc_p, log_scale_p).cross_entropy(
                distrax.LogStddevNormal(loc_q, log_scale_q)
            ),
            axis=-1,
        ),
        "mvn_cross_entropy": lambda loc_p, scale_tril_p, loc_q, scale_tril_q: mvn(
            loc_p, scale_tril_p
        ).cross_entropy(mvn(loc_q, scale_tril_q)),
    }
    return Peer("distrax", "jax", _version("distrax"), impls)


# ---------------------------------------------------------------- TFP on JAX


def _load_tfp() -> Peer:
    from tensorflow_probability.substrates import jax as tfp

    tfd = tfp.distributions

    def normal(loc, log_scale):
        return tfd.Normal(loc, jnp.exp(log_scale))

    def bernoulli(x, logits):
        # dtype=float32 so that grey-level x is not cast to an integer sample.
        return jnp.sum(tfd.Bernoulli(logits=logits, dtype=logits.dtype).log_prob(x), axis=-1)

    def kl_standard(loc, log_scale):
        standard = tfd.Normal(jnp.zeros_like(loc), jnp.ones_like(loc))
        return jnp.sum(tfd.kl_divergence(normal(loc, log_scale), standard), axis=-1)

    def mvn(loc, scale_tril):
        return tfd.MultivariateNormalTriL(loc, scale_tril)

    impls = {
        "bernoulli_log_prob_binary": bernoulli,
        "bernoulli_log_prob_grey": bernoulli,
        "normal_log_prob": lambda x, loc, log_scale: jnp.sum(
            normal(loc, log_scale).log_prob(x), axis=-1
        ),
        "normal_kl_standard": kl_standard,
        "normal_kl": lambda loc_p, log_scale_p, loc_q, log_scale_q: jnp.sum(
            tfd.kl_divergence(normal(loc_p, log_scale_p), normal(loc_q, log_scale_q)), axis=-1
        ),
        "mvn_log_prob_shared": lambda x, loc, scale_tril: mvn(loc, scale_tril).log_prob(x),
        "mvn_log_prob_batched": lambda x, loc, scale_tril: mvn(loc, scale_tril).log_prob(x),
        "mvn_kl": lambda loc_p, scale_tril_p, loc_q, scale_tril_q: tfd.kl_divergence(
            mvn(loc_p, scale_tril_p), mvn(loc_q, scale_tril_q)
        ),
        "categorical_entropy": lambda logits: tfd.Categorical(logits=logits).entropy(),
        "categorical_kl": lambda logits_p, logits_q: tfd.kl_divergence(
            tfd.Categorical(logits=logits_p), tfd.Categorical(logits=logits_q)
        ),
        "vae_loss": lambda x, logits, loc, log_scale: (
            kl_standard(loc, log_scale) - bernoulli(x, logits)
        ),
        **_quantized_impls(tfd.QuantizedDistribution, tfd.Logistic, tfd.Normal),
        "discretized_logistic_mixture_log_prob": lambda x, logits, loc, log_scale: jnp.sum(
            tfd.MixtureSameFamily(
                tfd.Categorical(logits=logits),
                _pixel_quantized(tfd.QuantizedDistribution, tfd.Logistic, loc, log_scale),
            ).log_prob(x),
            axis=-1,
        ),
        "categorical_log_prob_pixels": lambda labels, logits: jnp.sum(
            tfd.Categorical(logits=logits).log_prob(labels), axis=-1
        ),
        "normal_cross_entropy": lambda loc_p, log_scale_p, loc_q, log_scale_q: jnp.sum(
            normal(loc_p, log_scale_p).cross_entropy(normal(loc_q, log_scale_q)), axis=-1
        ),
        "mvn_cross_entropy": lambda loc_p, scale_tril_p, loc_q, scale_tril_q: mvn(
            loc_p, scale_tril_p
        ).cross_entropy(mvn(loc_q, scale_tril_q)),
        "continuous_bernoulli_log_prob": lambda x, logits: jnp.sum(
            tfd.ContinuousBernoulli(logits=logits).log_prob(x), axis=-1
        ),
        "continuous_bernoulli_entropy": lambda logits: jnp.sum(
            tfd.ContinuousBernoulli(logits=logits).entropy(), axis=-1
        ),
        "continuous_bernoulli_kl": lambda logits_p, logits_q: jnp.sum(
            tfd.kl_divergence(
                tfd.ContinuousBernoulli(logits=logits_p), tfd.ContinuousBernoulli(logits=logits_q)
            ),
            axis=-1,
        ),
        "relaxed_bernoulli_log_prob": lambda y, logits, temperature: jnp.sum(
            tfd.RelaxedBernoulli(temperature, logits=logits).log_prob(y), axis=-1
        ),
        "relaxed_categorical_log_prob": lambda y, logits, temperature: jnp.sum(
            tfd.RelaxedOneHotCategorical(temperature, logits=logits).log_prob(y), axis=-1
        ),
    }
    # distrax pulls in tfp-nightly, which provides the same module.
    version = _version("tensorflow-probability", "tfp-nightly")
    return Peer("tfp", "jax", version, impls, note="tensorflow_probability.substrates.jax")


# ---------------------------------------------------------------- torch (CPU)


def _load_torch() -> Peer:
    from benchmarks._src import torch_peer

    return Peer(
        "torch",
        "torch",
        _version("torch"),
        torch_peer.impls(),
        note="torch.distributions, eager, CPU",
    )


_LOADERS: dict[str, Callable[[], Peer]] = {
    "genmath": _load_genmath,
    "jnp": _load_jnp,
    "jax.scipy": _load_jax_scipy,
    "optax": _load_optax,
    "numpyro": _load_numpyro,
    "distrax": _load_distrax,
    "tfp": _load_tfp,
    "torch": _load_torch,
}


def load(name: str) -> Peer:
    """Imports a peer, raising :class:`PeerUnavailable` with a one-line reason."""
    if name not in _LOADERS:
        raise ValueError(f"unknown peer {name!r}; choose from {', '.join(ALL_PEERS)}")
    try:
        return _LOADERS[name]()
    except Exception as error:  # an optional library may fail in any way on import
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
        raise PeerUnavailable(reason) from error

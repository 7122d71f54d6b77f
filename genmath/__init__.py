"""genmath: the mathematics of deep generative models as pure, jit-compiled JAX functions.

One small module per distribution, each a set of pure functions that work under
``jax.jit``, ``jax.vmap`` and ``jax.grad``::

    from genmath import bernoulli, normal
    recon = bernoulli.log_prob(x, logits=decoder_logits)   # sum over the event axis
    kl = normal.kl_standard(loc=mu, log_scale=log_sigma)   # KL(q(z|x) || N(0, I))
"""

from genmath import (
    bayes,
    bernoulli,
    categorical,
    debug,
    dequantize,
    discretized_logistic,
    discretized_normal,
    estimators,
    latent,
    mixture,
    mvn,
    normal,
    relaxed_bernoulli,
    relaxed_categorical,
)

__version__ = "0.1.0"

__all__ = [
    "bayes",
    "bernoulli",
    "categorical",
    "debug",
    "dequantize",
    "discretized_logistic",
    "discretized_normal",
    "estimators",
    "latent",
    "mixture",
    "mvn",
    "normal",
    "relaxed_bernoulli",
    "relaxed_categorical",
]

"""torch.distributions implementations (eager, CPU), same signatures as the JAX peers.

Each function takes torch tensors and returns one value per row. Argument
validation is switched off, as for numpyro, so both time only the arithmetic.
"""

from __future__ import annotations

import torch
from torch import distributions as td

td.Distribution.set_default_validate_args(False)


def _normal(loc, log_scale):
    return td.Normal(loc, torch.exp(log_scale))


def _bernoulli(x, logits):
    return td.Bernoulli(logits=logits).log_prob(x).sum(-1)


def _kl_standard(loc, log_scale):
    standard = td.Normal(torch.zeros_like(loc), torch.ones_like(loc))
    return td.kl_divergence(_normal(loc, log_scale), standard).sum(-1)


def _mvn(loc, scale_tril):
    return td.MultivariateNormal(loc, scale_tril=scale_tril)


def _normal_cross_entropy(loc_p, log_scale_p, loc_q, log_scale_q):
    # torch has no cross-entropy method: H(p, q) = H(p) + KL(p || q), as a user writes.
    p = _normal(loc_p, log_scale_p)
    return (p.entropy() + td.kl_divergence(p, _normal(loc_q, log_scale_q))).sum(-1)


def _mvn_cross_entropy(loc_p, scale_tril_p, loc_q, scale_tril_q):
    p = _mvn(loc_p, scale_tril_p)
    return p.entropy() + td.kl_divergence(p, _mvn(loc_q, scale_tril_q))


def _continuous_bernoulli(logits):
    return td.ContinuousBernoulli(logits=logits)


def impls():
    return {
        "bernoulli_log_prob_binary": _bernoulli,
        "bernoulli_log_prob_grey": _bernoulli,
        "normal_log_prob": lambda x, loc, log_scale: _normal(loc, log_scale).log_prob(x).sum(-1),
        "normal_kl_standard": _kl_standard,
        "normal_kl": lambda loc_p, log_scale_p, loc_q, log_scale_q: td.kl_divergence(
            _normal(loc_p, log_scale_p), _normal(loc_q, log_scale_q)
        ).sum(-1),
        "mvn_log_prob_shared": lambda x, loc, scale_tril: _mvn(loc, scale_tril).log_prob(x),
        "mvn_log_prob_batched": lambda x, loc, scale_tril: _mvn(loc, scale_tril).log_prob(x),
        "mvn_kl": lambda loc_p, scale_tril_p, loc_q, scale_tril_q: td.kl_divergence(
            _mvn(loc_p, scale_tril_p), _mvn(loc_q, scale_tril_q)
        ),
        "categorical_entropy": lambda logits: td.Categorical(logits=logits).entropy(),
        "categorical_kl": lambda logits_p, logits_q: td.kl_divergence(
            td.Categorical(logits=logits_p), td.Categorical(logits=logits_q)
        ),
        "vae_loss": lambda x, logits, loc, log_scale: (
            _kl_standard(loc, log_scale) - _bernoulli(x, logits)
        ),
        "categorical_log_prob_pixels": lambda labels, logits: (
            td.Categorical(logits=logits).log_prob(labels).sum(-1)
        ),
        "normal_cross_entropy": _normal_cross_entropy,
        "mvn_cross_entropy": _mvn_cross_entropy,
        "continuous_bernoulli_log_prob": lambda x, logits: (
            _continuous_bernoulli(logits).log_prob(x).sum(-1)
        ),
        "continuous_bernoulli_entropy": lambda logits: (
            _continuous_bernoulli(logits).entropy().sum(-1)
        ),
        "continuous_bernoulli_kl": lambda logits_p, logits_q: td.kl_divergence(
            _continuous_bernoulli(logits_p), _continuous_bernoulli(logits_q)
        ).sum(-1),
        "mixture_log_prob": lambda component_log_probs, logits: torch.logsumexp(
            torch.log_softmax(logits, -1) + component_log_probs, -1
        ),
        "relaxed_bernoulli_log_prob": lambda y, logits, temperature: (
            td.RelaxedBernoulli(temperature, logits=logits).log_prob(y).sum(-1)
        ),
        "relaxed_categorical_log_prob": lambda y, logits, temperature: (
            td.RelaxedOneHotCategorical(temperature, logits=logits).log_prob(y).sum(-1)
        ),
    }

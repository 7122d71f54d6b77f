"""A distribution over no classes (a class or component axis of size 0) is a usage error
naming the argument, in every function that takes one, never a raw NumPy error or a value."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from genmath import (
    bayes,
    categorical,
    discretized_logistic,
    discretized_normal,
    mixture,
    relaxed_categorical,
)

EMPTY = jnp.zeros((2, 0))
KEY = jax.random.key(0)
LABELS = jnp.zeros(2, int)

CALLS = {
    "categorical.log_prob": (
        lambda: categorical.log_prob(jnp.zeros(2, int), logits=EMPTY),
        "logits",
    ),
    "categorical.entropy": (lambda: categorical.entropy(logits=EMPTY), "logits"),
    "categorical.kl": (lambda: categorical.kl(logits_p=EMPTY, logits_q=EMPTY), "logits_p"),
    "categorical.cross_entropy": (
        lambda: categorical.cross_entropy(logits_p=EMPTY, logits_q=EMPTY),
        "logits_p",
    ),
    "categorical.kl (empty q)": (
        lambda: categorical.kl(logits_p=jnp.zeros((2, 1)), logits_q=EMPTY),
        "logits_q",
    ),
    "categorical.cross_entropy (empty q)": (
        lambda: categorical.cross_entropy(logits_p=jnp.zeros((2, 1)), logits_q=EMPTY),
        "logits_q",
    ),
    "categorical.sample": (lambda: categorical.sample(KEY, logits=EMPTY), "logits"),
    "mixture.log_prob": (lambda: mixture.log_prob(EMPTY, logits=EMPTY), "logits"),
    "mixture.posterior": (lambda: mixture.posterior(EMPTY, logits=EMPTY), "logits"),
    "mixture.select": (
        lambda: mixture.select(EMPTY, LABELS, axis=1),
        "component_values",
    ),
    "mixture.sample": (
        lambda: mixture.sample(KEY, logits=EMPTY, component_samples=EMPTY),
        "component_samples",
    ),
    "mixture.mean": (lambda: mixture.mean(EMPTY, logits=EMPTY), "component_means"),
    "bayes.posterior": (lambda: bayes.posterior(EMPTY), "log_joint"),
    "bayes.evidence": (lambda: bayes.evidence(EMPTY), "log_joint"),
    "relaxed_categorical.log_prob": (
        lambda: relaxed_categorical.log_prob(EMPTY, logits=EMPTY, temperature=1.0),
        "logits",
    ),
    "relaxed_categorical.sample": (
        lambda: relaxed_categorical.sample(KEY, logits=EMPTY, temperature=1.0),
        "logits",
    ),
    "discretized_logistic.mixture_log_prob": (
        lambda: discretized_logistic.mixture_log_prob(
            jnp.zeros(2), logits=EMPTY, loc=EMPTY, log_scale=EMPTY
        ),
        "logits",
    ),
    "discretized_logistic.mixture_log_prob (empty loc)": (
        lambda: discretized_logistic.mixture_log_prob(
            jnp.zeros(3), logits=jnp.zeros((3, 1)), loc=jnp.zeros((3, 0)), log_scale=0.0
        ),
        "loc",
    ),
    # Only the data is empty; a logit axis of size 1 would broadcast: the data is named.
    "mixture.log_prob (empty data)": (
        lambda: mixture.log_prob(EMPTY, logits=jnp.zeros(1)),
        "component_log_probs",
    ),
    "mixture.posterior (empty data)": (
        lambda: mixture.posterior(EMPTY, logits=jnp.zeros(1)),
        "component_log_probs",
    ),
    "relaxed_categorical.log_prob (empty data)": (
        lambda: relaxed_categorical.log_prob(EMPTY, logits=jnp.zeros(1), temperature=1.0),
        "y",
    ),
    "relaxed_categorical.log_sample_log_prob (empty data)": (
        lambda: relaxed_categorical.log_sample_log_prob(
            EMPTY, logits=jnp.zeros(1), temperature=1.0
        ),
        "log_y",
    ),
    "discretized_normal.mixture_sample": (
        lambda: discretized_normal.mixture_sample(KEY, logits=EMPTY, loc=EMPTY, log_scale=EMPTY),
        "logits",
    ),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_no_classes_is_an_error_naming_the_argument(call):
    function, argument = CALLS[call]
    with pytest.raises(ValueError, match=rf"`{argument}` has no classes"):
        function()
    with pytest.raises(ValueError, match=rf"`{argument}` has no classes"):
        jax.jit(function)()

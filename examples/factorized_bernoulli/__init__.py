"""The factorized Bernoulli example: ``python -m examples.factorized_bernoulli``; the library
function is :func:`examples.factorized_bernoulli.train.train_and_evaluate`, the
configuration :mod:`examples.factorized_bernoulli.configs`."""

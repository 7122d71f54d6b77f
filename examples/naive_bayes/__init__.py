"""The class-conditional Bernoulli (naive Bayes) example: ``python -m examples.naive_bayes``;
the library function is :func:`examples.naive_bayes.train.train_and_evaluate`, the
configuration :mod:`examples.naive_bayes.configs`."""
